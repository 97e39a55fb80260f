"""django-q2's worker timer (a float shared by a worker and the sentinel: -1 idle, -2 recycled, 0
gave up at its timeout, > 0 seconds left) with a lock that outlives neither of them.

django-q2 gives each worker a `multiprocessing.Value`, whose lock the worker holds while it hands
in a result and the sentinel's guard loop holds while it looks at the worker. A worker killed
(-9, the OOM killer) inside that lock left it held for good: the guard loop blocked on it, so
nothing was reincarnated, no dead worker's runs were recovered, and the cluster stopped working.
Here the value needs no lock to be read or written (one aligned float), and a process waiting
for the lock goes on without it once the only other process that can hold it is dead.
"""

from __future__ import annotations

import multiprocessing
import os

# How often a process waiting for the lock looks whether its holder is still alive.
HOLDER_POLL = 0.1


class WorkerTimer:
    def __init__(self) -> None:
        self._value = multiprocessing.RawValue("f", -1)
        self._lock = multiprocessing.RLock()
        self._sentinel = os.getpid()
        self.worker = None  # the sentinel's Process of the worker, once forked

    @property
    def value(self) -> float:
        return self._value.value

    @value.setter
    def value(self, value: float) -> None:
        self._value.value = value

    def get_lock(self) -> _Held:
        return _Held(self._lock, self._other_is_alive)

    def _other_is_alive(self) -> bool:
        if os.getpid() == self._sentinel:
            return self.worker is None or self.worker.is_alive()
        return os.getppid() == self._sentinel


class _Held:
    """The lock for one `with` block; entered without it once `other_is_alive` says no."""

    def __init__(self, lock, other_is_alive) -> None:
        self._lock, self._other_is_alive = lock, other_is_alive
        self._acquired = False

    def __enter__(self) -> _Held:
        while not (acquired := self._lock.acquire(timeout=HOLDER_POLL)):
            if not self._other_is_alive():
                break
        self._acquired = acquired
        return self

    def __exit__(self, *exc_info) -> None:
        if self._acquired:
            self._lock.release()
