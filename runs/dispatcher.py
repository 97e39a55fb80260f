"""The dispatcher: turns due schedule slots into Log rows, exactly once, and hands them to workers.

Everything here takes `now` as a parameter. The loop in `runs/dispatcher_loop.py`, the tests and
`/api/v1/cron/process` all call the same three functions:

- `dispatch_due(now)`      slots of endpoints whose next_run_at has come;
- `dispatch_pending(now)`  retries (and queue_one runs) whose due_at has come;

and `runs.cluster.recover_stuck(now)` takes back runs whose worker or cluster was lost. What a
due endpoint's slots become (the missed-run and overlap policies) is `runs/slot_plan.py`.

Exactly once (DESIGN §5.1): due endpoints are locked as they are read (`FOR UPDATE SKIP LOCKED`
on PostgreSQL; on SQLite, whose IMMEDIATE transactions serialize writers, read before the
transaction and checked in it still due at the slot read) and advanced in the same transaction
that writes their slot Logs; the unique constraint on (endpoint, scheduled_for, attempt) is the
last word.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.db import connections, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from endpoints.models import Endpoint
from runs import flow, verbs
from runs.bulk import insert_logs
from runs.cluster import QUEUED_LEASE
from runs.models import Log
from runs.slot_plan import Plan, mark, plan_endpoint

# Why a one-time endpoint is disabled once its slot is dispatched: it is done scheduling, not
# stopped, so that slot's retries still run (a user's pause or cancel replaces this reason).
ONE_TIME_DISPATCHED = "One-time run dispatched."


# What deciding when and whether needs of a due endpoint; what a call sends is left in the
# database (loading whole rows was a quarter of a pass, profiled). Workers load the endpoint
# afresh to call it.
_FOR_DISPATCH = (
    "id", "schedule_type", "cron_expression", "interval_seconds", "run_at", "timezone",
    "starts_at", "ends_at", "created_at", "next_run_at", "enabled", "disabled_reason",
    "max_runs", "jitter_seconds", "overlap_policy", "missed_policy", "catch_up_window_seconds",
    "flow_key",
)  # fmt: skip


@dataclass
class Dispatch:
    """What one pass did. `to_run` are the Logs now in state queued, to hand to workers."""

    to_run: list[Log] = field(default_factory=list)
    missed: int = 0
    skipped: int = 0
    waiting: int = 0
    endpoints: int = 0
    # Endpoints due within `ahead` but left for their slot (a run of theirs is still open):
    # how many, and for each its slot and the open runs it waits on.
    deferred: int = 0
    blocked: dict[int, tuple[datetime, list[int]]] = field(default_factory=dict)

    def __iadd__(self, other: Dispatch) -> Dispatch:
        self.to_run += other.to_run
        self.missed += other.missed
        self.skipped += other.skipped
        self.waiting += other.waiting
        self.endpoints += other.endpoints
        self.deferred += other.deferred
        self.blocked |= other.blocked
        return self


def dispatch_due(
    now: datetime,
    *,
    limit: int = 500,
    ahead: timedelta = timedelta(0),
    trigger: str = Log.Trigger.SCHEDULE,
    cluster: str = "",
    exclude: Collection[int] = (),
) -> Dispatch:
    """Claim every slot due at `now` (or within `ahead` of it) and record it; return the Logs.

    1. Read the due endpoints (on PostgreSQL locked, others' locked rows skipped, not waited
       for) and their open runs.
    2. List each one's slots from next_run_at to now + ahead; apply the missed-run policy to
       late ones.
    3. Apply the overlap policy against the endpoint's open runs.
    4. Insert the Logs in one statement and advance next_run_at (one-time schedules disable),
       in the transaction of 1 on PostgreSQL; on SQLite in a transaction of its own, which
       first checks that the endpoints are still due at the slot read in 1 (`_checked`).

    `ahead` lets the loop hand a slot's runs to workers before the slot, so that they are
    claimed and called at the instant itself (runs/tasks.py holds a run until its due_at).
    Only an endpoint's next slot is taken early, never two. One whose overlap policy looks at
    open runs is taken early only when it has none (its decision would be the same at the
    slot); otherwise it is `deferred` to the slot, and `blocked` says what it waits on (the
    loop leaves such endpoints out with `exclude` until those runs end or the slot comes).
    `trigger` records who fired on-time slots: the loop (`schedule`) or /api/v1/cron/process;
    `cluster` holds the queued runs (the dispatching cluster's id, runs/cluster.py).
    """
    result = Dispatch()
    until = now + ahead
    resume_paused(now)
    # Heartbeats are pinged, never called (runs/heartbeats.py).
    candidates = Endpoint.objects.due(until).exclude(kind=Endpoint.Kind.HEARTBEAT)
    if exclude:
        candidates = candidates.exclude(pk__in=list(exclude))
    decide = partial(_decide, now=now, until=until, ahead=ahead, trigger=trigger)
    # Where the database can skip rows another transaction holds (PostgreSQL), the endpoints
    # are locked as they are read, so that concurrent passes take different ones. SQLite has
    # one writer at a time, and a transaction holds its write lock from its first statement:
    # there reading and deciding, most of a pass, come before it (every claim and recorder
    # waited behind them), and the transaction checks what they found.
    lock_as_read = connections[Endpoint.objects.db].features.has_select_for_update_skip_locked
    with transaction.atomic() if lock_as_read else nullcontext():
        due, decided = decide(candidates, limit)
        if not due:
            return result
        with transaction.atomic(savepoint=False):
            if not lock_as_read:
                due, decided = _checked(due, decided, candidates, limit, decide)
            taken: list[Endpoint] = []
            logs: list[Log] = []
            keyed: list[Log] = []
            for endpoint in due:
                plan = decided[endpoint.pk]
                if not isinstance(plan, Plan):
                    result.blocked[endpoint.pk] = (endpoint.next_run_at, plan)
                    continue
                taken.append(endpoint)
                for log in plan.logs:
                    log.cluster = cluster if log.state == Log.State.QUEUED else ""
                if endpoint.flow_key:
                    keyed += [log for log in plan.logs if log.state == Log.State.QUEUED]
                logs += plan.logs
                endpoint.advance_to(plan.next_run_at)
                if plan.finished and endpoint.schedule_type == Endpoint.ScheduleType.ONCE:
                    endpoint.enabled = False
                    endpoint.disabled_reason = ONE_TIME_DISPATCHED
            result.deferred = len(due) - len(taken)
            logs = _without_claimed_slots(logs)
            if keyed:
                kept = {id(log) for log in logs}
                keyed = [log for log in keyed if id(log) in kept]
                result.to_run += flow.admit(keyed, now, until=until, cluster=cluster)
            insert_logs(logs)
            Endpoint.store_advanced(taken)
    result.endpoints = len(taken)
    for log in logs:
        if log.state == Log.State.QUEUED:
            result.to_run.append(log)
        elif log.state == Log.State.MISSED:
            result.missed += 1
        elif log.state == Log.State.SKIPPED:
            result.skipped += 1
        else:
            result.waiting += 1
    return result


def _decide(
    candidates, limit: int, *, now: datetime, until: datetime, ahead: timedelta, trigger: str
) -> tuple[list[Endpoint], dict[int, Plan | list[int]]]:
    """Up to `limit` due endpoints (locked where the database skips locked rows), and each
    one's plan or, when it may not be taken early, the open runs it waits on."""
    due = list(
        candidates.only(*_FOR_DISPATCH)
        .order_by("next_run_at")
        .select_for_update(skip_locked=True)[:limit]
    )
    open_runs = _open_runs([endpoint.pk for endpoint in due])
    used_runs = _runs_used([endpoint for endpoint in due if endpoint.max_runs is not None])
    decided: dict[int, Plan | list[int]] = {}
    for endpoint in due:
        runs = open_runs[endpoint.pk]
        if ahead and not _may_take_early(endpoint, now, open_runs):
            decided[endpoint.pk] = [run.pk for run in runs]
        else:
            used = used_runs.get(endpoint.pk, 0)
            decided[endpoint.pk] = plan_endpoint(
                endpoint, now, runs, used, until=until, trigger=trigger
            )
    return due, decided


def _checked(due, decided, candidates, limit: int, decide):
    """In the transaction, what was read and decided before it: the endpoints still due at the
    slot read. The others (another pass took them, a user paused or rescheduled one) are
    replaced by what is due now, read and decided in the transaction. (Open runs are not read
    again: as on PostgreSQL, where they are not locked either, a run that begins or ends
    meanwhile counts as one that began or ended just after the pass.)"""
    ids = [endpoint.pk for endpoint in due]
    current = dict(
        Endpoint.objects.filter(pk__in=ids, enabled=True).values_list("pk", "next_run_at")
    )
    kept = [endpoint for endpoint in due if current.get(endpoint.pk) == endpoint.next_run_at]
    if len(kept) == len(due):
        return due, decided
    others = candidates.exclude(pk__in=[endpoint.pk for endpoint in kept])
    more, more_decided = decide(others, limit - len(kept))
    return kept + more, decided | more_decided


def _may_take_early(endpoint: Endpoint, now: datetime, open_runs: dict[int, list[Log]]) -> bool:
    if endpoint.next_run_at <= now or endpoint.overlap_policy == Endpoint.OverlapPolicy.ALLOW:
        return True
    return not open_runs.get(endpoint.pk)


def resume_paused(now: datetime) -> list[Endpoint]:
    """Resume endpoints whose pause ended (one read of endpoint_paused_until_idx when none)."""
    resumed = []
    for endpoint in Endpoint.objects.filter(enabled=False, paused_until__lte=now).order_by():
        with transaction.atomic():
            # Conditional: a user who resumed or re-paused it meanwhile wins.
            if Endpoint.objects.filter(
                pk=endpoint.pk, enabled=False, paused_until=endpoint.paused_until
            ).update(enabled=True):
                verbs.enable(endpoint, now=now)
                resumed.append(endpoint)
    return resumed


# Pending Logs of one endpoint examined per pass; the rest wait for the next (the loop looks
# again at once while pending Logs are due).
PENDING_PER_ENDPOINT = 50
_IN_LINE = (F("due_at").asc(), F("id").asc())


def dispatch_pending(now: datetime, *, limit: int = 500, cluster: str = "") -> Dispatch:
    """Queue pending Logs whose due_at has come (retries, queue_one, jittered starts, backfills)
    unless they would overlap; in slot order, so a backfill runs its slots oldest first."""
    result = Dispatch()
    # At most PENDING_PER_ENDPOINT of each endpoint's, so that a backlog of one endpoint (a
    # replay or backfill of thousands, one at a time) cannot fill the pass and keep every
    # other endpoint's retries waiting behind it.
    first_of_each = (
        Log.objects.filter(state=Log.State.PENDING, due_at__lte=now)
        .annotate(place=Window(RowNumber(), partition_by=[F("endpoint_id")], order_by=_IN_LINE))
        .filter(place__lte=PENDING_PER_ENDPOINT)
        .values("pk")
    )
    with transaction.atomic():
        pending = list(
            Log.objects.filter(pk__in=first_of_each, state=Log.State.PENDING)
            .select_related("endpoint")
            .order_by(*_IN_LINE)
            .select_for_update(skip_locked=True, of=("self",))[:limit]
        )
        if not pending:
            return result
        running = _open_runs(
            {log.endpoint_id for log in pending}, states=(Log.State.QUEUED, Log.State.RUNNING)
        )
        changed, keyed = [], []
        for log in pending:
            endpoint = log.endpoint
            if _stopped(endpoint) and log.trigger == Log.Trigger.RETRY:
                mark(log, Log.State.CANCELLED, "The endpoint was disabled before this retry.")
                log.finished_at = now
            elif not endpoint.enabled and log.trigger in _SCHEDULED_TRIGGERS:
                mark(log, Log.State.CANCELLED, "The endpoint was paused before this run began.")
                log.finished_at = now
            elif (
                running.get(endpoint.pk) and endpoint.overlap_policy != Endpoint.OverlapPolicy.ALLOW
            ):
                result.waiting += 1
                continue
            elif endpoint.flow_key:
                keyed.append(log)
                running.setdefault(endpoint.pk, []).append(log)
            else:
                log.state, log.queued_at, log.cluster = Log.State.QUEUED, now, cluster
                log.lease_expires_at = now + QUEUED_LEASE
                running.setdefault(endpoint.pk, []).append(log)
                result.to_run.append(log)
            changed.append(log)
        fields = ["state", "queued_at", "lease_expires_at", "reason", "finished_at", "cluster"]
        if keyed:
            result.to_run += flow.admit(keyed, now, until=now + flow.RATE_LEAD, cluster=cluster)
            result.to_run += [log for log in keyed if log.state == Log.State.QUEUED]
            result.waiting += sum(log.state == Log.State.PENDING for log in keyed)
            fields = sorted({*fields, *flow.FIELDS})
        Log.objects.bulk_update(changed, fields)
    return result


def _stopped(endpoint: Endpoint) -> bool:
    """Disabled by a person or a policy; a finished one-time endpoint is not (see above)."""
    finished_once = (
        endpoint.schedule_type == Endpoint.ScheduleType.ONCE
        and endpoint.disabled_reason == ONE_TIME_DISPATCHED
    )
    return not endpoint.enabled and not finished_once


def next_wakeup(now: datetime, ahead: timedelta = timedelta(0)) -> datetime | None:
    """The earliest instant anything becomes due (a slot, `ahead` early, or a pending Log)."""
    slot, pending = next_due()
    slot = slot - ahead if slot is not None else None
    candidates = [when for when in (slot, pending) if when is not None]
    return min(candidates) if candidates else None


def next_due() -> tuple[datetime | None, datetime | None]:
    """(The earliest next_run_at of an enabled endpoint, the earliest due_at of a pending Log):
    two index-only reads (endpoint_due_idx, log_pending_due_idx)."""
    slot = (
        Endpoint.objects.filter(enabled=True, next_run_at__isnull=False)
        .order_by("next_run_at")
        .values_list("next_run_at", flat=True)
        .first()
    )
    pending = (
        Log.objects.filter(state=Log.State.PENDING)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )
    return slot, pending


# A chain's run waiting behind a running one (queue_one) is the schedule's kind of run too.
_SCHEDULED_TRIGGERS = (
    Log.Trigger.SCHEDULE, Log.Trigger.CATCH_UP, Log.Trigger.BACKFILL, Log.Trigger.CHAIN,
)  # fmt: skip


def _open_runs(endpoint_ids, states=Log.OPEN_STATES) -> dict[int, list[Log]]:
    runs: dict[int, list[Log]] = defaultdict(list)
    # `trigger` too: plan_endpoint reads it of a pending run (a deferred field: a query each).
    runs_of = Log.objects.filter(endpoint_id__in=endpoint_ids, state__in=states)
    for log in runs_of.only("id", "endpoint_id", "state", "flow_key", "trigger"):
        runs[log.endpoint_id].append(log)
    return runs


def _runs_used(endpoints: list[Endpoint]) -> dict[int, int]:
    """Slots each endpoint has already run (for max_runs), counting runs still in flight."""
    if not endpoints:
        return {}
    counts: dict[int, int] = defaultdict(int)
    rows = (
        Log.objects.filter(endpoint__in=endpoints, attempt=1, scheduled_for__isnull=False)
        .exclude(state__in=(Log.State.MISSED, Log.State.SKIPPED, Log.State.CANCELLED))
        .values_list("endpoint_id", flat=True)
    )
    for endpoint_id in rows:
        counts[endpoint_id] += 1
    return counts


def _without_claimed_slots(logs: list[Log]) -> list[Log]:
    """Drop slots that already have a Log (a backfill, or a pass that raced us on SQLite)."""
    if not logs:
        return logs
    existing = set(
        Log.objects.filter(
            endpoint_id__in={log.endpoint_id for log in logs},
            scheduled_for__in={log.scheduled_for for log in logs},
            attempt=1,
        ).values_list("endpoint_id", "scheduled_for")
    )
    return [log for log in logs if (log.endpoint_id, log.scheduled_for) not in existing]
