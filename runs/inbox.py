"""The workers' task queues: one inbox a worker process, which it alone reads.

django-q2's workers share one multiprocessing.Queue, and a reader holds that queue's lock while
it waits for the next task. A worker killed -9 while idle (the OOM killer) left the lock held
for ever: the workers forked after it waited on it, and the cluster ran nothing more, its
heartbeat fresh, until restarted. An inbox is a pipe with a single reader, so it needs no lock:
a dead worker's inbox dies with it, and its tasks (those it had not taken, and the one it was
performing) go to the inbox of the worker forked in its place.

The sentinel's pusher (`Inboxes.put`) gives each task to the live worker with the fewest
waiting, at most `per_worker` each (django-q2's QUEUE_LIMIT, shared out), and waits for room.
A worker is given no more tasks than it takes before it is recycled (django-q2's RECYCLE): a
task put behind those would wait for the worker forked in its place.
Every count is written by one process only, so none needs a lock either.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
from collections import deque
from typing import Any

from runs.wakeup import PipeBell

STOP = "STOP"  # django-q2's poison pill: one for each worker
# The longest the pusher waits for room before it looks again (a room bell can be missed only
# by a worker killed between taking a task and ringing).
ROOM_POLL = 0.5


class Inbox:
    """One worker's tasks: sent by the sentinel, taken by the worker."""

    def __init__(self, room: PipeBell) -> None:
        self._reader, self._writer = multiprocessing.Pipe(duplex=False)
        self._room = room
        # Written by the worker: how many tasks it took, and how many of those it finished
        # (it takes the next one only when done with the last).
        self._taken = multiprocessing.RawValue("Q", 0)
        self._finished = multiprocessing.RawValue("Q", 0)
        # Written by the sentinel: how many it sent, and the last ones not known finished.
        self.sent = 0
        self._unfinished: deque[Any] = deque()
        self.stopped = False

    # --- in the worker ---

    def get(self) -> Any:
        """The next task (django-q2's worker loop calls this once it finished the last)."""
        self._finished.value = self._taken.value
        task = self._reader.recv()
        self._taken.value += 1
        self._room.set()
        return task

    # --- in the sentinel ---

    @property
    def waiting(self) -> int:
        return self.sent - self._taken.value

    def send(self, task: Any) -> None:
        self._writer.send(task)
        self.sent += 1
        self._unfinished.append(task)
        while len(self._unfinished) > self.sent - self._finished.value:
            self._unfinished.popleft()
        self.stopped = self.stopped or task == STOP

    def leftovers(self, *, last_finished: bool) -> list[Any]:
        """What its dead worker left: the tasks it had not taken, and the one it had taken
        unless `last_finished` (it was idle, recycled, or gave up on it at its timeout)."""
        count = self.waiting if last_finished else self.sent - self._finished.value
        tasks = list(self._unfinished)[-count:] if count > 0 else []
        return [task for task in tasks if task != STOP]

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class Inboxes:
    """The task queue as django-q2's sentinel and pusher see it (put, qsize, empty), made of
    one Inbox a worker."""

    def __init__(self, limit: int | None, workers: int, recycle: int | None = None) -> None:
        self.per_worker = max(1, math.ceil(limit / workers)) if limit else 8
        self.recycle = recycle
        self._room = PipeBell()
        self._lock = threading.Lock()
        self._by_worker: dict[Any, Inbox] = {}
        self._turn = 0
        self._stopping = False

    def new(self) -> Inbox:
        """An inbox for the next worker to fork (`add` it once forked)."""
        return Inbox(self._room)

    def add(self, worker, inbox: Inbox, tasks: list[Any] = ()) -> None:
        with self._lock:
            for task in tasks:
                inbox.send(task)
            self._by_worker[worker] = inbox

    def remove(self, worker, *, last_finished: bool) -> list[Any]:
        """The ended worker's inbox closed; returns its leftovers (Inbox.leftovers)."""
        with self._lock:
            inbox = self._by_worker.pop(worker, None)
        if inbox is None:
            return []
        leftovers = inbox.leftovers(last_finished=last_finished)
        inbox.close()
        return leftovers

    def put(self, task: Any) -> None:
        """To the live worker with the fewest tasks waiting, once one has room; a STOP to the
        next worker without one (whether or not it has room). Once `stop_waiting`, a task with
        no room is dropped."""
        if task == STOP:
            with self._lock:
                inbox = next(iter(self._live()), None)
                if inbox is not None:
                    inbox.send(task)
            return
        while not self._stopping:
            self._room.clear()
            with self._lock:
                inbox = self._roomiest()
                if inbox is not None:
                    inbox.send(task)
                    return
            self._room.wait(ROOM_POLL)

    def _live(self) -> list[Inbox]:
        """The inboxes of the workers alive and not yet sent their STOP."""
        return [
            inbox
            for worker, inbox in self._by_worker.items()
            if worker.is_alive() and not inbox.stopped
        ]

    def _roomiest(self) -> Inbox | None:
        """The live inbox with the fewest tasks waiting; of those, the next in turn after the
        last one given a task (an instant's batches, one a worker, go one to each: the worker
        that took the first at once would have room for all of them)."""
        live = [inbox for inbox in self._live() if not self._recycling(inbox)]
        if not live:
            return None
        self._turn = (self._turn + 1) % len(live)
        in_turn = live[self._turn :] + live[: self._turn]
        inbox = min(in_turn, key=lambda inbox: inbox.waiting)
        return inbox if inbox.waiting < self.per_worker else None

    def _recycling(self, inbox: Inbox) -> bool:
        return self.recycle is not None and inbox.sent >= self.recycle

    def stop_waiting(self) -> None:
        """The cluster is stopping: a put waiting for room gives up (the runs of its task were
        released for another cluster, `runs.cluster.release`, and no worker is forked now)."""
        self._stopping = True
        self._room.set()

    def qsize(self) -> int:
        with self._lock:
            return sum(inbox.waiting for inbox in self._by_worker.values())

    def empty(self) -> bool:
        return self.qsize() == 0

    def close(self) -> None:
        """Sentinel.stop's queue.close(): every send is written before put returns."""

    def join_thread(self) -> None:
        """Sentinel.stop's queue.join_thread(): nothing is left to flush."""
