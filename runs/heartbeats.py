"""Heartbeats: jobs that run elsewhere and report in, with healthchecks.io's ping protocol.

cronplane calls nothing for a heartbeat (`Endpoint.kind == "heartbeat"`). Its schedule says
when the job is expected to report; each expected slot becomes one Log:

- `success` / `failed`: a ping (`/ping/<uuid>`, `/fail`, `/<exit status>`) at or after the
  slot and within its grace; a `/start` before it makes the run `running` and gives it a
  duration (paired by `?rid=`, as healthchecks pairs them);
- `missed`: nothing by slot + grace, written by `record_missed(now)` from the dispatcher loop's
  sweep, exactly once per slot however many clusters sweep (the endpoint rows are locked, the
  slot's Log is looked for under that lock, and the (endpoint, slot, attempt) unique constraint
  is the last word);
- a started run that sends no end within the grace fails `timeout`.

A ping that matches no open slot (early, a second run in one slot, a manual run of the script,
a paused heartbeat) is recorded too, as a Log without a slot. `/log` keeps its body in a Log
of its own, `skipped`, changing nothing.

`Endpoint.expected_at` is the oldest expected slot not yet accounted for and `overdue_at` its
slot + grace: the dashboard's "late" state and the one indexed read of each sweep. Heartbeat
runs hold no lease and no cluster, so cluster recovery never touches them (it would retry, i.e.
execute, them).

Everything that decides what is due takes `now`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from endpoints import schedules
from endpoints.models import Endpoint
from runs import notifications
from runs.models import Log, idempotency_key_for_slot
from runs.recording import update_endpoint_stats

logger = logging.getLogger(__name__)

SUCCESS, START, FAIL, LOG = "success", "start", "fail", "log"
SIGNALS = (SUCCESS, START, FAIL, LOG)
# Expected slots walked per heartbeat per sweep; a longer backlog is worked off next sweep.
MAX_SLOTS_PER_PASS = 1000
# Heartbeats looked at per sweep.
MAX_HEARTBEATS_PER_PASS = 500


@dataclass
class Ping:
    """One received ping: what the route read from the request."""

    signal: str
    exit_status: int | None = None
    rid: str = ""
    body: str = ""
    body_bytes: int = 0
    source: dict = field(default_factory=dict)  # method, path, remote address, user agent

    @property
    def ok(self) -> bool:
        return self.signal == SUCCESS and not self.exit_status

    @property
    def failure_message(self) -> str:
        if self.exit_status:
            return f"The job exited with status {self.exit_status}."
        return "The job reported a failure (/fail)."


def read_body(raw: bytes, total: int) -> tuple[str, int]:
    """A ping body as text that every database can store: capped like a response excerpt,
    invalid UTF-8 replaced, NUL made visible (PostgreSQL refuses it in text)."""
    text = raw[: settings.SCHEDULER_RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")
    return text.replace("\x00", "\ufffd"), total


def slot_for(endpoint: Endpoint, at: datetime) -> datetime | None:
    """The expected slot a ping at `at` answers: the latest slot at or before `at`, if `at` is
    within that slot's grace; None for an early ping."""
    grace = timedelta(seconds=endpoint.grace_seconds)
    cursor, latest = at - grace - timedelta(microseconds=1), None
    while True:
        batch = schedules.runs_between(endpoint.schedule, cursor, at, MAX_SLOTS_PER_PASS)
        if not batch:
            return latest
        latest = batch[-1]
        if len(batch) < MAX_SLOTS_PER_PASS:
            return latest
        cursor = latest


def record_ping(endpoint: Endpoint, ping: Ping, *, now: datetime) -> Log:
    """Record one ping of `endpoint` at `now`; return the Log it started, ended or made.

    1. Lock the endpoint (a sweep writing `missed` for the same slot waits or skips it).
    2. `/log`: a Log of its own, nothing else changes.
    3. An end (success, fail, exit status) finishes the open run its `/start` began (same rid),
       else it is a run of its own: for the slot it answers if that slot has no Log yet,
       otherwise without a slot. A `/start` opens a run the same way.
    4. Counts, last status, notifications and auto-disable follow the finished run as for an
       HTTP job; the expectation moves past every slot that now has a Log.
    """
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        Endpoint.objects.filter(pk=endpoint.pk).update(last_ping_at=now)
        endpoint.last_ping_at = now
        if ping.signal == LOG:
            log = _new_log(endpoint, ping, now, slot=None)
            log.state, log.finished_at = Log.State.SKIPPED, now
            log.reason = "A /log ping: its body is kept, the job's state is unchanged."
            log.save()
            return log
        run = _open_run(endpoint, ping.rid) if ping.signal != START else None
        if run is None:
            run = _claim_slot(endpoint, ping, now)
        if ping.signal != START:
            _finish(run, ping, now)
        _advance(endpoint, now)
    return run


