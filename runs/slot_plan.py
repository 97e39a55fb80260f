"""What a due endpoint's slots become in a dispatcher pass (runs/dispatcher.py `dispatch_due`):
which run, which were missed (the missed-run policy), which are skipped or wait (the overlap
policy), and where its schedule goes next. Pure but for the Logs it makes (not saved here):
`now` is a parameter."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from endpoints import schedules
from endpoints.models import Endpoint
from runs.bulk import new_log
from runs.cluster import QUEUED_LEASE
from runs.models import Log, idempotency_key_for_slot

# The newest due slot dispatched within this of its time runs as scheduled; later than this, or
# superseded by a newer slot, it was missed (downtime) and the missed-run policy decides.
MISFIRE_GRACE = timedelta(seconds=30)
# Slots examined per endpoint per pass; a longer backlog is worked off over successive passes.
MAX_SLOTS_PER_PASS = 1000


@dataclass
class Plan:
    """The Logs an endpoint's due slots become, and where its schedule goes next."""

    logs: list[Log] = field(default_factory=list)
    next_run_at: datetime | None = None
    finished: bool = False


def plan_endpoint(
    endpoint: Endpoint,
    now: datetime,
    open_runs: list[Log],
    used: int,
    *,
    until: datetime | None = None,
    trigger: str = Log.Trigger.SCHEDULE,
) -> Plan:
    """Decide the fate of each slot of `endpoint` from its next_run_at up to `until` (now)."""
    schedule = endpoint.schedule
    first = endpoint.next_run_at
    # Only a slot not yet due is taken early, and only one: a due one runs now, the next one on
    # a later pass (the missed-run policy must never see an early slot supersede a due one, nor
    # the overlap policy an early slot block the one after it).
    until = now if until is None or first <= now else until
    following = _following(_shared_key(schedule), first)
    if first > now or following is None or following > until:
        # The usual case: one slot due (or one taken early), `following` is the next run.
        slots = [first]
    else:
        slots = [first, *_between(_shared_key(schedule), first, until)]
    truncated = len(slots) == MAX_SLOTS_PER_PASS
    plan = Plan()
    to_run = _apply_missed_policy(endpoint, slots, now, truncated, plan, trigger)
    remaining = None if endpoint.max_runs is None else max(0, endpoint.max_runs - used)
    # Runs in flight block new slots, and so does one waiting for its flow key (it is in line to
    # run); a pending retry waiting out its backoff does not.
    active = [run for run in open_runs if run.state != Log.State.PENDING or run.flow_key]
    waiting = any(
        run.state == Log.State.PENDING and run.trigger != Log.Trigger.RETRY for run in open_runs
    )
    for slot, trigger in to_run:
        if remaining == 0:
            break
        log = slot_log(endpoint, slot, now, trigger=trigger)
        blocker = active[-1] if active else None
        if blocker and endpoint.overlap_policy == Endpoint.OverlapPolicy.SKIP:
            mark(log, Log.State.SKIPPED, f"Previous run {_label(blocker)} was still going.")
        elif blocker and endpoint.overlap_policy == Endpoint.OverlapPolicy.QUEUE_ONE:
            if waiting:
                mark(log, Log.State.SKIPPED, "A run was already queued behind the running one.")
            else:
                log.state = Log.State.PENDING  # started by dispatch_pending when the other ends
                waiting = True
        elif log.due_at > until:
            log.state = Log.State.PENDING  # a jittered start: dispatch_pending queues it then
            active.append(log)
        else:
            log.state = Log.State.QUEUED
            log.queued_at = now
            log.lease_expires_at = now + QUEUED_LEASE
            active.append(log)
        if log.state != Log.State.SKIPPED:
            remaining = None if remaining is None else remaining - 1
        plan.logs.append(log)
    if truncated:
        plan.next_run_at = _following(_shared_key(schedule), slots[-1])
    elif remaining == 0:
        plan.next_run_at = None
    elif len(slots) == 1:
        plan.next_run_at = following  # the run after the one slot taken
    else:
        # Behind schedule: shared too, or every endpoint of a late pass walks croniter itself.
        plan.next_run_at = _following(_shared_key(schedule), until)
    plan.finished = plan.next_run_at is None
    return plan


