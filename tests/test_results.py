"""runs/results.py with real forked writer processes: a worker killed in the middle of writing a
result leaves the monitor reading the others', and the STOP comes after every result sent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import struct
import threading

from runs.results import STOP, Results

fork = multiprocessing.get_context("fork")


def write_results(pipe, names: list[str], then: str) -> None:
    for name in names:
        pipe.put({"name": name})
    if then == "die-in-a-message":  # a length header for 1,000 bytes, then 10 of them
        os.write(pipe._writer.fileno(), struct.pack("!i", 1000) + b"x" * 10)
        os.kill(os.getpid(), signal.SIGKILL)


def start_writer(results: Results, names: list[str], then: str = "end"):
    pipe = results.new()
    process = fork.Process(target=write_results, args=(pipe, names, then), daemon=True)
    process.start()
    results.add(pipe)
    return process


def read_until_stop(results: Results) -> tuple[list, threading.Thread]:
    got: list = []

    def monitor() -> None:
        for task in iter(results.get, STOP):
            got.append(task["name"])
        got.append(STOP)

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    return got, thread


def test_every_result_of_every_worker_comes_before_the_stop():
    results = Results()
    writers = [start_writer(results, [f"{n}-{k}" for k in range(50)]) for n in range(3)]
    got, monitor = read_until_stop(results)
    for writer in writers:
        writer.join(10)
    results.put(STOP)
    monitor.join(10)
    assert got[-1] == STOP
    assert sorted(got[:-1]) == sorted(f"{n}-{k}" for n in range(3) for k in range(50))
    assert results.empty()


def test_a_worker_killed_in_the_middle_of_a_result_leaves_the_monitor_reading_the_others():
    results = Results()
    got, monitor = read_until_stop(results)
    dead = start_writer(results, ["before-death"], then="die-in-a-message")
    dead.join(10)
    assert dead.exitcode == -signal.SIGKILL
    alive = start_writer(results, ["after-death-1", "after-death-2"])
    alive.join(10)
    results.put(STOP)
    monitor.join(10)
    assert not monitor.is_alive(), "the monitor waits for the rest of the dead worker's message"
    assert got == ["before-death", "after-death-1", "after-death-2", STOP]


def test_the_results_waiting_are_counted_until_the_monitor_reads_them():
    results = Results()
    writer = start_writer(results, ["a", "b"])
    writer.join(10)
    assert results.qsize() == 2
    assert results.get() == {"name": "a"}
    assert results.qsize() == 1
