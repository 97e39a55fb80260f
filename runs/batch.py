"""Runs many queued Logs in one cluster task: claimed together, called at once, recorded in bulk.

Why: a django-q2 worker process runs one task at a time, and a run spends nearly all its time
waiting on the network. One task per run (`runs.tasks.run_log`) costs a broker round trip,
seven queries and a whole worker for the length of the call, so 1,000 one-second calls on two
workers take 500 s. A batch costs one task, a handful of statements and a few threads.

`run_batch(log_ids)`:
0. Hold: a batch handed over before its slot loads its Logs and endpoints and waits for the slot
   (the dispatcher looks ahead), so that at the instant only the claim is left.
1. Claim: those of the Logs still pending/queued and due become running in one transaction (on
   PostgreSQL `FOR UPDATE SKIP LOCKED`, so a second delivery of the batch racing this one claims
   none of them; arriving later, it finds them running and claims none either).
2. Call: the HTTP calls are made by as few threads of this process's pool as keep every call
   moving (`_Calls`): RUNNERS threads take them in turn, and a thread whose call waits on its
   target is replaced at once, so slow calls all run side by side, each with its own timeout,
   while instant ones go out one after the other without hundreds of threads fighting over the
   GIL. Threads keep their requests Session between batches.
3. Record: once every call has finished, or QUIET_SECONDS after the calls started if some are
   still going, what has finished is recorded with `executor.record_many`, then about every
   FLUSH_SECONDS; a slow call holds back no other run's record for longer than that. Recording
   takes this process's GIL about as long as the calls themselves: done beside calls still being
   sent, it delays them (each run's finished_at is taken when its call ends, not when it is
   written). A run whose call raised is failed like any other; it does not fail the batch.
A worker killed mid-batch leaves its runs `running` with a lease: `recover_stuck` fails and
retries them like any lost run.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from queue import Empty, SimpleQueue

from django.db import transaction
from django.utils import timezone

from endpoints.models import Endpoint
from runs import executor, http
from runs.models import Log

logger = logging.getLogger(__name__)
# Runs per batch task, and at most as many call threads per worker process.
MAX_BATCH = 500
# Threads making a batch's calls while its calls keep moving (_Calls adds more when they wait).
RUNNERS = 4
# A call in progress this long is waiting on its target: its thread is replaced.
WAITING_SECONDS = 0.02
# Below this share of a core used by the process, queued calls get more threads (doubling).
BUSY = 0.5
# How often a batch looks at its call threads.
TICK_SECONDS = 0.01
# How often finished runs are written while others are still going.
FLUSH_SECONDS = 0.1
# Nothing is written during the first QUIET_SECONDS of a batch's calls unless all have finished:
# the calls leave first (DESIGN §9: 1,000 calls due at once arrive within 1 s of their slot).
QUIET_SECONDS = 1.0
# Longest a batch waits for its due_at (the dispatcher is at most 1 s early).
MAX_HOLD_SECONDS = 2.0
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def split(logs: list[Log], workers: int) -> list[list[Log]]:
    """Batches for `workers` worker processes: every worker busy, none above MAX_BATCH."""
    if not logs:
        return []
    count = max(math.ceil(len(logs) / MAX_BATCH), min(len(logs), workers))
    size = math.ceil(len(logs) / count)
    return [logs[start : start + size] for start in range(0, len(logs), size)]


def run_batch(log_ids: list[int]) -> dict[str, int]:
    """Execute those of these Logs that are still waiting; return how many ended in each state."""
    loaded = _hold_until_due(log_ids)
    logs = claim(log_ids, timezone.now(), loaded=loaded)
    calls = _Calls([log for log in logs if log.endpoint.kind == Endpoint.Kind.HTTP])
    calls.start()
    finished: list[tuple[Log, http.Outcome, datetime]] = []
    for log in logs:
        if log.endpoint.kind != Endpoint.Kind.HTTP:
            # Python handlers touch the database and may not be thread-safe: run them here.
            finished.append((log, *_perform(log)))
    # The calls leave first: nothing is written beside them until all have finished, or
    # QUIET_SECONDS have passed.
    finished += calls.results(until=time.monotonic() + QUIET_SECONDS)
    while calls.pending:
        if finished:
            executor.record_many(finished)
            finished = []
        first = calls.results(until=time.monotonic() + FLUSH_SECONDS, most=1)
        # Let a few more finish: fewer, larger writes (a run is at most 2 × FLUSH_SECONDS late).
        finished = first + (calls.results(until=time.monotonic() + FLUSH_SECONDS) if first else [])
    if finished:
        executor.record_many(finished)
    counts: dict[str, int] = {}
    for log in logs:
        counts[log.state] = counts.get(log.state, 0) + 1
    return counts


class _Calls:
    """A batch's HTTP calls, made by as few pool threads as keep every call moving.

    One thread per call (500 at once) spent most of a worker's CPU on the GIL: every thread
    waiting for it wakes each switch interval (5 ms) to ask, and 500 instant calls went out in
    1–2 s instead of the 0.5 s they take one after the other. (Measured, 500 calls to an instant
    target in one process: 4 threads 0.5 s and 1.0–1.2 ms of CPU a call; 500 threads 0.8–1.5 s
    and 1.6–3.5 ms a call.) Here RUNNERS threads take the calls in turn, and every TICK_SECONDS,
    while calls are queued: if the process used less than BUSY of a core for two ticks, the
    threads are waiting on their targets and their number doubles; otherwise each thread whose
    call has been in progress for WAITING_SECONDS gets a new one beside it. So instant calls go
    out one after the other on a few threads, calls to a target 10 ms away on as many as keep
    the process busy, and 500 one-second calls are all in flight within a few ticks. No call
    waits for a thread longer than that, and each keeps its own timeout (its lease, from the
    claim, has 30 s of grace beyond it)."""

    def __init__(self, logs: list[Log]) -> None:
        self._queue = deque(logs)
        self._lock = threading.Lock()
        self._calling: dict[int, float | None] = {}  # thread number -> its call's start
        self._threads = 0
        self._results: SimpleQueue = SimpleQueue()
        self.pending = len(logs)  # calls whose result has not been taken yet

    def start(self) -> None:
        if not self._queue:
            return
        with self._lock:
            self._add(RUNNERS)
        pool().submit(self._supervise)

    def results(self, until: float, most: int | None = None) -> list:
        """The finished calls' results, waiting for more until `until` (monotonic) or all."""
        taken: list[tuple[Log, http.Outcome, datetime]] = []
        limit = self.pending if most is None else min(most, self.pending)
        while len(taken) < limit:
            try:
                taken.append(self._results.get(timeout=max(0.0, until - time.monotonic())))
            except Empty:
                break
        self.pending -= len(taken)
        return taken

    def _add(self, count: int) -> None:
        """Start up to `count` more threads (caller holds the lock)."""
        for _ in range(min(count, len(self._queue), MAX_BATCH - len(self._calling))):
            number = self._threads
            self._threads += 1
            self._calling[number] = None
            pool().submit(self._call, number)

    def _call(self, number: int) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    del self._calling[number]
                    return
                log = self._queue.popleft()
                self._calling[number] = time.monotonic()
            result = (log, *_perform(log))
            with self._lock:
                self._calling[number] = None
            self._results.put(result)

    def _supervise(self) -> None:
        cpu, at = time.process_time(), time.monotonic()
        idle = 0  # ticks in a row with this process below BUSY
        while True:
            time.sleep(TICK_SECONDS)
            with self._lock:
                if not self._queue:
                    return
                now, used = time.monotonic(), time.process_time()
                idle = idle + 1 if (used - cpu) / max(now - at, 1e-6) < BUSY else 0
                cpu, at = used, now
                if idle >= 2:
                    # Calls are queued and this process is not busy (for two ticks: one can be a
                    # moment without a core): they wait on their targets.
                    self._add(max(RUNNERS, len(self._calling)))
                    idle = 0
                else:
                    waiting = sum(
                        1
                        for started in self._calling.values()
                        if started is not None and now - started >= WAITING_SECONDS
                    )
                    self._add(RUNNERS - (len(self._calling) - waiting))


