import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from endpoints import schedules
from endpoints.models import Endpoint
from runs import services, verbs
from runs.models import Log


class Command(BaseCommand):
    help = "Run one job now in the foreground (or on the cluster: --queue) and print the outcome."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The job's name")
        parser.add_argument(
            "--dry-run", action="store_true", help="Build the request, send nothing"
        )
        parser.add_argument(
            "--queue", action="store_true", help="Hand the run to the cluster and print its run_id"
        )
        parser.add_argument(
            "--as-of",
            metavar="INSTANT",
            help="Run as of this instant (templates and handlers see it), e.g. 2026-11-01T01:30 "
            "in the job's time zone, or with an offset",
        )

    def handle(
        self, *args, name: str, dry_run: bool, queue: bool, as_of: str | None, **options
    ) -> None:
        endpoint = Endpoint.objects.filter(name=name).first()
        if endpoint is None:
            raise CommandError(
                f"No job named '{name}' (see the dashboard or `manage.py exportjobs`)."
            )
        if endpoint.kind == Endpoint.Kind.HEARTBEAT:
            raise CommandError(f"{name}: {services.HEARTBEAT_NOT_RUN}")
        instant = None
        if as_of:
            try:
                instant = schedules.parse_local_instant(as_of, endpoint.timezone)
                services.check_as_of(instant)
            except (ValueError, ValidationError) as exc:
                message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
                raise CommandError(f"--as-of: {message}") from None
        if queue:
            # The run id is the whole answer: a script reads it from stdout.
            with _quiet("django-q"):
                log = verbs.trigger(endpoint, by="runjob", dry_run=dry_run, as_of=instant)
            self.stdout.write(log.run_id)
            return
        last = services.run_in_foreground(
            endpoint, by="runjob", dry_run=dry_run, as_of=instant, on_attempt=self.print_attempt
        )
        if last.state != Log.State.SUCCESS:
            raise CommandError(f"{name} failed after {last.attempt} attempt(s).", returncode=1)

    def print_attempt(self, log: Log, retry: Log | None) -> None:
        attempts = log.endpoint.max_attempts
        parts = [f"{log.run_id} attempt {log.attempt}/{attempts}", log.state]
        if log.as_of:
            parts.append(f"as of {_on_clock(log.as_of, log.endpoint)}")
        if log.dry_run:
            parts.append("dry run, nothing sent")
        if log.status_code is not None:
            parts.append(f"HTTP {log.status_code}")
        if log.duration_ms is not None:
            parts.append(f"{log.duration_ms} ms")
        if log.response_bytes is not None:
            parts.append(f"{log.response_bytes} bytes")
        if log.error_class:
            parts.append(f"{log.error_class}: {log.error_message}")
        elif log.result_summary is not None:
            parts.append(f"summary: {_compact(log.result_summary)}")
        line = " · ".join(parts)
        self.stdout.write(self.style.SUCCESS(line) if log.state == Log.State.SUCCESS else line)
        if retry is not None:
            wait = max(0.0, (retry.due_at - log.finished_at).total_seconds())
            self.stdout.write(f"  retrying in {wait:.1f} s (attempt {retry.attempt}/{attempts})")


def _on_clock(moment: datetime, endpoint: Endpoint) -> str:
    """The instant as the job's zone reads it, as --as-of was typed: '2026-11-01 01:30:00 EDT'."""
    local = moment.astimezone(endpoint.zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence a library's INFO lines for a moment (django-q logs every enqueue to stdout)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _compact(summary: dict) -> str:
    # ensure_ascii=False: a masked value prints as its "••••" (a terminal shows UTF-8).
    text = json.dumps(summary, separators=(",", ":"), default=str, ensure_ascii=False)
    return text if len(text) <= 300 else text[:297] + "..."
