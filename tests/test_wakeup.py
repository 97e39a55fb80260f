"""runs/wakeup.py: the bell the workers' recorders ring and the dispatcher sleeps on."""

import multiprocessing
import os
import signal
import threading
import time

from runs import wakeup


def test_a_ring_never_waits_for_a_dispatcher_killed_in_its_sleep():
    """With a multiprocessing.Event, set() waited for every process asleep on it to wake: a
    sentinel killed -9 in its sleep left the workers' recorders stuck in ring() for ever."""
    bell = wakeup.PipeBell()
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()

    def sleep_on_the_bell() -> None:
        ready.set()
        bell.wait(30)

    asleep = fork.Process(target=sleep_on_the_bell, daemon=True)
    asleep.start()
    assert ready.wait(10)
    time.sleep(0.2)  # inside its wait by now
    os.kill(asleep.pid, signal.SIGKILL)
    asleep.join(10)

    ringer = threading.Thread(target=wakeup.PipeBell.set, args=(bell,), daemon=True)
    ringer.start()
    ringer.join(5)
    assert not ringer.is_alive()
    assert bell.is_set()


def test_the_bell_wakes_a_sleeper_in_another_process_and_clears():
    bell = wakeup.PipeBell()
    fork = multiprocessing.get_context("fork")
    assert not bell.wait(0.05)
    ringer = fork.Process(target=bell.set)
    ringer.start()
    assert bell.wait(10)  # rung from the other process
    ringer.join(10)
    for _ in range(100_000):  # rung many times while nobody listened: never blocks
        bell.set()
    bell.clear()
    assert not bell.is_set()
