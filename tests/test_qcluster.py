"""End to end: `manage.py qcluster` fires an every-second schedule against a loopback target."""

import signal
import statistics
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django_q.models import OrmQ

from runs.models import Heartbeat, Log
from tests.processes import start_manage


@pytest.mark.django_db(transaction=True)
def test_qcluster_fires_each_second_once_and_stops_cleanly(make_endpoint, target):
    endpoint = make_endpoint(
        name="every-second",
        url=target.url("/ok"),
        cron_expression="* * * * * *",
        overlap_policy="allow",
    )
    cluster = start_manage("qcluster", WORKERS="2")
    try:
        deadline = time.monotonic() + 60
        while len(target.received) < 6 and time.monotonic() < deadline:
            assert cluster.poll() is None, cluster.stdout.read()
            time.sleep(0.1)
        assert len(target.received) >= 6, "the target was not called every second"
        assert Heartbeat.objects.count() == 1
    finally:
        cluster.send_signal(signal.SIGTERM)
        output, _ = cluster.communicate(timeout=60)
    assert cluster.returncode == 0, output

    logs = list(Log.objects.filter(endpoint=endpoint, state="success").order_by("scheduled_for"))
    assert len(logs) == len(target.received)
    slots = [log.scheduled_for for log in logs]
    # One call per second, consecutive, none twice.
    assert len(set(slots)) == len(slots)
    assert all(b - a == timedelta(seconds=1) for a, b in zip(slots, slots[1:], strict=False))
    for log in logs:
        assert log.started_at >= log.scheduled_for
    assert statistics.median(log.lag_ms for log in logs) < 1000
    # Each request arrived in the second of its slot or just after, never before it.
    arrivals = sorted(received.at for received in target.received)
    for slot, arrived in zip(slots, arrivals, strict=True):
        assert arrived >= slot.timestamp()
    # Stopped cleanly: nothing left running, the heartbeat removed.
    assert not Log.objects.filter(state="running").exists()
    assert Heartbeat.objects.count() == 0
    # The monitor (a thread of the sentinel) read every result up to its STOP, so the ORM broker
    # holds no task that would be delivered again.
    assert "stopped monitoring results" in output
    if "orm" in settings.Q_CLUSTER:
        assert not OrmQ.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_a_running_call_finish_and_queues_nothing_new(make_endpoint, target):
    endpoint = make_endpoint(
        name="slow-every-second",
        url=target.url("/slow/2"),
        cron_expression="* * * * * *",
        timeout_seconds=10,
    )
    cluster = start_manage("qcluster", WORKERS="1")
    try:
        deadline = time.monotonic() + 60
        while not target.received and time.monotonic() < deadline:
            assert cluster.poll() is None, cluster.stdout.read()
            time.sleep(0.05)
        assert target.received, "the slow call never started"
    finally:
        cluster.send_signal(signal.SIGTERM)
        stopped_at = time.time()
        output, _ = cluster.communicate(timeout=60)
    assert cluster.returncode == 0, output

    in_flight = Log.objects.get(endpoint=endpoint, started_at__isnull=False)
    # The call that was running when SIGTERM came finished normally, not cut off.
    assert in_flight.state == "success", (in_flight.state, in_flight.error_message)
    assert in_flight.finished_at.timestamp() >= target.received[0].at + 1.9
    # Nothing was dispatched after the signal.
    assert not Log.objects.filter(created_at__gt=_aware(stopped_at + 0.5)).exists()
    assert not Log.objects.filter(state="running").exists()


def _aware(timestamp: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)