def _hold_until_due(log_ids: list[int]) -> dict[int, Log] | None:
    """Wait for the batch's slot (the dispatcher hands runs over up to DISPATCH_AHEAD early);
    meanwhile load its Logs and endpoints, so that at the instant only the claim is left.
    Returns the Logs loaded, or None when nothing was early."""
    loaded = {
        log.pk: log
        for log in Log.objects.select_related("endpoint").filter(
            pk__in=log_ids, state__in=(Log.State.PENDING, Log.State.QUEUED)
        )
    }
    due = max((log.due_at for log in loaded.values()), default=None)
    if due is None or due <= timezone.now():
        return None
    wait = (due - timezone.now()).total_seconds()
    if wait > 0:
        time.sleep(min(wait, MAX_HOLD_SECONDS))
    # Never before its time: a run still not due stays queued (handed out again after its lease).
    now = timezone.now()
    return {pk: log for pk, log in loaded.items() if log.due_at <= now}


def claim(log_ids: list[int], now: datetime, *, loaded: dict[int, Log] | None = None) -> list[Log]:
    """Mark the still-waiting Logs among `log_ids` running, atomically; return them.

    `loaded` are these Logs read (without a lock) while the batch waited for its slot: then
    only their ids are locked and checked here."""
    waiting = (Log.State.PENDING, Log.State.QUEUED)
    with transaction.atomic():
        if loaded is None:
            logs = list(
                Log.objects.select_related("endpoint")
                .filter(pk__in=log_ids, state__in=waiting)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("pk")
            )
        else:
            ids = (
                Log.objects.filter(pk__in=list(loaded), state__in=waiting)
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)
            )
            logs = [loaded[pk] for pk in sorted(ids)]
        leases: dict[datetime, list[int]] = {}
        for log in logs:
            log.state, log.started_at = Log.State.RUNNING, now
            log.lease_expires_at = log.lease_for(now)
            leases.setdefault(log.lease_expires_at, []).append(log.pk)
        # One statement per distinct timeout (usually one); the rows are ours until commit.
        for lease, ids in leases.items():
            Log.objects.filter(pk__in=ids).update(
                state=Log.State.RUNNING, started_at=now, lease_expires_at=lease
            )
    return logs


def pool() -> ThreadPoolExecutor:
    """This process's call threads (created after django-q2 forked the worker)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            # A batch's call threads and the one looking after them.
            _pool = ThreadPoolExecutor(
                max_workers=MAX_BATCH + 1, thread_name_prefix="cronplane-call"
            )
        return _pool


def _perform(log: Log) -> tuple[http.Outcome, datetime]:
    try:
        outcome = executor.perform(log)
    except Exception as exc:  # a bug in our code must still end the run, not the batch
        logger.exception("run %s crashed", log.run_id)
        outcome = http.Outcome(ok=False, error_class="handler", error_message=_describe(exc))
    return outcome, timezone.now()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
