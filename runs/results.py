"""The workers' results: one pipe a worker, which it alone writes and the monitor reads.

django-q2's workers share one multiprocessing.Queue for their results, and each worker's feeder
thread holds that queue's write lock while it writes one. A worker killed -9 in that moment (the
OOM killer; after every task a result is written) left the lock held for good and half a
message in the pipe: the monitor waited for the rest, every other worker's results piled up in
its memory, and the stop never ended. A pipe of its own needs no lock; a worker's death closes
it (the sentinel keeps no copy of its writing end), so the monitor reads what it had sent, up to
half a message, and drops it. `put` from the sentinel itself (django-q2's STOP for the monitor)
comes after every result of the workers that have ended.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import deque
from multiprocessing.connection import wait
from typing import Any

STOP = "STOP"
_ADDED = "cronplane: a new worker's results"  # wakes the monitor to read a new pipe too


class ResultPipe:
    """One worker's results, as django-q2's worker loop sees its result queue."""

    def __init__(self) -> None:
        self.reader, self._writer = multiprocessing.Pipe(duplex=False)
        self.sent = multiprocessing.RawValue("Q", 0)  # written by the worker only
        self.received = 0  # by the monitor only

    def put(self, task: Any) -> None:
        """In the worker: written at once, in its own thread (no feeder thread)."""
        self._writer.send(task)
        self.sent.value += 1

    def forked(self) -> None:
        """In the sentinel: its copy of the writing end closed, so the worker's death ends it."""
        self._writer.close()


class Results:
    """The result queue as django-q2's sentinel (put, close, empty, qsize) and monitor (get)
    see it."""

    def __init__(self) -> None:
        self._pipes: dict[Any, ResultPipe] = {}  # by reader
        self._lock = threading.Lock()  # the sentinel's guard adds, the monitor reads and drops
        self._own_reader, self._own_writer = multiprocessing.Pipe(duplex=False)
        self._ready: deque[Any] = deque()

    # --- the sentinel ---

    def new(self) -> ResultPipe:
        return ResultPipe()

    def add(self, pipe: ResultPipe) -> None:
        """Once its worker is forked."""
        pipe.forked()
        with self._lock:
            self._pipes[pipe.reader] = pipe
        self._own_writer.send(_ADDED)

    def put(self, message: Any) -> None:
        self._own_writer.send(message)

    def close(self) -> None:
        self._own_writer.close()

    def join_thread(self) -> None:
        """There is no feeder thread to wait for."""

    def qsize(self) -> int:
        with self._lock:
            return sum(pipe.sent.value - pipe.received for pipe in self._pipes.values())

    def empty(self) -> bool:
        return self.qsize() == 0

    # --- the monitor ---

    def get(self) -> Any:
        while not self._ready:
            with self._lock:
                readers = [*self._pipes, self._own_reader]
            for reader in wait(readers):
                if reader is self._own_reader:
                    self._read_own()
                else:
                    self._read(reader)
        return self._ready.popleft()

    def _read_own(self) -> None:
        try:
            message = self._own_reader.recv()
        except EOFError:  # closed by the sentinel's stop
            message = STOP
        if message == _ADDED:
            return
        if message == STOP:  # the workers have ended: what they sent first
            with self._lock:
                readers = list(self._pipes)
            for reader in readers:
                while reader in self._pipes and reader.poll(0):
                    self._read(reader)
        self._ready.append(message)

    def _read(self, reader) -> None:
        try:
            self._ready.append(reader.recv())
        except (EOFError, OSError):  # its worker ended (or died in the middle of a message)
            with self._lock:
                del self._pipes[reader]
            reader.close()
            return
        self._pipes[reader].received += 1
