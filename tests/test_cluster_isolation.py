"""Real `manage.py qcluster` processes against real loopback targets: a dead cluster's runs come
back within seconds, a stop signal sent to every process at once is a clean stop, and a healthy
endpoint runs every slot beside slow and hostile neighbours."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from endpoints.models import Endpoint
from runs.models import Heartbeat, Log
from tests.hostile import HostileServer, endless, silent, trickle
from tests.processes import ROOT, manage_env
from tests.runs_support import wait_for
from tests.target import free_port
from tests.test_cluster_processes import alive, children, kill_group, start_cluster

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc"),
    pytest.mark.django_db(transaction=True),
]


def every_second(name: str, url: str, **fields) -> Endpoint:
    values = {
        "name": name,
        "kind": Endpoint.Kind.HTTP,
        "url": url,
        "method": "POST",
        "headers": {"Content-Type": "application/json", "Authorization": "Bearer t0ken"},
        "body": '{"report": "daily", "at": "{{ scheduled_at }}"}',
        "schedule_type": Endpoint.ScheduleType.CRON,
        "cron_expression": "* * * * * *",
        "timezone": "UTC",
        "retry_backoff_seconds": 0,
        "max_attempts": 1,
    }
    values.update(fields)
    endpoint = Endpoint(**values)
    endpoint.full_clean()
    endpoint.save()
    return endpoint


def stop(cluster, sig=signal.SIGTERM, *, group: bool = False, timeout: float = 60) -> str:
    if group:
        os.killpg(cluster.pid, sig)  # every process at once, as honcho and systemd do
    else:
        cluster.send_signal(sig)
    try:
        output, _ = cluster.communicate(timeout=timeout)
    finally:
        kill_group(cluster)
    return output


def test_a_killed_clusters_running_and_queued_runs_are_recovered_by_another(target):
    slow = every_second(
        "slow-held", target.url("/slow/30"), cron_expression="*/30 * * * * *", timeout_seconds=60
    )
    doomed = start_cluster(WORKERS="1")
    survivor = None
    try:
        assert wait_for(Heartbeat.objects.exists, timeout=30), "the first cluster did not start"
        held_by = Heartbeat.objects.get().cluster_id
        Endpoint.objects.filter(pk=slow.pk).update(next_run_at=timezone.now())
        assert wait_for(
            lambda: Log.objects.filter(state="running", cluster=held_by).exists(), timeout=15
        ), "the first cluster did not start calling"
        # And runs it holds that no worker has claimed yet (a lease far away: only the
        # cluster's heartbeat can bring them back).
        quick = every_second("quick-held", target.url("/ok"), schedule_type="none")
        far = timezone.now() + timedelta(hours=1)
        queued = [
            Log.objects.create(
                endpoint=quick, state="queued", cluster=held_by, lease_expires_at=far
            )
            for _ in range(3)
        ]
        running = list(Log.objects.filter(state="running", cluster=held_by))

        os.killpg(doomed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        doomed.communicate(timeout=10)
        survivor = start_cluster(WORKERS="1")

        def recovered() -> bool:
            fates = Log.objects.filter(pk__in=[log.pk for log in running + queued])
            return all(log.state in ("failed", "success") for log in fates)

        assert wait_for(recovered, timeout=25), list(Log.objects.values("id", "state", "cluster"))
        took = time.monotonic() - killed_at
    finally:
        kill_group(doomed)
        if survivor is not None:
            stop(survivor)
    assert took <= 20, f"recovered {took:.1f} s after the kill"
    for log in Log.objects.filter(pk__in=[log.pk for log in running]):
        assert (log.state, log.error_class) == ("failed", "stuck")
    for log in Log.objects.filter(pk__in=[log.pk for log in queued]):
        assert log.state == "success"  # handed out again and run by the survivor


def test_a_stop_signal_to_every_process_at_once_is_a_clean_stop(target):
    every_second("inflight", target.url("/slow/2"), timeout_seconds=10, overlap_policy="allow")
    cluster = start_cluster(WORKERS="2")
    try:
        assert wait_for(lambda: Log.objects.filter(state="running").count() >= 2, timeout=30), (
            "no call in flight"
        )
        forked = children(cluster.pid)
        started = time.monotonic()
        output = stop(cluster, group=True)
        took = time.monotonic() - started
    finally:
        kill_group(cluster)

    assert cluster.returncode == 0, output
    assert "reincarnated" not in output, output
    assert not any(alive(pid) for pid in forked)
    assert took <= 10 + 5, f"stopped in {took:.1f} s"
    assert not Log.objects.filter(state__in=("queued", "running")).exists()
    # The calls in flight finished and were recorded, not cut off.
    assert Log.objects.filter(state="success").count() >= 2
    assert not Log.objects.filter(error_class="stuck").exists()
    assert not Heartbeat.objects.exists()


def test_ctrl_c_to_the_sentinel_alone_stops_it_cleanly_too(target):
    every_second("ctrl-c", target.url("/slow/1"), timeout_seconds=5, overlap_policy="allow")
    cluster = start_cluster(WORKERS="1")
    try:
        assert wait_for(lambda: Log.objects.filter(state="running").exists(), timeout=30)
        output = stop(cluster, signal.SIGINT)
    finally:
        kill_group(cluster)
    assert cluster.returncode == 0, output
    assert "reincarnated" not in output, output
    assert not Log.objects.filter(state__in=("queued", "running")).exists()


def test_every_slot_of_a_healthy_endpoint_runs_beside_slow_and_hostile_targets(target):
    servers = [HostileServer(behaviour) for behaviour in (trickle, endless, silent)]
    try:
        # queue_one: a run recorded a little late on a loaded machine does not cost its
        # successor's slot, but runs held behind slow neighbours for seconds would.
        healthy = every_second("healthy", target.url("/ok"), overlap_policy="queue_one")
        for number in range(4):
            every_second(f"slow-{number}", target.url(f"/slow/6?n={number}"), timeout_seconds=10)
        for server, name in zip(servers, ("trickle", "endless", "silent"), strict=True):
            every_second(name, server.url("/"), timeout_seconds=2)
        cluster = start_cluster(WORKERS="2")
        try:
            assert wait_for(lambda: Log.objects.filter(endpoint=healthy).exists(), timeout=30)
            # Slots that passed while the cluster was starting were missed: start after them.
            on_time = Log.objects.filter(endpoint=healthy).exclude(state="missed")
            first = on_time.order_by("scheduled_for").first()
            window_start = first.scheduled_for + timedelta(seconds=1)
            time.sleep(8)  # the window under test: every slow and hostile call is in flight
            window_end = window_start + timedelta(seconds=6)
            output = stop(cluster)
        finally:
            kill_group(cluster)
    finally:
        for server in servers:
            server.close()
    assert cluster.returncode == 0, output

    window = Log.objects.filter(
        endpoint=healthy, scheduled_for__gte=window_start, scheduled_for__lt=window_end
    )
    assert sorted(window.values_list("state", flat=True)) == ["success"] * 6, list(
        window.values("scheduled_for", "state", "reason")
    )
    hostile = Log.objects.filter(endpoint__name__in=("trickle", "endless", "silent"))
    finished = hostile.exclude(state__in=("skipped", "missed"))
    assert finished.exists()
    for log in finished:
        assert (log.state, log.error_class) == ("failed", "timeout"), (log.endpoint.name, log)
        assert log.duration_ms <= 2000 + 1000, (log.endpoint.name, log.duration_ms)


def test_ctrl_c_under_make_run_lets_a_call_longer_than_honchos_5_s_finish(target, tmp_path):
    every_second(
        "longer", target.url("/slow/7"), timeout_seconds=10, cron_expression="*/30 * * * * *"
    )
    Endpoint.objects.update(next_run_at=timezone.now())
    procfile = tmp_path / "Procfile"
    # As the Procfile says it (exec: the shell honcho starts becomes the command); the web
    # server stops at once, which must not hurry the worker.
    web = f"{sys.executable} -m gunicorn scheduler_site.wsgi --bind 127.0.0.1:{free_port()}"
    procfile.write_text(f"web: exec {web}\nworker: exec {sys.executable} manage.py qcluster\n")
    honcho = subprocess.Popen(
        [sys.executable, "-m", "scheduler_site.procfile", "start", "-f", str(procfile),
         "-d", str(ROOT)],
        cwd=ROOT, env=manage_env(WORKERS="1"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: Log.objects.filter(state="running").exists(), timeout=30)
        honcho.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        output, _ = honcho.communicate(timeout=30)
    finally:
        kill_group(honcho)
    assert "web.1 stopped (rc=0)" in output, output
    assert "worker.1 stopped (rc=0)" in output, output
    log = Log.objects.get(endpoint__name="longer", state__in=("success", "failed"))
    assert log.state == "success", (log.error_class, log.error_message, output)
    assert not Log.objects.filter(state__in=("queued", "running")).exists()


def test_a_long_pass_does_not_stop_the_heartbeat(transactional_db, monkeypatch):
    """The heartbeat has a thread of its own: a dispatcher pass that takes longer than
    CLUSTER_STALE (an instant of 10,000 endpoints, a slow database) leaves the cluster alive."""
    import threading

    from runs import dispatcher_loop
    from runs.dispatcher_loop import DispatcherLoop

    monkeypatch.setattr(dispatcher_loop, "HEARTBEAT_EVERY", timedelta(seconds=0.1))
    loop = DispatcherLoop(enqueue=lambda logs: None, name="long-pass:1", cluster_id="c-long")
    in_pass = threading.Event()

    def long_pass() -> float:
        in_pass.set()
        loop.stopping.wait(5)
        return 0.0

    monkeypatch.setattr(loop, "tick", long_pass)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        assert in_pass.wait(5)
        assert wait_for(lambda: Heartbeat.objects.filter(name="long-pass:1").exists(), 5)
        first = Heartbeat.objects.get(name="long-pass:1").last_seen_at
        assert wait_for(lambda: Heartbeat.objects.get(name="long-pass:1").last_seen_at > first, 5)
    finally:
        loop.stop()
        thread.join(10)


def test_workers_forked_again_and_again_while_the_sentinels_threads_work_run_every_slot(target):
    """The dispatcher, the pusher and the monitor are threads of the sentinel, which forks a new
    worker whenever one is recycled: no new worker may inherit a lock one of those threads held
    (SQLite's mutex: its first query would hang), and every slot still runs. (Without the fork
    guard, one run in three hung here.) tests/test_redis_broker.py: the same with Redis."""
    workers_forked_again_and_again_run_every_slot(target)


def workers_forked_again_and_again_run_every_slot(target) -> None:
    for n in range(3):
        every_second(f"beside-forks-{n}", target.url("/ok"))
    cluster = start_cluster(WORKERS="2", WORKER_RECYCLE="2")  # a new worker every 2 batches
    try:
        assert wait_for(Heartbeat.objects.exists, timeout=30), "the cluster did not start"
        started = timezone.now()
        time.sleep(8)
        output = stop(cluster)
    finally:
        kill_group(cluster)
    assert cluster.returncode == 0, output
    assert output.count("recycled worker") >= 4, output
    slots = Log.objects.filter(scheduled_for__gte=started + timedelta(seconds=1))
    slots = slots.filter(scheduled_for__lte=started + timedelta(seconds=7))
    assert slots.count() >= 3 * 6, slots.count()
    assert set(slots.values_list("state", flat=True)) == {"success"}, list(
        slots.exclude(state="success").values("state", "error_class", "error_message")
    )
