"""A recorded run wakes its cluster's dispatcher.

A run waiting behind an open one (overlap `queue_one`; an endpoint taken early for its slot,
runs/dispatcher_loop.py) can start as soon as that run is recorded. The recorder is in a worker
process (runs/engine.py) and the dispatcher in the sentinel: `qcluster` makes the bell before
it forks the workers (`install`). Without it (tests, `runjob`,
another cluster's runs) the dispatcher looks again after DEFERRED_POLL, which is why that poll
can be slow: before this bell a run waiting behind a long one made the loop look twenty times a
second, ~12 % of a core for as long as it waited.
"""

from __future__ import annotations

import os
import select
import threading

_bell: PipeBell | None = None


class PipeBell:
    """An event shared by the processes forked after it is made, on a pipe rather than a
    multiprocessing.Event: setting one of those waits, lock in hand, for each process asleep on
    it to wake, so a dispatcher killed in its sleep (kill -9 of the sentinel) left every
    worker's recorder stuck in ring() for ever. Writing to a pipe never waits: a full pipe is a
    bell already rung."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass

    def wait(self, timeout: float | None = None) -> bool:
        readable, _, _ = select.select([self._read], [], [], timeout)
        return bool(readable)

    def is_set(self) -> bool:
        return self.wait(0)

    def clear(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass


def install() -> None:
    """The bell this process and the processes it forks from now on share."""
    global _bell
    _bell = PipeBell()


def bell() -> PipeBell | threading.Event:
    """What a dispatcher loop sleeps on: the shared bell if installed, else one of its own."""
    return _bell if _bell is not None else threading.Event()


def ring() -> None:
    """Runs were recorded: the waiting ones may start."""
    if _bell is not None:
        _bell.set()
