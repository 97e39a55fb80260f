"""Flow control across two real `manage.py qcluster` processes and a real loopback target that
records when each request arrived and was answered: a key's parallelism and rate hold across
both clusters, every run of the key runs, none is missed, and keyless jobs beside them are on
time."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from endpoints.models import Endpoint
from runs.models import Heartbeat, Log
from tests.runs_support import wait_for
from tests.test_cluster_isolation import every_second
from tests.test_cluster_processes import kill_group, start_cluster

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc"),
    pytest.mark.django_db(transaction=True),
]


def job(name: str, url: str, **fields) -> Endpoint:
    # Once a year: the test sets its one instant.
    return every_second(name, url, cron_expression="0 0 1 1 *", timeout_seconds=10, **fields)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    held = most = 0
    for _, change in events:  # an answer at the instant of an arrival ends first
        held += change
        most = max(most, held)
    return most


def busiest_window(instants: list[float], seconds: float) -> int:
    """The most instants in any window of this length (sliding, not whole seconds only)."""
    instants = sorted(instants)
    return max(
        sum(1 for later in instants[i:] if later < first + seconds)
        for i, first in enumerate(instants)
    )


def test_a_keys_parallelism_and_rate_hold_across_two_clusters_and_keyless_jobs_are_on_time(
    target,
):
    for n in range(50):
        job(f"narrow-{n}", target.url(f"/slow/0.2?narrow={n}"), flow_key="narrow",
            flow_parallelism=2)  # fmt: skip
    for n in range(25):
        job(f"metered-{n}", target.url(f"/ok?metered={n}"), flow_key="metered", flow_rate="10/s")
    for n in range(10):
        job(f"free-{n}", target.url(f"/ok?free={n}"))
    clusters = [start_cluster(WORKERS="1"), start_cluster(WORKERS="1")]
    try:
        assert wait_for(lambda: Heartbeat.objects.count() == 2, timeout=30), "no two clusters"
        instant = (timezone.now() + timedelta(seconds=2)).replace(microsecond=0)
        Endpoint.objects.update(next_run_at=instant)
        assert wait_for(
            lambda: Log.objects.filter(state__in=Log.FINAL_STATES).count() == 85, timeout=60
        ), list(Log.objects.values_list("endpoint__name", "state", "reason"))
    finally:
        for cluster in clusters:
            cluster.send_signal(signal.SIGTERM)
        for cluster in clusters:
            cluster.communicate(timeout=60)
            kill_group(cluster)

    logs = Log.objects.select_related("endpoint")
    assert sorted({log.state for log in logs}) == ["success"], [
        (log.endpoint.name, log.state, log.reason) for log in logs if log.state != "success"
    ]
    narrow = [r for r in target.received if "narrow=" in r.path]
    metered = [r for r in target.received if "metered=" in r.path]
    free = [r for r in target.received if "free=" in r.path]
    assert (len(narrow), len(metered), len(free)) == (50, 25, 10)

    assert most_at_once([(r.at, r.done) for r in narrow]) == 2
    held_by = {log.cluster for log in logs if log.endpoint.flow_key == "narrow"}
    # Which cluster's workers take a released run is the broker's choice: usually both, but one
    # cluster taking them all is allowed (CI saw it once). The limit is checked at the target
    # above, whoever held the runs; both clusters were up and dispatching throughout.
    assert held_by, "the key's runs were held by a cluster"
    waited = [log for log in logs if log.endpoint.flow_key == "narrow" and log.held_since]
    assert len(waited) >= 48
    assert all(log.reason.startswith("Waited ") for log in waited)
    assert all(log.reason.endswith(" s for flow key narrow.") for log in waited)

    # The rate holds for the starts (the promise: no second holds more than 10)...
    starts = [log.started_at.timestamp() for log in logs if log.endpoint.flow_key == "metered"]
    assert busiest_window(starts, 1.0) == 10
    # ...and at the target: no whole second after the instant had more than 10 arrivals, nor
    # any window of a second less the few milliseconds a request takes to arrive.
    seconds = Counter(int(r.at - instant.timestamp()) for r in metered)
    assert max(seconds.values()) == 10, seconds
    assert busiest_window([r.at for r in metered], 0.95) == 10
    # 25 runs at 10 a second: the last batch starts two seconds after the first (checked on the
    # starts); their arrivals, a few ms after each start, within the same 50 ms slack as above.
    assert max(starts) - min(starts) >= 2.0
    assert max(r.at for r in metered) - min(r.at for r in metered) >= 1.95

    # The keyless jobs did not wait behind either key: all were answered before the narrow
    # key's third run arrived, with nothing recorded against a key.
    third_narrow = sorted(r.at for r in narrow)[2]
    assert max(r.at for r in free) < third_narrow
    for log in logs:
        if not log.endpoint.flow_key:
            assert (log.flow_key, log.held_since, log.reason) == ("", None, "")
            # At its slot, not behind a key's rate (a second a batch); a loaded machine may
            # claim it a few ms after the slot rather than before (CI saw 61 ms).
            assert log.started_at - log.scheduled_for < timedelta(seconds=0.5)