@functools.lru_cache(maxsize=4096)
def _between(schedule: schedules.Schedule, after: datetime, until: datetime) -> tuple:
    """The overdue slots after `after` (the first excluded) up to `until`. Behind schedule, every
    endpoint sharing a schedule and a slot has the same ones: one croniter walk for all of them
    per pass, not one each (a dispatcher behind got slower with every pass it fell behind)."""
    return tuple(schedules.runs_between(schedule, after, until, MAX_SLOTS_PER_PASS - 1))


@functools.lru_cache(maxsize=4096)
def _following(schedule: schedules.Schedule, after: datetime) -> datetime | None:
    """The run after `after`. Schedule math is pure, so endpoints that share a schedule and a
    slot (every "*/5 * * * *" of a busy instance) cost one croniter step per pass, not one each."""
    return schedules.next_run(schedule, after)


def _shared_key(schedule: schedules.Schedule) -> schedules.Schedule:
    # Only interval slots depend on the anchor (the endpoint's creation): drop it elsewhere.
    if schedule.kind == schedules.INTERVAL:
        return schedule
    return dataclasses.replace(schedule, anchor=None)


def _apply_missed_policy(
    endpoint: Endpoint,
    slots: list[datetime],
    now: datetime,
    truncated: bool,
    plan: Plan,
    trigger: str = Log.Trigger.SCHEDULE,
) -> list[tuple[datetime, str]]:
    """Record late slots as missed per policy; return the (slot, trigger) pairs to run."""
    # Only the newest slot can be on time; any older one was superseded while we were away.
    newest_on_time = not truncated and now - slots[-1] <= MISFIRE_GRACE
    late = slots[:-1] if newest_on_time else slots
    on_time = [(slots[-1], trigger)] if newest_on_time else []
    policy = endpoint.missed_policy
    catch_up: list[datetime] = []
    if policy == Endpoint.MissedPolicy.RUN_ALL:
        window = timedelta(seconds=endpoint.catch_up_window_seconds)
        catch_up = [slot for slot in late if now - slot <= window]
    elif policy == Endpoint.MissedPolicy.RUN_ONCE and late and not truncated and not on_time:
        catch_up = [late[-1]]
    reason = {
        Endpoint.MissedPolicy.SKIP: "Missed while no worker was running (policy: skip).",
        Endpoint.MissedPolicy.RUN_ONCE: "Missed while no worker was running; "
        "only the latest missed slot runs (policy: run_once).",
        Endpoint.MissedPolicy.RUN_ALL: "Missed while no worker was running, "
        "older than the catch-up window (policy: run_all).",
    }[policy]
    for slot in late:
        if slot not in catch_up:
            plan.logs.append(mark(slot_log(endpoint, slot, now), Log.State.MISSED, reason))
    return [(slot, Log.Trigger.CATCH_UP) for slot in catch_up] + on_time


def slot_log(
    endpoint: Endpoint, slot: datetime, now: datetime, *, trigger: str = Log.Trigger.SCHEDULE
) -> Log:
    on_time = trigger in (Log.Trigger.SCHEDULE, Log.Trigger.CRON_ENDPOINT)
    return new_log(
        endpoint=endpoint,
        trigger=trigger,
        triggered_by="scheduler",
        scheduled_for=slot,
        due_at=max(slot + endpoint.jitter_for(slot), now) if on_time else now,
        created_at=now,
        idempotency_key=idempotency_key_for_slot(endpoint.pk, slot),
    )


def mark(log: Log, state: str, reason: str) -> Log:
    log.state, log.reason = state, reason
    if state in Log.FINAL_STATES:
        log.finished_at = log.created_at
    return log


def _label(log: Log) -> str:
    return log.run_id or "(just dispatched)"
