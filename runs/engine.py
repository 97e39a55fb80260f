"""The execution engine of a worker process: calls on one event loop, outcomes recorded in bulk.

A django-q2 worker runs one task at a time. If a task waited for its calls, two slow targets
would hold both workers and every other endpoint's slots would wait behind them. So a batch
task only claims its runs and hands them here (`submit`), then returns (a run claimed ahead of
its slot waits on the loop for its instant, request already built):

- the **loop thread** prepares each run (`executor.prepare`: its request built; a run claimed
  ahead waits so, in a list per start instant) and at its start sends it (`executor.send`) on
  one asyncio loop: HTTP calls through one `calls.client.Client` (pooled keep-alive
  connections, at most SCHEDULER_MAX_IN_FLIGHT at once — more wait, none is dropped — each
  ending by its own total deadline), Python handlers each in a thread of their own with their
  own timeout;
- the **recorder thread** takes finished runs off a queue and writes them with
  `recording.record_many`, a batch at most every FLUSH_SECONDS — but while the loop is sending
  an instant's calls (calls wait for a slot under the cap, or the loop is behind) it waits, up to
  RECORD_DEFER in all, so as not to take the process's interpreter lock, nor the database's
  share of the machine, from the sends. The ORM is never called from the loop thread.

`drain()` stops taking work, lets the calls in flight finish (each within its deadline),
records them and stops both threads: django-q2 calls it when the worker process ends (a clean
stop, or a recycle), through a multiprocessing finalizer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from datetime import datetime
from multiprocessing import util
from queue import Empty, SimpleQueue

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from calls.client import Client
from calls.spec import Outcome
from runs import executor, wakeup
from runs.models import Log
from runs.recording import record_many

logger = logging.getLogger(__name__)
# Finished runs are written together, at most this long after the first of them finished.
FLUSH_SECONDS = 0.05
# And at most this many in one write.
MAX_RECORD = 500
# A write that failed (the database went away) is tried again after this.
RECORD_RETRY_SECONDS = 1.0
# The loop marks the time this often; when the mark is late by LOOP_BEHIND, or calls wait for a
# slot under the cap, the loop is busy sending (an instant's thousands of calls) and the
# recorder waits, up to RECORD_DEFER from when it began to wait, rather than take half the
# process's one interpreter lock from the sends. (Waiting at most 1 s a batch, the recorders
# and the database took a third of the machine from the sends of 10,000 calls at once.)
LOOP_BEAT = 0.01
LOOP_BEHIND = 0.02
RECORD_DEFER = 3.0
_engine: Engine | None = None
_engine_lock = threading.Lock()


def current() -> Engine | None:
    """This process's engine if it has one."""
    return _engine if _engine is not None and _engine.pid == os.getpid() else None


def engine() -> Engine:
    """This process's engine, started on first use (after django-q2 forked the worker)."""
    global _engine
    with _engine_lock:
        if _engine is None or _engine.pid != os.getpid() or not _engine.accepting:
            _engine = Engine()
            _engine.start()
            # Runs when the worker's task loop ends, before the process exits.
            util.Finalize(_engine, _engine.drain, exitpriority=100)
        return _engine


