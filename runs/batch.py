"""Runs many queued Logs in one cluster task: claimed together, called at once, recorded in bulk.

Why: a django-q2 worker process runs one task at a time, and a run spends nearly all its time
waiting on the network. One task per run (`runs.tasks.run_log`) costs a broker round trip,
seven queries and a whole worker for the length of the call, so 1,000 one-second calls on two
workers take 500 s. A batch costs one task, a handful of statements and one thread per call.

`run_batch(log_ids)`:
0. Hold: a batch handed over before its slot waits for it (the dispatcher looks ahead).
1. Claim: those of the Logs still pending/queued become running in one transaction (on
   PostgreSQL `FOR UPDATE SKIP LOCKED`, so a second delivery of the batch racing this one claims
   none of them; arriving later, it finds them running and claims none either).
2. Call: each HTTP call runs in its own thread of this process's pool (a requests Session per
   thread, kept between batches) with its own timeout. A batch never has more runs than the
   pool has threads, so every claimed run starts at once and its lease (timeout + grace) holds.
3. Record: about every FLUSH_SECONDS what has finished is recorded with
   `executor.record_many`; a slow call holds back no other run's record. A run whose call raised
   is failed like any other; it does not fail the batch.
A worker killed mid-batch leaves its runs `running` with a lease: `recover_stuck` fails and
retries them like any lost run.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from endpoints.models import Endpoint
from runs import executor, http
from runs.models import Log

logger = logging.getLogger(__name__)
# Runs per batch task, and threads per worker process (one per run of the batch in hand).
MAX_BATCH = 500
# How often finished runs are written while others are still going.
FLUSH_SECONDS = 0.1
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
    calls = [log for log in logs if log.endpoint.kind == Endpoint.Kind.HTTP]
    futures: dict[Future, Log] = {pool().submit(_perform, log): log for log in calls}
    finished: list[tuple[Log, http.Outcome, datetime]] = []
    for log in logs:
        if log.endpoint.kind != Endpoint.Kind.HTTP:
            # Python handlers touch the database and may not be thread-safe: run them here.
            finished.append((log, *_perform(log)))
    waiting = set(futures)
    while waiting:
        done, waiting = wait(waiting, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
        if waiting and len(done) < len(waiting):
            # Let a few more finish: fewer, larger writes (a run is at most FLUSH_SECONDS late).
            more, waiting = wait(waiting, timeout=FLUSH_SECONDS)
            done |= more
        finished += [(futures[future], *future.result()) for future in done]
        if finished:
            executor.record_many(finished)
            finished = []
    if finished:
        executor.record_many(finished)
    counts: dict[str, int] = {}
    for log in logs:
        counts[log.state] = counts.get(log.state, 0) + 1
    return counts


def _hold_until_due(log_ids: list[int]) -> dict[int, Log] | None:
    """Wait for the batch's slot (the dispatcher hands runs over up to DISPATCH_AHEAD early);
    meanwhile load its Logs and endpoints and start its call threads, so that at the instant
    only the claim is left. Returns the Logs loaded, or None when nothing was early."""
    loaded = {
        log.pk: log
        for log in Log.objects.select_related("endpoint").filter(
            pk__in=log_ids, state__in=(Log.State.PENDING, Log.State.QUEUED)
        )
    }
    due = max((log.due_at for log in loaded.values()), default=None)
    if due is None or due <= timezone.now():
        return None
    _start_threads(min(len(loaded), MAX_BATCH), timeout=(due - timezone.now()).total_seconds())
    wait = (due - timezone.now()).total_seconds()
    if wait > 0:
        time.sleep(min(wait, MAX_HOLD_SECONDS))
    # Never before its time: a run still not due stays queued (handed out again after its lease).
    now = timezone.now()
    return {pk: log for pk, log in loaded.items() if log.due_at <= now}


def _start_threads(count: int, timeout: float) -> None:
    """Have `count` pool threads running, each with its requests Session (made once a thread)."""
    started = threading.Barrier(count + 1, timeout=max(0.01, timeout))

    def touch() -> None:
        http.session()
        try:
            started.wait()
        except threading.BrokenBarrierError:
            pass  # the slot came first: the calls start the remaining threads

    for _ in range(count):
        pool().submit(touch)
    try:
        started.wait()
    except threading.BrokenBarrierError:
        pass


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
            _pool = ThreadPoolExecutor(max_workers=MAX_BATCH, thread_name_prefix="cronplane-call")
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
