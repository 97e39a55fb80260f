"""Dispatch lag, defined once."""

from __future__ import annotations

from datetime import datetime

from endpoints.models import Endpoint


def lag_seconds(
    started: datetime,
    slot: datetime,
    endpoint: Endpoint,
    *,
    schedule_type: str | None,
    created_at: datetime,
) -> float:
    """Dispatch lag, the one definition (a run's page, the admin, the status page, /metrics):
    seconds from when a run was meant to start to when it did, never below 0.

    Meant to start: its slot plus its endpoint's jitter for it (a spread the user chose), and
    for a one-time instant already past when the job was made (seed 003's scheduledAt is
    "default: now") the job's creation; a run with no slot (schedule_type None): when it was
    asked for. So the figure measures the dispatcher and the workers, never an instant a user
    picked. `endpoint` needs only its pk and jitter_seconds.
    """
    intended = slot
    if schedule_type is not None and endpoint.jitter_seconds:
        intended += endpoint.jitter_for(slot)
    if schedule_type == Endpoint.ScheduleType.ONCE:
        intended = max(intended, created_at)
    return max(0.0, (started - intended).total_seconds())