class Engine:
    def __init__(self, *, max_in_flight: int | None = None) -> None:
        self.pid = os.getpid()
        self.max_in_flight = max_in_flight or settings.SCHEDULER_MAX_IN_FLIGHT
        self.loop = asyncio.new_event_loop()
        self._finished: SimpleQueue[executor.Finished | None] = SimpleQueue()
        self._in_flight = 0  # submitted and not yet recorded
        self._idle = threading.Condition()
        self.accepting = True
        self._client: Client | None = None
        self._threads: list[threading.Thread] = []
        self._beat_at = time.monotonic()
        self._defer_until: float | None = None  # when the recorder stops waiting for the sends

    def start(self) -> None:
        # Everything loaded so far (Django, the apps) lives as long as the process: out of the
        # collector's sight, a collection under load scans only the runs' own objects (12 % of
        # a call's CPU at a 5,000-call instant, measured).
        gc.freeze()
        ready = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run_loop, args=(ready,), name="cronplane-loop", daemon=True
            ),
            threading.Thread(target=self._record, name="cronplane-recorder", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        ready.wait()

    def submit(self, logs: list[Log]) -> None:
        """Perform these claimed (running) Logs; returns at once."""
        if not logs:
            return
        if not self.accepting:
            # Stopping: the runs stay `running` and are recovered with their cluster.
            logger.warning("engine stopping: %d claimed runs not started", len(logs))
            return
        with self._idle:
            self._in_flight += len(logs)
        self.loop.call_soon_threadsafe(self._start, logs)

    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted has been recorded; False if `timeout` came first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def drain(self, timeout: float | None = None) -> None:
        """Stop taking runs, finish and record those in flight, stop the threads."""
        if not self.accepting:
            return
        self.accepting = False
        limit = timeout if timeout is not None else settings.SCHEDULER_MAX_TIMEOUT_SECONDS + 5
        if not self.wait_idle(limit):
            logger.warning("engine stopped with %d runs unrecorded", self.in_flight())
        self._finished.put(None)
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        for thread in self._threads:
            thread.join(5)

    # --- the loop thread -------------------------------------------------------------------------

    def _run_loop(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self._client = self.loop.run_until_complete(self._new_client())
        self._beat()
        ready.set()
        self.loop.run_forever()

    def _beat(self) -> None:
        self._beat_at = time.monotonic()
        self.loop.call_later(LOOP_BEAT, self._beat)

    def loop_is_behind(self) -> bool:
        return time.monotonic() - self._beat_at > LOOP_BEAT + LOOP_BEHIND

    def loop_is_sending(self) -> bool:
        client = self._client
        return self.loop_is_behind() or (client is not None and client.waiting() > 0)

    async def _new_client(self) -> Client:
        return Client(max_in_flight=self.max_in_flight)

    def _start(self, logs: list[Log]) -> None:
        # A run claimed ahead of its start waits as its prepared request in one list per start
        # instant, not as a task asleep: a worker holding 5,000 runs of one instant holds 2 KB a
        # run less (the task, its coroutines, their timer).
        now = timezone.now()
        held: dict[datetime, list[executor.Prepared]] = {}
        for log in logs:
            try:
                prepared = executor.prepare(log, self._client)
            except Exception as exc:  # a bug in our code must still end the run
                prepared = executor.crashed(log, exc)
            if isinstance(prepared, Outcome):
                self._finished.put((log, prepared, timezone.now()))
            elif log.started_at is not None and log.started_at > now:
                held.setdefault(log.started_at, []).append(prepared)
            else:
                self._send(prepared)
        for start, group in held.items():
            wait = (start - timezone.now()).total_seconds()  # after preparing them all
            self.loop.call_later(max(0.0, wait), self._send_all, group)

    def _send_all(self, group: list[executor.Prepared]) -> None:
        for prepared in group:
            self._send(prepared)

    def _send(self, prepared: executor.Prepared) -> None:
        task = self.loop.create_task(executor.send_finished(prepared, self._client))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        self._finished.put(task.result())

    # --- the recorder thread ---------------------------------------------------------------------

    def _record(self) -> None:
        while True:
            first = self._finished.get()
            if first is None:
                break
            batch = [first]
            flush_at = time.monotonic() + FLUSH_SECONDS
            stopping = False
            while len(batch) < MAX_RECORD:
                try:
                    item = self._finished.get(timeout=max(0.0, flush_at - time.monotonic()))
                except Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._yield_to_sends()
            self._write(batch)
            if stopping:
                break
        connections.close_all()

    def _yield_to_sends(self) -> None:
        """Wait while the loop is sending, RECORD_DEFER at most from when the wait began (calls
        queued behind slow targets for longer do not hold their neighbours' records)."""
        if self._defer_until is None:
            self._defer_until = time.monotonic() + RECORD_DEFER
        while self.accepting and self.loop_is_sending():
            if time.monotonic() >= self._defer_until:
                return
            time.sleep(LOOP_BEAT)
        self._defer_until = None

    def _write(self, batch: list[executor.Finished]) -> None:
        for _ in range(30):
            try:
                close_old_connections()
                record_many(batch)
                wakeup.ring()  # runs waiting behind these may start now
                break
            except DatabaseError as exc:
                # The database went away: the verdicts wait here (their leases run meanwhile).
                logger.warning("recording %d runs failed (%s); trying again", len(batch), exc)
                connections.close_all()
                time.sleep(RECORD_RETRY_SECONDS)
            except Exception:
                logger.exception("recording %d runs crashed", len(batch))
                break
        else:
            logger.error("gave up recording %d runs; they will be recovered", len(batch))
        with self._idle:
            self._in_flight -= len(batch)
            self._idle.notify_all()
