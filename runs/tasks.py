"""Functions the django-q2 cluster runs."""

from __future__ import annotations

import time

from django.utils import timezone

from runs import cluster, executor
from runs.engine import engine
from runs.models import Log

# Longest a batch waits for its due_at (the dispatcher hands runs over at most 1 s early).
MAX_HOLD_SECONDS = 2.0


def run_batch(log_ids: list[int]) -> dict[str, int]:
    """Claim those of these Logs that are still waiting and hand them to this process's engine;
    returns at once (runs/engine.py performs and records them). Re-delivery claims none twice."""
    loaded = _hold_until_due(log_ids)
    logs = executor.claim(log_ids, timezone.now(), cluster=cluster.current(), loaded=loaded)
    if logs:
        engine().submit(logs)
    return {"claimed": len(logs)}


def run_log(log_id: int) -> dict[str, int]:
    """One run (tasks enqueued before batches existed): a batch of one."""
    return run_batch([log_id])


def _hold_until_due(log_ids: list[int]) -> dict[int, Log] | None:
    """Wait for the batch's slot (the dispatcher hands runs over up to DISPATCH_AHEAD early);
    meanwhile load its Logs and endpoints, so that at the instant only the claim is left.
    Returns the Logs loaded, or None when nothing was early."""
    loaded = {
        log.pk: log
        for log in Log.objects.select_related("endpoint").filter(
            pk__in=log_ids, state__in=executor.WAITING
        )
    }
    due = max((log.due_at for log in loaded.values()), default=None)
    if due is None or due <= timezone.now():
        return None
    wait = (due - timezone.now()).total_seconds()
    if wait > 0:
        time.sleep(min(wait, MAX_HOLD_SECONDS))
    # Never before its time: a run still not due stays queued (handed out again after its lease).
    now = timezone.now()
    return {pk: log for pk, log in loaded.items() if log.due_at <= now}
