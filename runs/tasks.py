"""Functions the django-q2 cluster runs."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from runs import cluster, executor
from runs.dispatcher_loop import MAX_LOOKAHEAD
from runs.engine import engine

# How far ahead of its due_at a run may be claimed: the dispatcher hands runs over up to
# MAX_LOOKAHEAD early. One due later stays queued, and is handed out again.
MAX_AHEAD_SECONDS = MAX_LOOKAHEAD.total_seconds() + 2.0


def run_batch(log_ids: list[int]) -> dict[str, int]:
    """Claim those of these Logs that are still waiting and hand them to this process's engine;
    returns at once (runs/engine.py performs and records them). Re-delivery claims none twice.

    A batch handed over before its slot (the dispatcher looks ahead) is claimed now and sent by
    the engine at the slot, so that at the instant only the send is left."""
    now = timezone.now()
    until = now + timedelta(seconds=MAX_AHEAD_SECONDS)
    logs = executor.claim(log_ids, now, cluster=cluster.current(), until=until)
    if logs:
        engine().submit(logs)
    return {"claimed": len(logs)}


def run_log(log_id: int) -> dict[str, int]:
    """One run (tasks enqueued before batches existed): a batch of one."""
    return run_batch([log_id])
