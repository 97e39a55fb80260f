"""Scheduled actions (seed 003's programmatic API): run a registered handler at a time, once or
on a recurring interval.

    action_id = schedule_action("webhook:send", {"url": "https://…", "entityId": "task-123"},
                                scheduled_at=in_an_hour, dedup_key="task-123-created")
    recurring_id = schedule_recurring_action("billing:check-renewals", {}, "daily")
    cancel_scheduled_action(action_id)  # → True if it had not run yet

An action is an Endpoint of kind handler with a one-time or interval schedule; its id is the
endpoint's id as a string. Its status is that of its latest run (Log): pending (none yet, or
waiting), running, completed, failed, cancelled, skipped or missed.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from endpoints import schedule_syntax
from endpoints.models import Endpoint
from endpoints.storable import within_range
from runs import verbs
from runs.models import Log

SCHEDULES = (Endpoint.ScheduleType.ONCE, Endpoint.ScheduleType.INTERVAL)
# A cancelled action's disabled_reason: it is done, not paused (dashboard/states.py).
CANCELLED = "Action cancelled."
# Action status ← the state of the action's latest Log.
STATUS_OF_STATE = {
    Log.State.PENDING: "pending",
    Log.State.QUEUED: "pending",
    Log.State.RUNNING: "running",
    Log.State.SUCCESS: "completed",
    Log.State.FAILED: "failed",
    Log.State.CANCELLED: "cancelled",
    Log.State.SKIPPED: "skipped",
    Log.State.MISSED: "missed",
}
STATUSES = ("pending", "running", "completed", "failed", "cancelled", "skipped", "missed")
# Endpoint field → the Python API's parameter, for validation errors.
PARAMETERS = {
    "handler": "action_type",
    "name": "action_type",
    "payload": "payload",
    "run_at": "scheduled_at",
    "starts_at": "scheduled_at",
    "interval_seconds": "interval",
}


def schedule_action(
    action_type: str,
    payload: dict[str, Any],
    scheduled_at: datetime | None = None,
    dedup_key: str | None = None,
    *,
    recurring_interval: str | int | None = None,
    created_by=None,
) -> str:
    """Schedule `action_type` (a registered handler) to run with `payload` at `scheduled_at`.

    Default: now. With `recurring_interval` ('hourly', 'daily', '15m', seconds…) it recurs from
    then on. With `dedup_key`, an action already scheduled under that key (and type) is not
    scheduled again: its id is returned. Raises ValidationError keyed by parameter name.
    """
    name = _name(action_type, dedup_key)
    if dedup_key is not None and (existing := actions().filter(name=name).first()):
        return str(existing.pk)
    endpoint = _build(action_type, payload, scheduled_at, recurring_interval, name)
    endpoint.created_by = created_by
    try:
        endpoint.full_clean(validate_unique=False)
    except ValidationError as exc:
        raise ValidationError(_renamed(exc)) from None
    try:
        with transaction.atomic():
            verbs.save(endpoint)
            _due_from(endpoint, endpoint.run_at or endpoint.starts_at)
    except IntegrityError:
        # The same dedup key scheduled at the same moment by another process: theirs stands.
        existing = actions().filter(name=name).first()
        if existing is None:
            raise
        return str(existing.pk)
    return str(endpoint.pk)


def schedule_recurring_action(
    action_type: str,
    payload: dict[str, Any],
    interval: str | int,
    *,
    scheduled_at: datetime | None = None,
    dedup_key: str | None = None,
    created_by=None,
) -> str:
    """Run `action_type` every `interval` ('hourly', 'daily', '5m', seconds…), first at
    `scheduled_at` (default: now)."""
    return schedule_action(
        action_type,
        payload,
        scheduled_at,
        dedup_key,
        recurring_interval=interval,
        created_by=created_by,
    )


def cancel_scheduled_action(action_id: str | int) -> bool:
    """Stop an action before it runs (again); False if it is unknown or has nothing left to run.

    Its waiting runs are cancelled and it is disabled; a run already going is left to finish.
    """
    endpoint = find_action(action_id)
    if endpoint is None:
        return False
    with transaction.atomic():
        waiting = Log.objects.filter(endpoint=endpoint, state__in=Log.WAITING_STATES)
        cancelled = [log for log in waiting if verbs.cancel(log, reason=CANCELLED)]
        had_next_run = endpoint.enabled and endpoint.next_run_at is not None
        if endpoint.enabled:
            verbs.disable(endpoint, reason=CANCELLED)
    return bool(cancelled) or had_next_run


def retry_scheduled_action(action_id: str | int, *, by: str = "") -> Log:
    """Run a failed action again now; raises verbs.NotRetryable unless its latest run failed."""
    endpoint = find_action(action_id)
    latest = latest_run(endpoint) if endpoint else None
    if latest is None:
        raise verbs.NotRetryable("The action has not run yet; only a failed one can be retried.")
    return verbs.retry(latest, by=by)


# --- reading ---


def actions() -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(kind=Endpoint.Kind.HANDLER, schedule_type__in=SCHEDULES)


def find_action(action_id: str | int) -> Endpoint | None:
    text = str(action_id)
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        return None
    return actions().filter(pk=int(text)).first()


def latest_run(endpoint: Endpoint) -> Log | None:
    return Log.objects.latest_for(endpoint).first()


def with_latest_run(queryset: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    """Annotated with the id and state of each endpoint's latest Log (None without one)."""
    latest = Log.objects.filter(endpoint=OuterRef("pk")).order_by("-id")
    return queryset.annotate(
        latest_state=Subquery(latest.values("state")[:1]),
        latest_id=Subquery(latest.values("id")[:1]),
    )


