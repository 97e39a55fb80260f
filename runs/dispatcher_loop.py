"""The dispatcher loop that `manage.py qcluster` runs beside the django-q2 cluster.

It wakes at the next due instant (never more than `max_sleep` between looks), runs one pass of
the dispatcher, hands what it queued to the broker, and keeps its cluster's heartbeat; every
SWEEP_EVERY it takes back the runs of clusters whose heartbeat went stale (runs/cluster.py).
With `dispatching=False` (`qcluster --no-dispatcher`) it only keeps the heartbeat.

In qcluster it is a thread of the sentinel, which forks: its passes and beats are done
`working()` (runs/forkguard.py) and its sleeps outside.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta

from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from endpoints.models import Endpoint
from runs import cluster, dispatcher, heartbeats, notifications, services, wakeup
from runs.models import Heartbeat, Log

logger = logging.getLogger("runs.dispatcher")
# How often lost runs are looked for: a dead cluster's runs are back CLUSTER_STALE + this after
# its last heartbeat at the latest.
SWEEP_EVERY = timedelta(seconds=2)
# Slots are dispatched at least this long before they are due, so that their runs are already
# in a worker's hands at the instant (runs/tasks.py holds each until its due_at).
DISPATCH_AHEAD = timedelta(seconds=1)
# A big instant (thousands of endpoints at the top of the hour) starts earlier, by about what
# dispatching, handing over and claiming costs a run (measured ~0.5 ms on 2 cores), up to
# MAX_LOOKAHEAD; runs/tasks.py claims runs due within MAX_LOOKAHEAD and holds them.
LOOKAHEAD_PER_RUN = timedelta(milliseconds=0.6)
MAX_LOOKAHEAD = timedelta(seconds=15)
# How often to look again while a run waits on an open one (an endpoint taken early for its slot,
# a queue_one run): the bell of runs/wakeup.py wakes the loop sooner when this cluster records a
# run, so this is for the runs other clusters record.
DEFERRED_POLL = 0.5
# Endpoints examined per dispatcher pass (one transaction each).
PAGE = 500
HEARTBEAT_EVERY = timedelta(seconds=3)


class DispatcherLoop:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = timezone.now,
        enqueue: Callable[[list[Log]], None] = services.enqueue_many,
        max_sleep: float = 1.0,
        ahead: timedelta = DISPATCH_AHEAD,
        cluster_id: str = "",
        name: str = "",
        dispatching: bool = True,
        working: Callable[[], AbstractContextManager] = nullcontext,
    ) -> None:
        self.ahead = ahead
        self.working = working
        self.clock = clock
        self.enqueue = enqueue
        self.max_sleep = max_sleep
        self.stopping = threading.Event()
        self.bell = wakeup.bell()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.cluster_id = cluster_id or cluster.current()
        self.dispatching = dispatching
        # In a cluster the sentinel removes the heartbeat, once its workers have finished.
        self.keep_heartbeat = False
        self.started_at = clock()
        self.dispatched = 0
        # The first pass looks for lost runs at once (a restart after a crash).
        self._next_sweep = self.started_at
        self._next_heartbeat = self.started_at
        self._last_tick_ms = 0.0
        # Endpoints taken early but waiting on an open run: id -> (their slot, those runs).
        self._blocked: dict[int, tuple[datetime, list[int]]] = {}
        self._waits_on_runs = False  # the last pass left runs waiting on open ones
        # The instant last counted by lookahead() and how many endpoints were due at it.
        self._counted: tuple[datetime | None, int] = (None, 0)

    def stop(self) -> None:
        self.stopping.set()
        self.bell.set()

    def run(self) -> None:
        with self.working():
            logger.info("dispatcher %s started", self.name)
            gc.freeze()  # as the engine does (runs/engine.py): collections scan only new objects
            try:
                cluster.forget_dead_neighbours(self.clock())
            except DatabaseError as exc:
                logger.warning("could not look for dead clusters on this host (%s)", exc)
        beating = threading.Thread(
            target=self._beat_until_stopped, name="cronplane-heartbeat", daemon=True
        )
        beating.start()
        failures = 0
        while not self.stopping.is_set():
            with self.working():
                try:
                    delay = self.tick()
                    failures = 0
                except DatabaseError as exc:
                    # The database went away: keep trying, it is the only source of truth.
                    failures += 1
                    delay = min(5.0, 0.5 * failures)
                    logger.warning("dispatcher pass failed (%s); retrying in %.1f s", exc, delay)
                except Exception:
                    # A bug or a misconfiguration must be loud, but must not stop the schedules
                    # of every other endpoint for good.
                    failures += 1
                    delay = min(5.0, 0.5 * failures)
                    logger.exception("dispatcher pass crashed; retrying in %.1f s", delay)
                close_old_connections()
            self._sleep(delay)
        beating.join(10)  # no beat may come after the heartbeat is removed
        with self.working():
            if not self.keep_heartbeat:
                self._remove_heartbeat()
            connections.close_all()  # this thread's own
            logger.info("dispatcher %s stopped", self.name)

    def _sleep(self, delay: float) -> None:
        """Until `delay` has passed, stop() is called or — while runs wait on open ones — this
        cluster records runs (runs/wakeup.py); other rings are let pass."""
        until = time.monotonic() + delay
        while self.bell.wait(max(0.0, until - time.monotonic())):
            self.bell.clear()
            if self.stopping.is_set() or self._waits_on_runs:
                return

    def tick(self) -> float:
        """One pass; returns how long to sleep before the next one."""
        started = time.monotonic()
        now = self.clock()
        if not self.dispatching:
            if now >= self._next_heartbeat:
                self._beat(now)
            return self.max_sleep
        handed = 0
        # Two index-only reads say whether anything is due; an idle tick stops there.
        slot, pending = dispatcher.next_due()
        ahead = self.lookahead(now, slot)
        if slot is not None and slot <= now + ahead:
            self._unblock(now)
            while True:
                due = dispatcher.dispatch_due(
                    now, ahead=ahead, cluster=self.cluster_id, exclude=self._blocked, limit=PAGE
                )
                # Each page goes to the workers at once: the first runs of a big instant must
                # not wait for the last to be written.
                handed += self._hand_over(due.to_run)
                self._blocked |= due.blocked
                if due.endpoints + due.deferred < PAGE:
                    break
        left_waiting = False
        if pending is not None and pending <= now:
            passed = dispatcher.dispatch_pending(now, cluster=self.cluster_id)
            handed += self._hand_over(passed.to_run)
            left_waiting = passed.waiting > 0 and not passed.to_run
        if now >= self._next_sweep:
            if cluster.needs_recovery(now, self.cluster_id):
                _, requeued = cluster.recover_stuck(now, cluster=self.cluster_id)
                handed += self._hand_over(requeued)
            cluster.forget_long_gone(now)
            notifications.due(now)
            heartbeats.record_missed(now)
            self._next_sweep = now + SWEEP_EVERY
        self._last_tick_ms = (time.monotonic() - started) * 1000
        if now >= self._next_heartbeat:
            self._beat(now)
        if handed or self._blocked:
            slot, pending = dispatcher.next_due()
        self._waits_on_runs = bool(self._blocked) or left_waiting
        if self._blocked:
            # Taken at their slot at the latest, or early as soon as their runs end.
            return DEFERRED_POLL
        if left_waiting and pending is not None and pending <= now:
            # Runs due but left waiting (behind an open run): looked at again shortly, not at
            # once — they would be found due again on every pass, and the loop would spin.
            pending = now + timedelta(seconds=DEFERRED_POLL)
        wakes = [when for when in (slot and slot - ahead, pending) if when is not None]
        if not wakes:
            return self.max_sleep
        delay = (min(wakes) - self.clock()).total_seconds()
        return max(0.0, min(self.max_sleep, delay))

    def lookahead(self, now: datetime, slot: datetime | None) -> timedelta:
        """How early to dispatch the instant `slot`: `ahead`, or more for a big instant."""
        if not self.ahead or slot is None or slot > now + MAX_LOOKAHEAD or slot <= now:
            return self.ahead
        # Counted once per instant (endpoint_due_idx), not on every tick that approaches it: a
        # loop waiting on deferred endpoints ticks twenty times a second.
        if self._counted[0] != slot:
            self._counted = (slot, Endpoint.objects.due(slot).count())
        return min(MAX_LOOKAHEAD, max(self.ahead, LOOKAHEAD_PER_RUN * self._counted[1]))

    def _unblock(self, now: datetime) -> None:
        """Forget the endpoints whose slot has come or whose blocking runs have ended."""
        if not self._blocked:
            return
        runs = {pk for _, blockers in self._blocked.values() for pk in blockers}
        still_open = set(
            Log.objects.filter(pk__in=runs, state__in=Log.OPEN_STATES).values_list("pk", flat=True)
        )
        self._blocked = {
            endpoint_id: (slot, blockers)
            for endpoint_id, (slot, blockers) in self._blocked.items()
            if slot > now and still_open.intersection(blockers)
        }

    def _hand_over(self, to_run: list[Log]) -> int:
        if to_run:
            self.enqueue(to_run)
            self.dispatched += len(to_run)
        return len(to_run)

    def _beat_until_stopped(self) -> None:
        """The heartbeat in a thread of its own: a long pass (an instant of 10,000 endpoints, a
        slow database) must not make a live cluster look dead to the others."""
        while not self.stopping.wait(HEARTBEAT_EVERY.total_seconds()):
            with self.working():
                try:
                    self._beat(self.clock())
                except DatabaseError as exc:
                    logger.warning("heartbeat not written (%s)", exc)
                close_old_connections()
        with self.working():
            connections.close_all()  # this thread's own

    def _beat(self, now: datetime) -> None:
        host, _, pid = self.name.rpartition(":")
        Heartbeat.objects.update_or_create(
            name=self.name,
            defaults={
                "cluster_id": self.cluster_id,
                "host": host,
                "pid": int(pid),
                "started_at": self.started_at,
                "last_seen_at": now,
                "last_tick_ms": self._last_tick_ms,
                "dispatched": self.dispatched,
            },
        )
        self._next_heartbeat = now + HEARTBEAT_EVERY

    def _remove_heartbeat(self) -> None:
        try:
            Heartbeat.objects.filter(name=self.name).delete()
        except DatabaseError:
            pass
