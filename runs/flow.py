"""Flow control: the runs of jobs sharing a `flow_key` kept within the key's limits
(endpoints/flow.py), across every cluster at once.

The database is what every cluster sees, so it holds the whole state. A run counts against its
key (`Log.flow_key`) from the moment it passes the limits (it is queued) until it is recorded or
recovered as stuck; a key's recent starts are its Logs' start instants. Every decision for a key
is taken holding its FlowKey row (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions
serialize writers anyway), so two clusters never both take its last slot.

- `admit(logs, now, until=…, cluster=…)` — the gate, inside the caller's transaction: for a
  keyed job's new slot runs (dispatch_due), its due pending runs (dispatch_pending: retries,
  queue_one, backfills and the runs already waiting), and manual runs. Oldest first (a key's
  waiting runs before new ones), each run is queued if the limits allow it now (or, for a rate,
  at a later instant within `until`), else left `pending` with the reason it waits and the
  instant to look again: when its rate allows, or RECHECK later.
- `release(keys, now)` — runs of these keys ended: their next waiting runs are admitted and
  handed to the broker at once, so a finishing run starts the next within milliseconds; the
  dispatcher's look at due pending runs is the safety net, not the mechanism.
- `back_off(...)` — a target answered 429/503 with Retry-After: its key starts nothing until then.
- `overview()` — each key, its limits, in flight and waiting now (the Limits page).

Runs of keyless jobs never come here: every caller branches once on the job's flow_key.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Min, Q

from calls.spec import Outcome
from endpoints.flow import Limits, Rate
from endpoints.models import Endpoint
from runs.cluster import QUEUED_LEASE
from runs.models import FlowKey, Log
from runs.recording import MAX_RETRY_AFTER_SECONDS

# A run waiting for its key's parallelism is looked at again this often at the latest; normally a
# finishing run of the key releases it first (release()).
RECHECK = timedelta(seconds=2)
# A run waiting for its rate is looked at this long before the instant the rate allows, and
# queued to start at that instant: a worker holds it until then, as for a slot taken early.
RATE_LEAD = timedelta(milliseconds=250)
# A start is looked for among Logs due this long before a rate's window (a run claimed late).
LATE_START = timedelta(seconds=60)
# Waiting runs a release looks at per key at most (the rest wait for the next release).
MAX_RELEASE = 500
IN_FLIGHT = (Log.State.QUEUED, Log.State.RUNNING)
STARTED = (Log.State.QUEUED, Log.State.RUNNING, Log.State.SUCCESS, Log.State.FAILED)
# What admit() changes on a Log: what a caller saves.
FIELDS = [
    "state", "queued_at", "lease_expires_at", "due_at", "cluster", "flow_key", "held_since",
    "reason",
]  # fmt: skip


def admit(
    logs: list[Log], now: datetime, *, until: datetime | None = None, cluster: str = ""
) -> list[Log]:
    """Queue or hold each of `logs` (new, or pending, runs of keyed jobs) within its key's
    limits; the caller saves them (FIELDS). Returns the key's other waiting runs that this
    admitted too (saved here; the caller hands them to workers with its own)."""
    by_key: dict[str, list[Log]] = defaultdict(list)
    for log in logs:
        by_key[log.endpoint.flow_key].append(log)
    return _admit(by_key, now, until or now, cluster)


def release(keys: Iterable[str], now: datetime) -> list[Log]:
    """Runs of these keys ended: admit their next waiting runs, and hand them to the broker
    when this commits. Returns them."""
    from runs import cluster, services

    keys = {key for key in keys if key}
    if keys:
        # Most runs end with nothing waiting behind them: one index read, no lock taken then.
        # A run held by a pass that has not committed yet is seen by the pass's own count,
        # or (on PostgreSQL, a pass that counted before this run ended) within RECHECK.
        keys = set(
            keyed_runs()
            .filter(flow_key__in=keys, state=Log.State.PENDING)
            .order_by()
            .values_list("flow_key", flat=True)
            .distinct()
        )
    if not keys:
        return []
    with transaction.atomic():
        released = _admit({key: [] for key in keys}, now, now, cluster.current())
        if released:
            transaction.on_commit(lambda: services.enqueue_many(released))
    return released


def ended(finished: list[tuple[Log, Outcome, datetime]]) -> list[Log]:
    """These runs were recorded: a 429 or 503 with Retry-After backs its key off for that long
    (adaptive back-off), and the keys' next waiting runs are released."""
    keys, now = set(), max(finished_at for _, _, finished_at in finished)
    for log, outcome, finished_at in finished:
        if not log.flow_key:
            continue
        keys.add(log.flow_key)
        if outcome.status_code in (429, 503) and outcome.retry_after:
            wait = min(outcome.retry_after, MAX_RETRY_AFTER_SECONDS)
            back_off(
                log.flow_key,
                finished_at + timedelta(seconds=wait),
                f"{log.run_id} was answered {outcome.status_code} with Retry-After {wait:g} s",
            )
    return release(keys, now)


