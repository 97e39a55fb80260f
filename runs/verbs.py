"""Every change a user makes to a job or its runs, one function each.

The doors — the admin, the dashboard, the three APIs, the commands, job files and the Python API
(runs/actions.py) — each make one call here, so a change is checked, worded and recorded the same
whichever door it came through. Each verb owns:

1. its precondition: what it refuses (a ValidationError or NotRetryable naming the field) and
   when it changes nothing (enabling what is enabled leaves its next run and failure streak);
2. the wording it records: `disabled_reason` and `paused_by` (`wording`);
3. the transition: the model's fields, written by the model (Endpoint.set_enabled / pause);
4. its event: the audit entry django-auditlog writes from that save (endpoints/audit.py).

In runs/, not endpoints/: trigger, retry, cancel and backfill make or change runs (Log), and
`endpoints` imports nothing from `runs`. The machinery under the run verbs (making a Log,
enqueueing it, running it in the foreground) is runs/services.py.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from endpoints.models import Endpoint
from endpoints.storable import LATEST, has_unstorable_text
from endpoints.timetable import disabled_by
from runs import backfill as backfills
from runs import flow, recording
from runs.models import Log
from runs.services import HEARTBEAT_NOT_RUN, Actor, create_run, enqueue_within_limits

__all__ = [
    "Actor",
    "NotRetryable",
    "backfill",
    "cancel",
    "delete",
    "disable",
    "enable",
    "retry",
    "save",
    "trigger",
    "wording",
]


def wording(by: str, reason: str = "") -> str:
    """The disabled_reason every door records: the reason given, else who disabled it."""
    return reason or disabled_by(by)


# --- a job ---


def save(endpoint: Endpoint, *, by: str = "", was_enabled: bool | None = None) -> None:
    """Create or update a job built by any door (a form, the admin, a job file, an API).

    An update writes what an edit may change, never the run statistics a dispatcher or worker
    moved meanwhile (Endpoint.save_edit). Turning a job on or off is enable's and disable's
    (their wording, their forgiveness of past failures): `was_enabled` says what it was.
    """
    if endpoint._state.adding:
        if not endpoint.enabled and not endpoint.disabled_reason:
            endpoint.disabled_reason, endpoint.paused_by = wording(by), by[:150]
        endpoint.save()
        return
    wanted = endpoint.enabled
    switched = was_enabled is not None and wanted != was_enabled
    if switched:
        endpoint.enabled = was_enabled
    endpoint.save_edit()
    if switched:
        (enable if wanted else disable)(endpoint, by=by)


def enable(endpoint: Endpoint, *, by: str = "", now: datetime | None = None) -> bool:
    """Schedule again (also: resume), the next slot counted from now: a pause is not downtime;
    past failures are forgiven. Enabling an enabled job changes nothing. Whether it changed."""
    if endpoint.enabled:
        return False
    with transaction.atomic():
        endpoint.set_enabled(True, now=now or timezone.now())
        recording.forgive(endpoint)
    return True


def disable(
    endpoint: Endpoint,
    *,
    by: str = "",
    reason: str = "",
    until: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Stop scheduling (also: pause), recording who and why (`wording`); with `until`, the
    dispatcher resumes it then. Disabling a disabled job changes nothing unless it is given a
    reason or an `until` (a pause explained or moved). Whether it changed."""
    now = now or timezone.now()
    if until is not None and until <= now:
        raise ValidationError({"paused_until": "Choose a time in the future to resume at."})
    if until is not None and until > LATEST:
        raise ValidationError({"paused_until": "Choose a date before 3000."})
    if has_unstorable_text(reason) or has_unstorable_text(by):
        raise ValidationError({"reason": "Contains a NUL character or invalid Unicode."})
    if not endpoint.enabled and not reason and until is None:
        return False
    endpoint.pause(now=now, by=by, reason=wording(by, reason), until=until)
    return True


def delete(endpoint: Endpoint) -> None:
    """Deregister a job; its runs go with it (a run in flight records nothing afterwards)."""
    endpoint.delete()


# --- its runs ---


def trigger(
    endpoint: Endpoint,
    *,
    by: str = "",
    trigger: str = Log.Trigger.MANUAL,
    dry_run: bool = False,
    as_of: datetime | None = None,
    actor: Actor | None = None,
) -> Log:
    """Run now, on the cluster: the Log is queued and handed to the broker once committed.
    A heartbeat is refused (nothing calls it)."""
    with transaction.atomic():
        log = create_run(
            endpoint, trigger=trigger, by=by, dry_run=dry_run, state=Log.State.QUEUED,
            as_of=as_of, actor=actor,
        )  # fmt: skip
        enqueue_within_limits(log)
    return log


class NotRetryable(ValueError):
    pass


def retry(log: Log, *, by: str = "") -> Log:
    """Run a failed run again now, as the next attempt of its chain (on the cluster)."""
    latest = log
    while (following := Log.objects.filter(retry_of=latest).first()) is not None:
        latest = following
    if latest.endpoint.kind == Endpoint.Kind.HEARTBEAT:
        raise NotRetryable(HEARTBEAT_NOT_RUN)
    if latest.state != Log.State.FAILED:
        raise NotRetryable(f"{latest.run_id} is {latest.state}; only a failed run can be retried.")
    with transaction.atomic():
        now = timezone.now()
        attempt = latest.following_attempt(
            trigger=Log.Trigger.RETRY, by=by, due_at=now, state=Log.State.QUEUED,
            created_at=now, queued_at=now,
        )  # fmt: skip
        attempt.save()
        enqueue_within_limits(attempt)
    return attempt


def cancel(log: Log, *, reason: str = "Cancelled by a user.") -> bool:
    """Cancel a run that has not started; False if it already started or ended."""
    now = timezone.now()
    cancelled = bool(
        Log.objects.filter(pk=log.pk, state__in=Log.WAITING_STATES).update(
            state=Log.State.CANCELLED, reason=reason[:300], finished_at=now
        )
    )
    if cancelled and log.flow_key:
        flow.release([log.flow_key], now)  # its place in the key goes to the next in line
    return cancelled


def backfill(
    endpoint: Endpoint, start: datetime, end: datetime, *, by: str, now: datetime
) -> backfills.Plan:
    """Run the slots of [start, end) that have no run, oldest first (runs/backfill.py)."""
    return backfills.backfill(endpoint, start, end, by=by, now=now)
