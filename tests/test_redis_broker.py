"""Scale-out: several `qcluster` processes sharing one database and one Redis broker."""

import os
import signal
import time
from collections import Counter

import pytest
from django.conf import settings

from runs.models import Heartbeat, Log
from tests.processes import start_manage

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL"),
]


def test_the_broker_is_redis_when_redis_url_is_set():
    from django_q.brokers import get_broker
    from django_q.brokers.redis_broker import Redis

    assert settings.Q_CLUSTER["redis"] == os.environ["REDIS_URL"]
    broker = get_broker()
    assert isinstance(broker, Redis)
    assert broker.ping()


@pytest.mark.django_db(transaction=True)
def test_two_clusters_share_the_work_and_run_each_slot_once(make_endpoint, target):
    for i in range(5):
        make_endpoint(
            name=f"shared-{i}",
            url=target.url(f"/ok?endpoint={i}"),
            cron_expression="* * * * * *",
            overlap_policy="allow",
        )
    clusters = [start_manage("qcluster", WORKERS="2") for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while len(target.received) < 40 and time.monotonic() < deadline:
            for cluster in clusters:
                assert cluster.poll() is None, cluster.stdout.read()
            time.sleep(0.2)
        assert Heartbeat.objects.count() == 2
    finally:
        for cluster in clusters:
            cluster.send_signal(signal.SIGTERM)
        outputs = [cluster.communicate(timeout=60)[0] for cluster in clusters]
    assert [cluster.returncode for cluster in clusters] == [0, 0], outputs

    slots = Counter(Log.objects.filter(attempt=1).values_list("endpoint_id", "scheduled_for"))
    assert len(target.received) >= 40
    assert max(slots.values()) == 1, "a slot was dispatched twice"
    executed = Log.objects.filter(state="success").count()
    assert executed == len(target.received), "a run was executed twice (or lost its record)"
    assert not Log.objects.filter(state="running").exists()


@pytest.mark.django_db(transaction=True)
def test_workers_forked_again_and_again_beside_the_redis_pusher_run_every_slot(target):
    """The pusher thread waits on Redis outside the fork guard (a fork must not wait for its
    BLPOP): the workers forked meanwhile still run every slot."""
    from tests.test_cluster_isolation import workers_forked_again_and_again_run_every_slot

    workers_forked_again_and_again_run_every_slot(target)


@pytest.mark.django_db(transaction=True)
def test_workers_killed_while_idle_beside_the_redis_pusher_are_replaced_and_run_every_slot(target):
    """The pusher goes on taking tasks from Redis while a worker is killed: none is put where
    no worker reads."""
    from tests.test_worker_death import killed_workers_are_replaced_and_every_slot_still_runs

    killed_workers_are_replaced_and_every_slot_still_runs(target)
