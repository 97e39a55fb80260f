"""Retention: delete old run logs in small batches, always keeping each endpoint's latest ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from runs.models import Log, Notification

KEEP_PER_ENDPOINT = 100
BATCH = 1000


def prune_logs(
    now: datetime | None = None,
    *,
    days: int | None = None,
    keep: int = KEEP_PER_ENDPOINT,
    batch: int = BATCH,
) -> int:
    """Delete finished Logs older than `days` except each endpoint's latest `keep`; return count.

    1. Find the endpoints that have anything old enough (one grouped query).
    2. For each, the id of its keep-th newest Log is the floor: only older ids may go.
    3. Delete by primary key, `batch` rows per statement, so no long lock is held.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.LOG_RETENTION_DAYS if days is None else days)
    old = Log.objects.filter(created_at__lt=cutoff, state__in=Log.FINAL_STATES)
    deleted = 0
    for row in old.values("endpoint_id").annotate(oldest=Min("id")).order_by():
        endpoint_id = row["endpoint_id"]
        floor = (
            Log.objects.filter(endpoint_id=endpoint_id)
            .order_by("-id")
            .values_list("id", flat=True)[keep - 1 : keep]
            .first()
        )
        if floor is None:
            continue  # fewer than `keep` logs in all
        candidates = old.filter(endpoint_id=endpoint_id, id__lt=floor)
        while ids := list(candidates.values_list("id", flat=True)[:batch]):
            # A retry chain is linked by retry_of (SET NULL): deleting an old attempt is safe.
            deleted += Log.objects.filter(id__in=ids).delete()[1].get("runs.Log", 0)
    Notification.objects.filter(created_at__lt=cutoff).exclude(state="pending").delete()
    return deleted


def prune_logs_task() -> int:
    """The cluster's daily retention pass (a django-q2 Schedule made by `qcluster`)."""
    return prune_logs()
