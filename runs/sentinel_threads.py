"""django-q2's monitor and pusher as threads of qcluster's sentinel (runs/management/commands/
qcluster.py), not processes of their own: each works inside the sentinel's fork guard
(runs/forkguard.py) but while it waits — for the next result, for Redis's BLPOP — so the
sentinel may fork a worker meanwhile and never while one of them holds a library's lock."""

from __future__ import annotations

import os
import threading

from django import db
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.monitor import monitor
from django_q.pusher import pusher

from runs.forkguard import ForkGuard


class MonitorThread(threading.Thread):
    """django-q2's monitor loop (`django_q.monitor.monitor`, until its STOP) in the sentinel,
    inside the fork guard but while it waits for the next result."""

    def __init__(self, result_queue, fork_guard: ForkGuard) -> None:
        super().__init__(target=self._monitor, name="django-q2-monitor", daemon=True)
        self.results = _ResultsBetweenForks(result_queue, fork_guard)
        self.fork_guard = fork_guard

    @property
    def pid(self) -> int:  # django_q.status.Stat reports the monitor's pid
        return os.getpid()

    def _monitor(self) -> None:
        with self.fork_guard.inside():
            try:
                monitor(self.results)  # its broker made here, in this thread
            finally:
                db.connections.close_all()


class _ResultsBetweenForks:
    """The result queue as the monitor thread reads it: waiting for a result, it lets the
    sentinel fork; with one in hand, it does not."""

    def __init__(self, queue, fork_guard: ForkGuard) -> None:
        self.queue, self.fork_guard = queue, fork_guard

    def get(self):
        with self.fork_guard.outside():
            return self.queue.get()


class PusherThread(threading.Thread):
    """django-q2's pusher loop (`django_q.pusher.pusher`, until `event_out`) in the sentinel: it
    takes each task from the broker (`_BrokerBetweenForks`) and puts it on the workers' queue."""

    def __init__(self, task_queue, event_out, broker, fork_guard: ForkGuard) -> None:
        super().__init__(target=self._push, name="django-q2-pusher", daemon=True)
        self.task_queue, self.event_out, self.fork_guard = task_queue, event_out, fork_guard
        self.broker = _BrokerBetweenForks(broker, fork_guard)

    @property
    def pid(self) -> int:  # django_q.status.Stat reports the pusher's pid
        return os.getpid()

    def _push(self) -> None:
        try:
            pusher(self.task_queue, self.event_out, self.broker)
        finally:
            with self.fork_guard.inside():
                db.connections.close_all()


class _BrokerBetweenForks:
    """The sentinel's broker as the pusher thread uses it: each call inside the fork guard, but
    Redis's BLPOP. That one waits up to 1 s on its socket, and a fork would wait for it (and
    every other thread with it, the dispatcher too); a fork meanwhile is safe, since no worker
    uses the sentinel's Redis client (redis-py gives a forked process a pool of its own)."""

    def __init__(self, broker, fork_guard: ForkGuard) -> None:
        self._broker, self._fork_guard = broker, fork_guard
        self._waits_on_redis = isinstance(broker, RedisBroker)

    def dequeue(self):
        if self._waits_on_redis:
            return self._broker.dequeue()
        with self._fork_guard.inside():
            return self._broker.dequeue()

    def fail(self, task_id) -> None:
        with self._fork_guard.inside():
            self._broker.fail(task_id)

    def __getattr__(self, name: str):
        return getattr(self._broker, name)  # list_key