def latest_runs(endpoints: list[Endpoint]) -> dict[int, Log]:
    """endpoint id → its latest Log, for endpoints from with_latest_run (one query)."""
    ids = [endpoint.latest_id for endpoint in endpoints if endpoint.latest_id is not None]
    return {log.endpoint_id: log for log in Log.objects.filter(pk__in=ids)}


def filter_status(queryset: QuerySet[Endpoint], status: str) -> QuerySet[Endpoint]:
    """Actions whose status is `status` (the queryset must come from with_latest_run)."""
    states = [state for state, shown in STATUS_OF_STATE.items() if shown == status]
    matches = Q(latest_state__in=states)
    if status == "pending":
        matches |= Q(latest_state__isnull=True, enabled=True)
    elif status == "cancelled":
        matches |= Q(latest_state__isnull=True, enabled=False)
    return queryset.filter(matches)


def status_of(endpoint: Endpoint, latest: Log | None) -> str:
    if latest is None:
        return "pending" if endpoint.enabled else "cancelled"
    return STATUS_OF_STATE[latest.state]


# --- building ---


def _name(action_type: Any, dedup_key: str | None) -> str:
    """A unique, URL-safe endpoint name: the type, then a random or dedup-derived suffix."""
    label = re.sub(r"[^A-Za-z0-9\-_.:]+", "-", str(action_type))[:70].strip("-") or "action"
    if dedup_key is None:
        return f"{label}.{uuid.uuid4().hex[:16]}"
    digest = hashlib.sha256(f"{action_type}\0{dedup_key}".encode()).hexdigest()[:24]
    return f"{label}.dedup-{digest}"


def _build(action_type, payload, scheduled_at, recurring_interval, name) -> Endpoint:
    errors: dict[str, str] = {}
    if not isinstance(action_type, str):
        errors["action_type"] = "Must be the name of a registered handler."
    first = scheduled_at or timezone.now()
    if not isinstance(first, datetime) or timezone.is_naive(first):
        errors["scheduled_at"] = "Must be an aware datetime."
    elif not within_range(first):
        errors["scheduled_at"] = "Must be between 1970 and 3000."
    endpoint = Endpoint(name=name, kind=Endpoint.Kind.HANDLER, handler=action_type, url="")
    endpoint.payload = payload
    if recurring_interval is None:
        endpoint.schedule_type, endpoint.run_at = Endpoint.ScheduleType.ONCE, first
    else:
        endpoint.schedule_type, endpoint.starts_at = Endpoint.ScheduleType.INTERVAL, first
        try:
            endpoint.interval_seconds = schedule_syntax.parse_interval(recurring_interval)
        except schedule_syntax.ScheduleError as exc:
            errors["interval"] = exc.message
    if errors:
        raise ValidationError(errors)
    return endpoint


def _due_from(endpoint: Endpoint, first: datetime) -> None:
    """Make a first occurrence at or before now due at once.

    Saving computes the next slot strictly after now, which would pass over an action
    scheduled for now (the default) or for a moment ago; the dispatcher runs it from here.
    """
    if endpoint.enabled and first <= timezone.now():
        endpoint.make_due(first)


def _renamed(error: ValidationError) -> dict[str, list[str]]:
    renamed: dict[str, list[str]] = {}
    for field, messages in error.message_dict.items():
        renamed.setdefault(PARAMETERS.get(field, field), []).extend(messages)
    return renamed
