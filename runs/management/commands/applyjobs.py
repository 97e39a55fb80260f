"""`manage.py applyjobs FILE`: create or update jobs from a JSON list of job objects.

All or nothing: every job is validated first, and one problem anywhere changes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from endpoints import audit, run_after
from endpoints.jobs import apply_job
from endpoints.models import Endpoint
from runs import verbs


class Command(BaseCommand):
    help = (
        "Create or update jobs from a JSON list of job objects (as exportjobs writes), by "
        "job_name. Nothing changes unless every job is valid."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="A JSON file with a list of jobs, or - for stdin")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would change, change nothing"
        )
        parser.add_argument(
            "--prune", action="store_true", help="Also delete the jobs the file does not list"
        )

    def handle(self, *args, file: str, dry_run: bool, prune: bool, **options) -> None:
        jobs = self.read_jobs(file, options.get("stdin") or sys.stdin)
        file = "stdin" if file == "-" else file
        if prune and not jobs:
            raise CommandError("Refusing to --prune with an empty list: that deletes every job.")
        with transaction.atomic(), audit.acting("applyjobs"):
            planned, problems = plan(jobs)
            if problems:
                for problem in problems:
                    self.stderr.write(problem)
                raise CommandError(
                    f"{len(problems)} problem(s) in {file}; nothing was changed.", returncode=1
                )
            pruned = (
                Endpoint.objects.exclude(name__in=[e.name for e, _, _ in planned]) if prune else []
            )
            lines = self.save(planned, pruned, dry_run=dry_run)
            if cycles := run_after.link_saved([e for e, _, _ in planned]) if not dry_run else []:
                for endpoint, problem in cycles:
                    self.stderr.write(f"{endpoint.name}: run_after: {problem}")
                raise CommandError(
                    f"{len(cycles)} problem(s) in {file}; nothing was changed.", returncode=1
                )
            for line in lines:
                self.stdout.write(line)
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")

    def read_jobs(self, file: str, stdin) -> list[Any]:
        try:
            text = stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None
        file = "stdin" if file == "-" else file
        try:
            jobs = json.loads(text)
        except json.JSONDecodeError as exc:
            self.stderr.write(
                f"{file}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            )
            raise CommandError(
                f"{file} is not valid JSON; nothing was changed.", returncode=1
            ) from None
        if not isinstance(jobs, list):
            raise CommandError(f"{file} must hold a JSON list of jobs; nothing was changed.")
        return jobs

    def save(self, planned, pruned, *, dry_run: bool) -> list[str]:
        lines = []
        for endpoint, existed, changes in planned:
            if not existed:
                lines.append(f"created {endpoint.name}")
            elif changes:
                lines.append(f"updated {endpoint.name}: {', '.join(changes)}")
            else:
                lines.append(f"unchanged {endpoint.name}")
            if (changes or not existed) and not dry_run:
                was_enabled = changes.get("is_active", (None,))[0] if existed else None
                verbs.save(endpoint, by="applyjobs", was_enabled=was_enabled)
        for endpoint in pruned:
            lines.append(f"deleted {endpoint.name}")
            if not dry_run:
                verbs.delete(endpoint)
        return lines


def plan(jobs: list[Any]) -> tuple[list[tuple[Endpoint, bool, dict]], list[str]]:
    """Validate every job: (endpoint, existed, changes) for each, or the problems found.
    A job may run after another the same file creates (run_after.arriving)."""
    names = [job.get("job_name") for job in jobs if isinstance(job, dict)]
    stored = Endpoint.objects.in_bulk([n for n in names if isinstance(n, str)], field_name="name")
    planned, problems = [], []
    first_seen: dict[str, int] = {}
    with run_after.arriving(n for n in names if isinstance(n, str)):
        for number, job in enumerate(jobs, start=1):
            name = job.get("job_name") if isinstance(job, dict) else None
            label = f"job {number} ({name})" if isinstance(name, str) and name else f"job {number}"
            if isinstance(name, str) and name in first_seen:
                problems.append(f"{label}: job_name: '{name}' is already job {first_seen[name]}.")
                continue
            if isinstance(name, str):
                first_seen[name] = number
            existing = stored.get(name) if isinstance(name, str) else None
            try:
                endpoint, changes = apply_job(job, existing)
            except ValidationError as exc:
                problems.extend(_problem_lines(label, exc))
                continue
            planned.append((endpoint, existing is not None, changes))
    return planned, problems


def _problem_lines(label: str, error: ValidationError) -> list[str]:
    lines = []
    for field, messages in error.message_dict.items():
        prefix = label if field == NON_FIELD_ERRORS else f"{label}: {field}"
        lines.extend(f"{prefix}: {message}" for message in messages)
    return lines