def back_off(key: str, until: datetime, reason: str) -> None:
    """Start no run of `key` before `until` (a later back-off already asked for stays)."""
    FlowKey.objects.get_or_create(name=key)
    FlowKey.objects.filter(name=key).filter(
        Q(backoff_until__isnull=True) | Q(backoff_until__lt=until)
    ).update(backoff_until=until, backoff_reason=reason[:200])


def keyed_runs():
    """Logs counted against a key. The partial indexes' own condition: SQLite uses a partial
    index only for a query that states it (PostgreSQL proves it from `flow_key = …`)."""
    return Log.objects.exclude(flow_key="")


def limits_for(keys: Iterable[str]) -> dict[str, Limits]:
    """Each key's limits: the strictest of the jobs sharing it (endpoint_flow_key_idx)."""
    pairs: dict[str, list] = defaultdict(list)
    rows = Endpoint.objects.exclude(flow_key="").filter(flow_key__in=list(keys)).order_by()
    for key, parallelism, rate in rows.values_list("flow_key", "flow_parallelism", "flow_rate"):
        pairs[key].append((parallelism, rate))
    return {key: Limits.strictest(pairs.get(key, [])) for key in keys}


def _admit(by_key: dict[str, list[Log]], now: datetime, until: datetime, cluster: str) -> list[Log]:
    limits = limits_for(by_key)
    released: list[Log] = []
    for key in sorted(by_key):  # one lock order for every caller: no deadlock between two
        released += _Gate(key, limits[key], now, until, cluster).admit(by_key[key])
    return released


