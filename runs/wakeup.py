"""A recorded run wakes its cluster's dispatcher.

A run waiting behind an open one (overlap `queue_one`; an endpoint taken early for its slot,
runs/dispatcher_loop.py) can start as soon as that run is recorded. The recorder is in a worker
process (runs/engine.py) and the dispatcher in the pusher: `qcluster` makes one
multiprocessing Event for both before it forks them (`install`). Without it (tests, `runjob`,
another cluster's runs) the dispatcher looks again after DEFERRED_POLL, which is why that poll
can be slow: before this bell a run waiting behind a long one made the loop look twenty times a
second, ~12 % of a core for as long as it waited.
"""

from __future__ import annotations

import multiprocessing
import threading

_bell: threading.Event | None = None


def install() -> None:
    """The bell this process and the processes it forks from now on share."""
    global _bell
    _bell = multiprocessing.Event()


def bell() -> threading.Event:
    """What a dispatcher loop sleeps on: the shared bell if installed, else one of its own."""
    return _bell if _bell is not None else threading.Event()


def ring() -> None:
    """Runs were recorded: the waiting ones may start."""
    if _bell is not None:
        _bell.set()
