"""Threads of a process that forks, kept out of each other's way.

A child forked while another thread of its parent holds a lock (SQLite's mutex inside a connect,
redis-py's pool lock, a logging handler's stream) inherits that lock held by a thread it does
not have: its first use hangs for ever. qcluster's sentinel forks its workers (again when one
dies) and also runs threads that use those libraries (django-q2's monitor and pusher, the
dispatcher). So each of those threads works `inside()` the guard — any number at once — and
steps `outside()` only to wait (for a result, for its next pass); the sentinel forks
`exclusively()`: once no thread is inside, and none enters until the fork is done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ForkGuard:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._inside = 0
        self._forking = False

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Library work of a thread: a fork waits until it is done. Not to be nested."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    @contextmanager
    def outside(self) -> Iterator[None]:
        """A wait within `inside()`, during which the process may fork."""
        self._leave()
        try:
            yield
        finally:
            self._enter()

    @contextmanager
    def exclusively(self) -> Iterator[None]:
        """The fork itself: no thread is inside meanwhile."""
        with self._changed:
            while self._forking:  # one fork at a time
                self._changed.wait()
            self._forking = True  # no thread enters from now on
            while self._inside:
                self._changed.wait()
        try:
            yield
        finally:
            with self._changed:
                self._forking = False
                self._changed.notify_all()

    def _enter(self) -> None:
        with self._changed:
            while self._forking:
                self._changed.wait()
            self._inside += 1

    def _leave(self) -> None:
        with self._changed:
            self._inside -= 1
            if not self._inside:
                self._changed.notify_all()
