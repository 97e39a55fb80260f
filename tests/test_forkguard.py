"""runs/forkguard.py: the sentinel forks only while none of its threads is inside a library."""

import threading

from runs.forkguard import ForkGuard


def test_a_fork_waits_for_the_threads_inside_and_none_enters_meanwhile():
    guard = ForkGuard()
    events = []
    inside, release, forking = threading.Event(), threading.Event(), threading.Event()

    def library_work() -> None:
        with guard.inside():
            events.append("work starts")
            inside.set()
            release.wait(5)
            events.append("work ends")

    def fork() -> None:
        forking.set()
        with guard.exclusively():
            events.append("fork")

    worker = threading.Thread(target=library_work)
    worker.start()
    inside.wait(5)
    forker = threading.Thread(target=fork)
    forker.start()
    forking.wait(5)

    def late_work() -> None:
        with guard.inside():
            events.append("late")

    late = threading.Thread(target=late_work)
    forker.join(0.2)
    late.start()
    late.join(0.2)
    assert forker.is_alive() and late.is_alive()  # the fork waits for the work inside, and
    assert events == ["work starts"]  # no other work starts before the fork
    release.set()
    for thread in (worker, forker, late):
        thread.join(5)
    assert events == ["work starts", "work ends", "fork", "late"]


def test_a_thread_waiting_outside_lets_the_fork_happen():
    guard = ForkGuard()
    waiting, forked = threading.Event(), threading.Event()

    def monitor() -> None:
        with guard.inside():
            with guard.outside():  # waiting for the next result
                waiting.set()
                forked.wait(5)

    thread = threading.Thread(target=monitor)
    thread.start()
    waiting.wait(5)
    with guard.exclusively():
        forked.set()
    thread.join(5)
    assert not thread.is_alive()
