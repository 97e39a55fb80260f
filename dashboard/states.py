"""What the dashboard calls an endpoint's state: active, paused, or done.

A disabled endpoint is not always paused. A one-time job that has run, and a scheduled action
that was cancelled, have nothing left to do: they are *done*, not waiting for someone to resume
them, and are neither counted nor shown as paused.

`state_of(endpoint)` and the `DONE` condition say the same thing, one for a row in hand, one for
the database (filters and counts); keep them together.
"""

from __future__ import annotations

from django.db.models import Q

from endpoints.models import Endpoint
from runs import actions
from runs.dispatcher import ONE_TIME_DISPATCHED

ACTIVE, PAUSED, DONE_STATE = "active", "paused", "done"

# Why the engine disables what has finished: the dispatcher once a one-time slot is dispatched,
# cancel_scheduled_action. Users' pauses say anything else.
FINISHED_REASONS = (ONE_TIME_DISPATCHED, actions.CANCELLED)

ONCE = Endpoint.ScheduleType.ONCE

DONE = (
    Q(enabled=False, disabled_reason__in=FINISHED_REASONS)
    # A one-time job that ran and has no run ahead, however it ended up so.
    | Q(schedule_type=ONCE, last_run_at__isnull=False, next_run_at__isnull=True)
    & (Q(enabled=True) | Q(paused_until__isnull=True))
)


def state_of(endpoint: Endpoint) -> str:
    """'active', 'paused' or 'done' (as DONE decides in SQL)."""
    if not endpoint.enabled and endpoint.disabled_reason in FINISHED_REASONS:
        return DONE_STATE
    if (
        endpoint.schedule_type == ONCE
        and endpoint.last_run_at is not None
        and endpoint.next_run_at is None
        and (endpoint.enabled or endpoint.paused_until is None)
    ):
        return DONE_STATE
    return ACTIVE if endpoint.enabled else PAUSED


def done_description(endpoint: Endpoint) -> str:
    """Why a done endpoint has nothing left to do, in a user's words."""
    if endpoint.disabled_reason == actions.CANCELLED:
        return "Done: the action was cancelled."
    if endpoint.schedule_type == ONCE:
        return "Done: it ran its one time. Run now still works; edit its time to schedule it again."
    return f"Done: {endpoint.disabled_reason}" if endpoint.disabled_reason else "Done."
