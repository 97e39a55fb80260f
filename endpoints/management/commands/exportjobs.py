"""`manage.py exportjobs [--output FILE]`: every job as the JSON list applyjobs reads."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from endpoints.jobs import endpoint_to_job
from endpoints.models import Endpoint


class Command(BaseCommand):
    help = "Write every job as a JSON list of job objects (secret header values masked)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout")

    def handle(self, *args, output: str | None, **options) -> None:
        jobs = [endpoint_to_job(endpoint) for endpoint in Endpoint.objects.order_by("name")]
        text = json.dumps(jobs, indent=2, ensure_ascii=False) + "\n"
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc}") from None
        self.stdout.write(f"Exported {len(jobs)} job(s) to {output}.")
