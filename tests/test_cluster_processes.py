"""`manage.py qcluster`'s processes: how many there are, where the dispatcher runs, what they
import, and that none is left dispatching when the cluster is gone."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from endpoints.models import Endpoint
from runs.models import Heartbeat, Log
from tests.processes import ROOT, manage_env
from tests.runs_support import wait_for


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def start_cluster(**env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=manage_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_group(cluster: subprocess.Popen) -> None:
    """Whatever is left of the cluster's process group (orphaned django-q2 processes)."""
    try:
        os.killpg(cluster.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@pytest.mark.django_db(transaction=True)
def test_the_command_is_the_sentinel_and_forks_only_its_workers():
    cluster = start_cluster(WORKERS="2")
    try:
        assert wait_for(Heartbeat.objects.exists), "the dispatcher did not start"
        forked = children(cluster.pid)
        # The two workers; no extra parent, and the dispatcher, the pusher and the monitor are
        # threads of the sentinel.
        assert len(forked) == 2, forked
        beat = Heartbeat.objects.get()
        assert beat.pid == cluster.pid and beat.cluster_id
    finally:
        cluster.send_signal(signal.SIGTERM)
        output, _ = cluster.communicate(timeout=60)
        kill_group(cluster)
    assert cluster.returncode == 0, output
    assert f"pushing tasks at {cluster.pid}" in output, output  # django-q2's pusher, as a thread
    assert not any(alive(pid) for pid in forked)
    assert not Heartbeat.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_no_process_outlives_its_killed_sentinel(target):
    # Calls in flight at the kill: the orphaned worker records them (and rings the bell of a
    # dispatcher that died asleep on it, runs/wakeup.py) before it ends.
    Endpoint.objects.create(
        name="in-flight-at-the-kill",
        url=target.url("/slow/1"),
        schedule_type=Endpoint.ScheduleType.CRON,
        cron_expression="* * * * * *",
        overlap_policy=Endpoint.OverlapPolicy.ALLOW,
        next_run_at=timezone.now(),
    )
    cluster = start_cluster(WORKERS="1")
    try:
        assert wait_for(lambda: Log.objects.filter(state="running").exists(), timeout=30)
        forked = children(cluster.pid)
        os.kill(cluster.pid, signal.SIGKILL)
        cluster.wait(timeout=10)
        # No orphan keeps dispatching, or waits for tasks for ever.
        assert wait_for(lambda: not any(alive(pid) for pid in forked), timeout=15)
        assert Log.objects.filter(state="success").exists()  # recorded by the orphan
    finally:
        kill_group(cluster)
        cluster.communicate(timeout=10)


def test_system_checks_run_in_a_child_and_still_stop_the_command():
    script = """
import sys, django
django.setup()
from django.core import checks
from runs.management.commands.qcluster import Command
Command().check()
print("urlconf imported:", "api.urls" in sys.modules or "dashboard.urls" in sys.modules)
checks.register(lambda app_configs, **kwargs: [checks.Error("boom", id="test.E001")])
try:
    Command().check()
    print("no error")
except Exception as exc:
    print("raised", type(exc).__name__)
"""
    env = manage_env(DJANGO_SETTINGS_MODULE="scheduler_site.settings")
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip

    assert "urlconf imported: False" in out.stdout, out.stdout + out.stderr
    assert "raised CommandError" in out.stdout, out.stdout + out.stderr
    assert "test.E001" in out.stderr  # the child reported what failed
