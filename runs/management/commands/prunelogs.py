from django.conf import settings
from django.core.management.base import BaseCommand

from runs.retention import KEEP_PER_ENDPOINT, prune_logs


class Command(BaseCommand):
    help = (
        "Delete finished run logs older than LOG_RETENTION_DAYS, keeping at least the latest "
        f"{KEEP_PER_ENDPOINT} of every endpoint."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="Override LOG_RETENTION_DAYS for this run"
        )

    def handle(self, *args, days: int | None, **options) -> None:
        kept_days = settings.LOG_RETENTION_DAYS if days is None else days
        deleted = prune_logs(days=kept_days)
        self.stdout.write(f"Deleted {deleted} run log(s) older than {kept_days} day(s).")