class _Gate:
    """One key's decisions in one transaction, holding its FlowKey row."""

    def __init__(
        self, key: str, limits: Limits, now: datetime, until: datetime, cluster: str
    ) -> None:
        self.key, self.limits, self.now, self.until, self.cluster = key, limits, now, until, cluster
        row, _ = FlowKey.objects.select_for_update().get_or_create(name=key)
        self.backoff = (row.backoff_until, row.backoff_reason)
        runs = keyed_runs().filter(flow_key=key)
        self.in_flight = runs.filter(state__in=IN_FLIGHT).count()
        self.starts: list[datetime] = []
        if limits.rates:
            longest = max(rate.period_seconds for rate in limits.rates)
            since = now - timedelta(seconds=longest) - LATE_START
            recent = runs.filter(state__in=STARTED, due_at__gt=since)
            columns = ("started_at", "due_at", "finished_at", "duration_ms")
            self.starts = sorted(_sent_at(*row, now) for row in recent.values_list(*columns))

    def admit(self, logs: list[Log]) -> list[Log]:
        """Decide `logs` after the key's runs already waiting; return those of the latter
        admitted (saved)."""
        waiting = self._waiting(exclude=[log.pk for log in logs if log.pk])
        already = {id(log) for log in waiting}
        released, refusal = [], None
        for log in waiting + sorted(logs, key=lambda log: log.held_since or log.due_at):
            if refusal is None:  # first come, first served: after one refusal, all wait
                start, refusal = self._decide(log)
                if refusal is None:
                    self._queue(log, start)
                    if id(log) in already:
                        released.append(log)
                    continue
            if id(log) not in already:  # a run already waiting keeps its reason and instant
                self._hold(log, start, refusal)
        Log.objects.bulk_update(released, FIELDS)
        return released

    def _waiting(self, exclude: list[int]) -> list[Log]:
        """The key's runs already waiting that may be admitted now, oldest first."""
        room = MAX_RELEASE
        if self.limits.parallelism:
            room = min(room, self.limits.parallelism - self.in_flight)
        for rate in self.limits.rates:
            room = min(room, rate.count - self._in_window(rate, self.now))
        if room <= 0:
            return []
        # Skip rows a dispatcher is deciding right now (it holds them and waits for this key).
        return list(
            keyed_runs()
            .filter(flow_key=self.key, state=Log.State.PENDING, held_since__lte=self.now)
            .exclude(pk__in=exclude)
            .select_for_update(skip_locked=True)
            .order_by("held_since", "id")[:room]
        )

    def _decide(self, log: Log) -> tuple[datetime, str | None]:
        """(When it starts, None) if `log` may start by `until`; else (when to look again, why)."""
        start = max(self.now, log.held_since or log.due_at)
        if self.limits.rates and self.starts:
            # A rate's starts are handed out in order, so that each window only looks back.
            start = max(start, self.starts[-1])
        backoff_until, _ = self.backoff
        if backoff_until and backoff_until > start:
            return backoff_until, f"its target asked to wait until {backoff_until:%H:%M:%S} UTC"
        limit = self.limits.parallelism
        if limit and self.in_flight >= limit:
            return self.now + RECHECK, f"{self.in_flight} of {limit} runs in flight"
        for rate in self.limits.rates:
            allowed = self._allowed(rate, start)
            if allowed > self.until:
                return allowed - RATE_LEAD, f"its rate {rate} is reached"
            start = max(start, allowed)
        return start, None

    def _in_window(self, rate: Rate, start: datetime) -> int:
        """Starts in the window of `rate` that ends at `start` (none are later: see _decide)."""
        period = timedelta(seconds=rate.period_seconds)
        return len(self.starts) - bisect.bisect_right(self.starts, start - period)

    def _allowed(self, rate: Rate, start: datetime) -> datetime:
        """The earliest instant from `start` at which `rate` lets one more run start."""
        if self._in_window(rate, start) < rate.count:
            return start
        return self.starts[-rate.count] + timedelta(seconds=rate.period_seconds)

    def _queue(self, log: Log, start: datetime) -> None:
        log.state, log.queued_at, log.cluster = Log.State.QUEUED, self.now, self.cluster
        log.lease_expires_at = self.now + QUEUED_LEASE
        log.flow_key, log.due_at = self.key, start
        if log.held_since is not None:
            waited = (log.due_at - log.held_since).total_seconds()
            log.reason = f"Waited {waited:.1f} s for flow key {self.key}."
        self.in_flight += 1
        bisect.insort(self.starts, log.due_at)

    def _hold(self, log: Log, until: datetime, why: str) -> None:
        # Since when it waits for the key, not for a dispatcher that looked late.
        log.held_since = log.held_since or max(self.now, log.due_at)
        log.state, log.flow_key, log.due_at = Log.State.PENDING, self.key, until
        log.reason = f"Waiting for flow key {self.key}: {why}."


def _sent_at(
    started: datetime | None,
    due: datetime,
    finished: datetime | None,
    duration_ms: int | None,
    now: datetime,
) -> datetime:
    """When a run's call left, as well as it is known: a finished run's from its end and its
    duration (a worker under load sends later than the instant it was claimed for, and its
    target saw it then); a claimed one's instant; a queued one's, now at the earliest."""
    if finished is not None and duration_ms is not None:
        return max(started or due, finished - timedelta(milliseconds=duration_ms))
    return started or max(due, now)


@dataclass
class KeyStatus:
    """A key as the Limits page shows it."""

    key: str
    limits: Limits
    jobs: int = 0
    in_flight: int = 0
    waiting: int = 0
    waiting_since: datetime | None = None
    backoff_until: datetime | None = None
    backoff_reason: str = ""


def overview(now: datetime) -> list[KeyStatus]:
    """Every key in use (by a job, or by runs still open), with its limits and runs now."""
    keyed = Endpoint.objects.exclude(flow_key="").order_by()
    jobs = dict(keyed.values_list("flow_key").annotate(Count("id")))
    runs = (
        keyed_runs()
        .filter(state__in=Log.OPEN_STATES)
        .order_by()
        .values_list("flow_key", "state")
        .annotate(Count("id"), Min("held_since"))
    )
    keys = set(jobs) | {key for key, *_ in runs}
    limits = limits_for(keys)
    status = {key: KeyStatus(key, limits[key], jobs=jobs.get(key, 0)) for key in keys}
    for key, state, count, since in runs:
        if state == Log.State.PENDING:
            status[key].waiting, status[key].waiting_since = count, since
        else:
            status[key].in_flight += count
    for row in FlowKey.objects.filter(name__in=keys, backoff_until__gt=now):
        status[row.name].backoff_until = row.backoff_until
        status[row.name].backoff_reason = row.backoff_reason
    return sorted(status.values(), key=lambda item: item.key)
