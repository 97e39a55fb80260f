"""Backfill: run a schedule's slots over a past time range, as if the scheduler had been there.

Each slot becomes a run with its original `scheduled_for` (so templates, handlers and the
Idempotency-Key see the slot, not today), exactly once: a slot that already ran — on schedule,
as a catch-up or in an earlier backfill — is left alone, and the unique constraint on
(endpoint, scheduled_for, attempt) settles a race between two backfills. A slot recorded
`missed`, `skipped` or `cancelled` never ran, so backfilling it runs it (its record says so).

The runs are `pending` and started by the dispatcher's `dispatch_pending` oldest slot first,
under the endpoint's overlap policy: one at a time unless overlap is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from endpoints import schedules
from endpoints.models import Endpoint
from runs.models import Log, idempotency_key_for_slot

# States of a slot's first attempt that mean it never ran: a backfill may run it.
NEVER_RAN = (Log.State.MISSED, Log.State.SKIPPED, Log.State.CANCELLED)


@dataclass
class Plan:
    """The slots in a range and what a backfill would do with each."""

    slots: list[datetime] = field(default_factory=list)
    to_run: list[datetime] = field(default_factory=list)
    already_ran: list[datetime] = field(default_factory=list)
    # Slots recorded as never run (missed/skipped/cancelled): run now, their record updated.
    reopened: list[datetime] = field(default_factory=list)


def plan(endpoint: Endpoint, start: datetime, end: datetime, *, now: datetime) -> Plan:
    """The slots in [start, end) and which of them a backfill would run. Raises
    ValidationError (with a field) for a range or endpoint that cannot be backfilled."""
    _check(endpoint, start, end, now)
    limit = settings.SCHEDULER_MAX_BACKFILL_SLOTS
    slots = schedules.runs_between(
        endpoint.schedule, start - timedelta(microseconds=1), end, limit + 1
    )
    slots = [slot for slot in slots if slot < end]
    if len(slots) > limit:
        raise ValidationError(
            {"end": f"The range holds more than {limit} slots; backfill a shorter range."}
        )
    existing = dict(
        Log.objects.filter(endpoint=endpoint, scheduled_for__in=slots, attempt=1).values_list(
            "scheduled_for", "state"
        )
    )
    result = Plan(slots=slots)
    for slot in slots:
        state = existing.get(slot)
        if state is None:
            result.to_run.append(slot)
        elif state in NEVER_RAN:
            result.reopened.append(slot)
        else:
            result.already_ran.append(slot)
    return result


def backfill(
    endpoint: Endpoint, start: datetime, end: datetime, *, by: str = "", now: datetime
) -> Plan:
    """Create the runs of the slots in [start, end) that have not run; return the plan."""
    with transaction.atomic():
        # Serialize backfills of one endpoint with each other and with its dispatcher pass.
        Endpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
        result = plan(endpoint, start, end, now=now)
        Log.objects.bulk_create(
            [
                Log(
                    endpoint=endpoint,
                    trigger=Log.Trigger.BACKFILL,
                    triggered_by=by[:150],
                    scheduled_for=slot,
                    due_at=now,
                    created_at=now,
                    state=Log.State.PENDING,
                    idempotency_key=idempotency_key_for_slot(endpoint.pk, slot),
                )
                for slot in result.to_run
            ],
            ignore_conflicts=True,
        )
        for log in Log.objects.filter(
            endpoint=endpoint, scheduled_for__in=result.reopened, attempt=1, state__in=NEVER_RAN
        ):
            was = f"was {log.state}" + (f": {log.reason}" if log.reason else "")
            log.reason = f"Backfilled by {by or 'a user'} ({was})"[:300]
            log.state, log.trigger, log.triggered_by, log.due_at, log.finished_at = (
                Log.State.PENDING, Log.Trigger.BACKFILL, by[:150], now, None,
            )  # fmt: skip
            log.idempotency_key = idempotency_key_for_slot(endpoint.pk, log.scheduled_for)
            log.save(
                update_fields=[
                    "reason", "state", "trigger", "triggered_by", "due_at", "finished_at",
                    "idempotency_key",
                ]
            )  # fmt: skip
    return result


def _check(endpoint: Endpoint, start: datetime, end: datetime, now: datetime) -> None:
    if endpoint.kind == Endpoint.Kind.HEARTBEAT:
        raise ValidationError({"kind": "A heartbeat's slots are pinged by its job, not run."})
    if endpoint.schedule_type not in (Endpoint.ScheduleType.CRON, Endpoint.ScheduleType.INTERVAL):
        raise ValidationError(
            {"schedule_type": "Only cron and interval schedules have slots to backfill."}
        )
    if not endpoint.enabled:
        raise ValidationError({"enabled": "The endpoint is paused; resume it to backfill."})
    if end <= start:
        raise ValidationError({"end": "The end of the range must be after its start."})
    if end > now:
        raise ValidationError({"end": "Backfill covers the past: choose an end before now."})
