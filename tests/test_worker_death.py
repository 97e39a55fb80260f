"""A worker process of a live cluster killed (-9, the OOM killer): the sentinel forks another, the
cluster goes on running every slot, and the runs the dead worker held come back at once (failed
`stuck`, retried per their policy), not after their lease. Real `manage.py qcluster` processes
against a real loopback target."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from runs import verbs
from runs.dispatcher_loop import DISPATCH_AHEAD
from runs.models import Heartbeat, Log
from tests.runs_support import wait_for
from tests.test_cluster_isolation import every_second, stop
from tests.test_cluster_processes import alive, children, kill_group, start_cluster

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc"),
    pytest.mark.django_db(transaction=True),
]


def workers_of(cluster) -> set[int]:
    return {pid for pid in children(cluster.pid) if alive(pid)}


def kill_each_worker(cluster, rounds: int) -> None:
    """Every worker killed in turn, `rounds` times: idle ones too, which wait for their next task
    (with one queue shared by the workers, one of them holds its read lock meanwhile)."""
    for _ in range(rounds):
        for pid in sorted(workers_of(cluster)):
            os.kill(pid, signal.SIGKILL)
            assert wait_for(lambda: len(workers_of(cluster)) == 2, timeout=10), "not replaced"
            time.sleep(0.7)


def test_workers_killed_while_idle_are_replaced_and_every_slot_still_runs(target):
    """(With django-q2's one queue for all workers, the cluster ran nothing more after the first
    kill of the worker holding its read lock, and its stop hung.) tests/test_redis_broker.py:
    the same with Redis."""
    killed_workers_are_replaced_and_every_slot_still_runs(target)


def killed_workers_are_replaced_and_every_slot_still_runs(target) -> None:
    for n in range(3):
        every_second(f"beside-kills-{n}", target.url("/ok"))
    cluster = start_cluster(WORKERS="2")
    try:
        assert wait_for(Heartbeat.objects.exists, timeout=30), "the cluster did not start"
        assert wait_for(lambda: Log.objects.filter(state="success").exists(), timeout=15)
        kill_each_worker(cluster, rounds=3)
        # The slots looked at are handed over (claimed ahead, DISPATCH_AHEAD before each) only
        # after the last kill: a run claimed by a worker killed afterwards is failed `stuck`
        # and retried, as it should be, but that is the other test's subject.
        after = (timezone.now() + DISPATCH_AHEAD + timedelta(seconds=1)).replace(microsecond=0)
        time.sleep(7)
        output = stop(cluster)
    finally:
        kill_group(cluster)
    assert cluster.returncode == 0, output
    assert output.count("after death") >= 6, output
    slots = Log.objects.filter(
        scheduled_for__gte=after, scheduled_for__lte=after + timedelta(seconds=4)
    )
    assert slots.count() == 3 * 5, list(slots.values("endpoint__name", "scheduled_for", "state"))
    assert set(slots.values_list("state", flat=True)) == {"success"}, list(
        slots.exclude(state="success").values("state", "error_class", "error_message")
    )


def test_the_runs_a_killed_worker_held_are_failed_stuck_at_once_and_retried(target):
    slow = every_second(
        "held-by-the-dead",
        target.url("/slow/30"),
        schedule_type="none",
        timeout_seconds=60,
        max_attempts=2,
    )
    cluster = start_cluster(WORKERS="1")
    try:
        assert wait_for(Heartbeat.objects.exists, timeout=30), "the cluster did not start"
        (worker,) = workers_of(cluster)
        log = verbs.trigger(slow, by="test")
        assert wait_for(
            lambda: Log.objects.filter(pk=log.pk, state="running").exists(), timeout=15
        ), "the worker did not start the call"
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        assert wait_for(
            lambda: Log.objects.filter(pk=log.pk, state="failed").exists(), timeout=15
        ), Log.objects.filter(pk=log.pk).values("state", "lease_expires_at")
        took = time.monotonic() - killed_at
        retried = wait_for(
            lambda: Log.objects.filter(endpoint=slow, state="running").exclude(pk=log.pk).exists(),
            timeout=15,
        )
        output = stop(cluster)
    finally:
        kill_group(cluster)
    log.refresh_from_db()
    assert (log.error_class, took < 5) == ("stuck", True), (log.error_message, took)
    assert f"pid {worker}" in log.error_message
    assert retried, "the retry did not start"
    assert cluster.returncode == 0, output


def test_a_worker_killed_inside_its_timer_lock_is_replaced_and_the_cluster_goes_on(
    target, tmp_path
):
    """django-q2's worker holds its timer lock while it hands in a result; killed there (a few
    milliseconds after each task), it left the sentinel's guard loop blocked on that lock for
    good: no worker replaced, no run recovered (runs/worker_timer.py)."""
    from django_q.tasks import async_task

    every_second("beside-a-lock-held-by-the-dead", target.url("/ok"))
    marker = tmp_path / "inside"
    cluster = start_cluster(WORKERS="1")
    try:
        assert wait_for(Heartbeat.objects.exists, timeout=30), "the cluster did not start"
        (worker,) = workers_of(cluster)
        async_task("tests.worker_tasks.hold_the_timer_lock", str(marker), 60)
        assert wait_for(marker.exists, timeout=15), "the worker did not run the task"
        os.kill(worker, signal.SIGKILL)
        replaced = wait_for(lambda: workers_of(cluster) - {worker}, timeout=10)
        after = (timezone.now() + timedelta(seconds=1)).replace(microsecond=0)
        time.sleep(4)
        output = stop(cluster)
    finally:
        kill_group(cluster)
    assert replaced, "the dead worker was not replaced"
    assert cluster.returncode == 0, output
    slots = Log.objects.filter(
        scheduled_for__gte=after, scheduled_for__lte=after + timedelta(seconds=2)
    )
    assert list(slots.values_list("state", flat=True)) == ["success"] * 3, output