def _open_run(endpoint: Endpoint, rid: str) -> Log | None:
    """The latest running run that a `/start` with this rid (or with none) began."""
    return (
        Log.objects.filter(endpoint=endpoint, state=Log.State.RUNNING, result_summary__rid=rid)
        .order_by("-id")
        .first()
    )


def _claim_slot(endpoint: Endpoint, ping: Ping, now: datetime) -> Log:
    """A new run for the slot this ping answers, or without a slot if that one is taken."""
    slot = slot_for(endpoint, now) if endpoint.enabled else None
    if slot is not None and Log.objects.filter(endpoint=endpoint, scheduled_for=slot).exists():
        slot = None
    log = _new_log(endpoint, ping, now, slot=slot)
    if slot is not None:
        try:
            with transaction.atomic():
                log.save()
            return log
        except IntegrityError:  # the slot's Log appeared meanwhile (SQLite is not locked)
            log = _new_log(endpoint, ping, now, slot=None)
    log.save()
    return log


def _new_log(endpoint: Endpoint, ping: Ping, now: datetime, *, slot: datetime | None) -> Log:
    return Log(
        endpoint=endpoint,
        trigger=Log.Trigger.PING,
        triggered_by=str(ping.source.get("remote_addr", ""))[:150],
        scheduled_for=slot,
        due_at=now,
        created_at=now,
        started_at=now,
        state=Log.State.RUNNING,
        idempotency_key=idempotency_key_for_slot(endpoint.pk, slot) if slot else "",
        request=ping.source,
        response_excerpt=ping.body,
        response_bytes=ping.body_bytes if ping.body_bytes else None,
        result_summary={"signal": ping.signal, "rid": ping.rid, "exit_status": ping.exit_status},
    )


def _finish(log: Log, ping: Ping, now: datetime) -> None:
    """End a running run with this ping's verdict (and body, if it brings one)."""
    log.state = Log.State.SUCCESS if ping.ok else Log.State.FAILED
    log.finished_at = now
    log.duration_ms = max(0, int((now - log.started_at).total_seconds() * 1000))
    log.error_message = "" if ping.ok else ping.failure_message
    if ping.body or not log.response_excerpt:
        log.response_excerpt = ping.body
        log.response_bytes = ping.body_bytes or None
    log.result_summary = {**(log.result_summary or {}), "end": ping.signal,
                          "exit_status": ping.exit_status}  # fmt: skip
    if ping.source:
        log.request = ping.source
    updated = Log.objects.filter(pk=log.pk, state=Log.State.RUNNING).update(
        state=log.state,
        finished_at=now,
        duration_ms=log.duration_ms,
        error_message=log.error_message,
        response_excerpt=log.response_excerpt,
        response_bytes=log.response_bytes,
        result_summary=log.result_summary,
        request=log.request,
    )
    if updated:
        _account(log, now)


def _account(log: Log, now: datetime) -> None:
    """Counts, last status, notifications and auto-disable, as for an HTTP job's run."""
    events = update_endpoint_stats(log, chain_finished=True)
    if events:
        log.endpoint.refresh_from_db()
        notifications.queue(log, events, now=now)


def _advance(endpoint: Endpoint, now: datetime) -> None:
    """Move the expectation past the slots that have a Log (writes only when it moved)."""
    slot, moved = endpoint.expected_at, False
    for _ in range(MAX_SLOTS_PER_PASS):
        if slot is None or not _slot_taken(endpoint, slot):
            break
        slot, moved = schedules.next_run(endpoint.schedule, slot), True
    if moved:
        endpoint.expect(slot)
        endpoint.store_expectation()


def _slot_taken(endpoint: Endpoint, slot: datetime) -> bool:
    return Log.objects.filter(endpoint=endpoint, scheduled_for=slot, attempt=1).exists()


