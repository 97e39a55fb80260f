"""manage.py importcrontab FILE [--timezone ZONE] [--grace SECONDS] [--dry-run] [--output FILE]

One heartbeat per crontab job line (endpoints/crontab.py reads the file), then each line
rewritten to ping its heartbeat. The whole file or nothing: a line that cannot be read, or a
heartbeat that would not validate, refuses the file with the line's number and why.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from endpoints import audit, crontab, schedule_syntax
from endpoints.models import Endpoint
from runs import verbs
from runs.heartbeats import ping_url


class Command(BaseCommand):
    help = "Make one heartbeat per crontab line and print the lines rewritten to ping them."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="A crontab, e.g. the output of `crontab -l`.")
        parser.add_argument(
            "--timezone",
            default=settings.SCHEDULER_DEFAULT_TIME_ZONE,
            help="The crontab's time zone where it sets no CRON_TZ/TZ (default: TIME_ZONE).",
        )
        parser.add_argument(
            "--grace",
            type=int,
            default=Endpoint._meta.get_field("grace_seconds").default,
            help="Seconds a ping may come after each expected time (default 3600).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print, save nothing.")
        parser.add_argument("--output", help="Also write the rewritten crontab to this file.")
        parser.add_argument(
            "--start",
            action="store_true",
            help="Rewrite lines to ping /start first and the exit status after (durations, "
            "failures reported as they happen) instead of pinging on success only.",
        )

    def handle(self, *args, file: str, timezone: str, grace: int, dry_run: bool,
               output: str | None, start: bool, **options) -> None:  # fmt: skip
        try:
            schedule_syntax.validate_timezone(timezone)
            text = Path(file).read_text(encoding="utf-8")
            table = crontab.parse(text, timezone=timezone)
        except schedule_syntax.ScheduleError as exc:
            raise CommandError(f"--timezone: {exc.message}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: {exc}") from None
        except crontab.CrontabError as exc:
            raise CommandError(f"{file}: {exc}") from None
        heartbeats = self._heartbeats(table, grace, file)
        if not dry_run:
            with transaction.atomic(), audit.acting("importcrontab"):
                for endpoint in heartbeats.values():
                    verbs.save(endpoint, by="importcrontab")
        rewritten = self._rewrite(table, heartbeats, start)
        if output:
            try:
                Path(output).write_text(rewritten, encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"--output: {exc}") from None
        self.stdout.write(rewritten, ending="")
        made = "Would make" if dry_run else "Made"
        skipped = [line for line in table.lines if line.skipped]
        summary = f"# {made} {len(heartbeats)} heartbeat(s)"
        summary += f"; skipped {len(skipped)} line(s)" if skipped else ""
        if dry_run:
            summary += " (dry run: nothing saved, these uuids are not real)"
        self.stderr.write(summary + ".")

    def _heartbeats(self, table: crontab.Crontab, grace: int, file: str) -> dict[int, Endpoint]:
        taken = set(Endpoint.objects.values_list("name", flat=True))
        made = {}
        for line in table.jobs:
            endpoint = Endpoint(
                name=crontab.name_for(line.command, taken),
                # Not the command itself: its arguments may hold a password.
                description=f"From crontab line {line.number} ({crontab.program_of(line.command)})",
                kind=Endpoint.Kind.HEARTBEAT,
                schedule_type=Endpoint.ScheduleType.CRON,
                cron_expression=line.cron,
                timezone=line.timezone,
                grace_seconds=grace,
            )
            try:
                endpoint.full_clean()
            except ValidationError as exc:
                why = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                raise CommandError(f"{file}: line {line.number}: {why}") from None
            made[line.number] = endpoint
        return made

    def _rewrite(self, table: crontab.Crontab, heartbeats: dict[int, Endpoint], start: bool):
        out = []
        for line in table.lines:
            if line.skipped:
                out += [f"# cronplane: not watched ({line.skipped})", line.text]
            elif line.number in heartbeats:
                endpoint = heartbeats[line.number]
                url = ping_url(endpoint)
                other = crontab.rewritten(line, url, start=not start)
                out += [
                    f"# cronplane heartbeat {endpoint.name}; "
                    + ("on success only" if start else "with /start and the exit status")
                    + f": {other}",
                    crontab.rewritten(line, url, start=start),
                ]
            else:
                out.append(line.text)
        return "\n".join(out) + "\n"
