"""runs/worker_timer.py: the lock of a worker's timer, held by a process killed inside it, no
longer holds the other process for good. Real forked processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from runs.worker_timer import WorkerTimer


def _take_the_lock(timer: WorkerTimer, inside, then: str) -> None:
    timer.get_lock().__enter__()
    timer.value = 7
    inside.set()
    if then == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(1.0)


def _forked(timer: WorkerTimer, then: str):
    inside = multiprocessing.get_context("fork").Event()
    process = multiprocessing.get_context("fork").Process(
        target=_take_the_lock, args=(timer, inside, then)
    )
    process.start()
    timer.worker = process
    assert inside.wait(10), "the worker did not take its lock"
    return process


def _entered(timer: WorkerTimer) -> float:
    """How long the sentinel's side waited to enter the lock."""
    started = time.monotonic()
    with timer.get_lock():
        return time.monotonic() - started


def test_a_worker_killed_inside_its_timer_lock_leaves_the_sentinel_free_to_look_at_it():
    timer = WorkerTimer()
    process = _forked(timer, then="die")
    waited = _entered(timer)
    assert (process.is_alive(), timer.value) == (False, 7)
    assert waited < 2, waited


def test_a_live_worker_inside_its_timer_lock_is_waited_for():
    timer = WorkerTimer()
    process = _forked(timer, then="hold")
    waited = _entered(timer)
    process.join(5)
    assert waited >= 0.5, waited  # held until the worker's process ended, ~1 s after it took it


def test_the_value_is_read_and_written_without_the_lock_its_holder_may_have_died_with():
    timer = WorkerTimer()
    process = _forked(timer, then="die")
    process.join(5)
    timer.value = -1
    assert timer.value == -1