def record_missed(now: datetime) -> list[Log]:
    """Account for every expected slot whose grace has passed: one `missed` Log per slot
    nobody pinged for; end started runs that outlived their grace. Returns the Logs finished.

    1. Lock the enabled heartbeats whose overdue_at has come (SKIP LOCKED: another sweep, or a
       ping being recorded, holds the rest).
    2. Walk each one's slots from expected_at while slot + grace < now; a slot with no Log
       becomes `missed`. The expectation moves to the first slot still within its grace.
    3. Insert the missed Logs, then count them, notify and auto-disable per run as for a
       failed HTTP run.
    4. Fail running heartbeat runs started more than their grace ago (`timeout`).
    """
    finished: list[Log] = []
    with transaction.atomic():
        overdue = list(
            Endpoint.objects.filter(kind=Endpoint.Kind.HEARTBEAT, enabled=True, overdue_at__lt=now)
            .order_by("overdue_at")
            .select_for_update(skip_locked=True)[:MAX_HEARTBEATS_PER_PASS]
        )
        for endpoint in overdue:
            missed = _missed_slots(endpoint, now)
            Log.objects.bulk_create(missed)
            endpoint.store_expectation()
            for log in missed:
                _account(log, now)
            finished += missed
    finished += _end_overrunning(now)
    return finished


def _missed_slots(endpoint: Endpoint, now: datetime) -> list[Log]:
    """The missed Logs of `endpoint`'s overdue slots; moves endpoint.expected_at on."""
    grace = timedelta(seconds=endpoint.grace_seconds)
    slot, overdue = endpoint.expected_at, []
    while slot is not None and slot + grace < now and len(overdue) < MAX_SLOTS_PER_PASS:
        overdue.append(slot)
        slot = schedules.next_run(endpoint.schedule, slot)
    endpoint.expect(slot)
    taken = set(
        Log.objects.filter(endpoint=endpoint, scheduled_for__in=overdue, attempt=1).values_list(
            "scheduled_for", flat=True
        )
    )
    return [_missed_log(endpoint, s, now) for s in overdue if s not in taken]


def _missed_log(endpoint: Endpoint, slot: datetime, now: datetime) -> Log:
    local = slot.astimezone(endpoint.zone)
    reason = (
        f"No ping for {local:%Y-%m-%d %H:%M} {local.tzname()} "
        f"within its grace of {spoken_duration(endpoint.grace_seconds)}."
    )
    return Log(
        endpoint=endpoint,
        trigger=Log.Trigger.SCHEDULE,
        triggered_by="scheduler",
        scheduled_for=slot,
        due_at=slot,
        created_at=now,
        finished_at=now,
        state=Log.State.MISSED,
        reason=reason[:300],
        error_message=reason,
        idempotency_key=idempotency_key_for_slot(endpoint.pk, slot),
    )


def _end_overrunning(now: datetime) -> list[Log]:
    """Started runs whose end did not come within the grace: failed `timeout`, once each."""
    ended = []
    running = Log.objects.filter(
        state=Log.State.RUNNING, endpoint__kind=Endpoint.Kind.HEARTBEAT
    ).select_related("endpoint")
    for log in running:
        grace = timedelta(seconds=log.endpoint.grace_seconds)
        if log.started_at is None or log.started_at + grace >= now:
            continue
        log.state, log.finished_at = Log.State.FAILED, now
        log.error_class = Log.ErrorClass.TIMEOUT
        log.error_message = (
            f"Started at {log.started_at.astimezone(log.endpoint.zone):%Y-%m-%d %H:%M:%S %Z} "
            f"and sent no end within its grace of {spoken_duration(log.endpoint.grace_seconds)}."
        )
        log.duration_ms = int((now - log.started_at).total_seconds() * 1000)
        with transaction.atomic():
            if Log.objects.filter(pk=log.pk, state=Log.State.RUNNING).update(
                state=log.state,
                finished_at=now,
                error_class=log.error_class,
                error_message=log.error_message,
                duration_ms=log.duration_ms,
            ):
                _account(log, now)
                ended.append(log)
    return ended


def spoken_duration(seconds: int) -> str:
    """3600 → '1 hour', 90 → '90 seconds', 300 → '5 minutes'."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{seconds} second" + ("" if seconds == 1 else "s")


def ping_url(endpoint: Endpoint, signal: str = SUCCESS) -> str:
    """The URL a job pings (SITE_URL + /ping/<uuid>[/start|/fail|/log])."""
    suffix = "" if signal == SUCCESS else f"/{signal}"
    return f"{settings.SITE_URL.rstrip('/')}/ping/{endpoint.uuid}{suffix}"


def late_since(endpoint: Endpoint, now: datetime | None = None) -> datetime | None:
    """The expected slot a late heartbeat is waiting on (None when not late)."""
    now = now or timezone.now()
    return endpoint.expected_at if endpoint.is_late(now) else None
