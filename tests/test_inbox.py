"""runs/inbox.py with real forked reader processes: a worker killed while it waits for a task
holds nothing the others need, and what it left goes to the one forked in its place."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import Counter

import pytest

from runs.inbox import STOP, Inboxes
from tests.runs_support import wait_for

fork = multiprocessing.get_context("fork")


def performer(inbox, done, hold: float) -> None:
    """A worker's loop: take a task, perform it (`hold` seconds), tell `done`."""
    for task in iter(inbox.get, STOP):
        time.sleep(hold)
        done.send((os.getpid(), task))


def start_worker(inboxes: Inboxes, done, hold: float = 0.0, tasks=()):
    inbox = inboxes.new()
    process = fork.Process(target=performer, args=(inbox, done, hold), daemon=True)
    process.start()
    inboxes.add(process, inbox, list(tasks))
    return process


def received(results, count: int, timeout: float = 10) -> list:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and results.poll(max(0, deadline - time.monotonic())):
        got.append(results.recv())
    return got


@pytest.fixture
def pipe():
    results, done = fork.Pipe(duplex=False)
    yield results, done
    results.close()
    done.close()


def test_a_worker_killed_while_waiting_leaves_the_others_working(pipe):
    results, done = pipe
    inboxes = Inboxes(limit=4, workers=2)
    first, second = start_worker(inboxes, done), start_worker(inboxes, done)
    inboxes.put("warm-up")
    assert received(results, 1)
    os.kill(first.pid, signal.SIGKILL)  # idle: waiting in get()
    first.join(5)
    assert inboxes.remove(first, last_finished=True) == []
    for n in range(6):
        inboxes.put(f"task-{n}")
    got = received(results, 6)
    assert sorted(task for _, task in got) == [f"task-{n}" for n in range(6)]
    assert {pid for pid, _ in got} == {second.pid}
    inboxes.put(STOP)
    second.join(5)
    assert second.exitcode == 0


def test_what_a_killed_worker_left_goes_to_the_one_forked_in_its_place(pipe):
    results, done = pipe
    inboxes = Inboxes(limit=3, workers=1)
    slow = start_worker(inboxes, done, hold=30)
    for n in range(3):
        inboxes.put(f"task-{n}")
    # It is performing task-0 and has not taken the other two.
    assert wait_for(lambda: inboxes.qsize() == 2, timeout=5)
    os.kill(slow.pid, signal.SIGKILL)
    slow.join(5)
    leftovers = inboxes.remove(slow, last_finished=False)
    assert leftovers == ["task-0", "task-1", "task-2"]
    replacement = start_worker(inboxes, done, tasks=leftovers)
    assert sorted(task for _, task in received(results, 3)) == leftovers
    inboxes.put(STOP)
    replacement.join(5)
    assert replacement.exitcode == 0


def test_an_idle_or_recycled_workers_last_task_is_not_left_over(pipe):
    results, done = pipe
    inboxes = Inboxes(limit=2, workers=1)
    process = start_worker(inboxes, done)
    inboxes.put("done-already")
    assert received(results, 1)
    assert wait_for(lambda: inboxes.qsize() == 0, timeout=5)
    os.kill(process.pid, signal.SIGKILL)
    process.join(5)
    assert inboxes.remove(process, last_finished=True) == []


def test_the_pusher_waits_for_room_and_a_stop_goes_to_each_worker_once(pipe):
    results, done = pipe
    inboxes = Inboxes(limit=2, workers=2)  # one waiting task each
    workers = [start_worker(inboxes, done, hold=1.0) for _ in range(2)]
    for n in range(4):  # two performed, two waiting: full
        inboxes.put(f"task-{n}")
    pushed = threading.Event()
    pusher = threading.Thread(target=lambda: (inboxes.put("task-4"), pushed.set()), daemon=True)
    pusher.start()
    assert not pushed.wait(0.5), "put did not wait for room"
    assert pushed.wait(5), "put did not go on once a worker took a task"
    for _ in range(3):  # a third STOP finds no worker without one
        inboxes.put(STOP)
    assert sorted(task for _, task in received(results, 5)) == [f"task-{n}" for n in range(5)]
    for process in workers:
        process.join(10)
        assert process.exitcode == 0


def test_tasks_go_to_each_worker_in_turn_when_both_have_room(pipe):
    results, done = pipe
    inboxes = Inboxes(limit=4, workers=2)
    workers = [start_worker(inboxes, done) for _ in range(2)]
    for n in range(8):
        inboxes.put(f"task-{n}")
        assert wait_for(lambda: inboxes.qsize() == 0, timeout=5)  # taken at once: room in both
    by_worker = Counter(pid for pid, _ in received(results, 8))
    assert sorted(by_worker.values()) == [4, 4], by_worker
    for _ in workers:
        inboxes.put(STOP)
    for process in workers:
        process.join(5)


def test_a_worker_about_to_be_recycled_is_given_no_task_it_would_not_take(pipe):
    results, done = pipe
    inboxes = Inboxes(limit=8, workers=2, recycle=2)
    first = start_worker(inboxes, done, hold=0.5)
    second = start_worker(inboxes, done, hold=0.5)
    for n in range(4):
        inboxes.put(f"task-{n}")
    sent = {process.pid: inboxes._by_worker[process].sent for process in (first, second)}
    assert sent == {first.pid: 2, second.pid: 2}
    taker = threading.Thread(target=inboxes.put, args=("task-4",), daemon=True)
    taker.start()
    taker.join(1.5)
    assert taker.is_alive(), "a fifth task went to a worker that takes only two"
    third = start_worker(inboxes, done)  # as the sentinel forks one in a recycled one's place
    taker.join(5)
    assert not taker.is_alive()
    got = received(results, 5)
    assert [pid for pid, task in got if task == "task-4"] == [third.pid]
    for process in (first, second, third):
        inboxes.put(STOP)
        process.kill()


def test_a_put_waiting_for_room_gives_up_once_the_cluster_stops(pipe):
    results, done = pipe
    inboxes = Inboxes(limit=1, workers=1, recycle=1)
    process = start_worker(inboxes, done)
    inboxes.put("the-last-it-takes")
    pusher = threading.Thread(target=inboxes.put, args=("no-room",), daemon=True)
    pusher.start()
    pusher.join(0.5)
    assert pusher.is_alive()
    inboxes.stop_waiting()
    pusher.join(2)
    assert not pusher.is_alive(), "the pusher still waits: the sentinel would wait for it"
    assert [task for _, task in received(results, 2, timeout=1)] == ["the-last-it-takes"]
    process.kill()
