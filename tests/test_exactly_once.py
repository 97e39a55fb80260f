"""Invariant 1: however many dispatchers race, each slot gets exactly one Log."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from endpoints.models import Endpoint
from runs import dispatcher
from runs.models import Log

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
ENDPOINTS = 200
STEPS = 10
DISPATCHERS = 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", ["allow", "skip"])
def test_racing_dispatchers_create_each_slot_exactly_once(overlap):
    Endpoint.objects.bulk_create(
        Endpoint(
            name=f"race-{i:03d}",
            url="http://127.0.0.1:9/",
            cron_expression="* * * * * *",
            timezone="UTC",
            overlap_policy=overlap,
            next_run_at=T0,
        )
        for i in range(ENDPOINTS)
    )
    errors: list[BaseException] = []
    queued = Counter()
    start = threading.Barrier(DISPATCHERS)

    def run_dispatcher(offset_ms: int) -> None:
        try:
            start.wait()
            for step in range(STEPS):
                now = T0 + timedelta(seconds=step, milliseconds=offset_ms)
                for log in dispatcher.dispatch_due(now, limit=60).to_run:
                    queued[(log.endpoint_id, log.scheduled_for)] += 1
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run_dispatcher, args=(offset * 7,)) for offset in range(DISPATCHERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []

    slots = Counter(Log.objects.filter(attempt=1).values_list("endpoint_id", "scheduled_for"))
    assert max(slots.values()) == 1, "a slot was dispatched twice"
    # Every slot from T0 up to the last instant any dispatcher looked at is accounted for.
    last = T0 + timedelta(seconds=STEPS - 1)
    for endpoint in Endpoint.objects.all():
        times = sorted(when for (pk, when) in slots if pk == endpoint.pk)
        assert times[0] == T0
        assert times == [T0 + timedelta(seconds=i) for i in range(len(times))]
        assert times[-1] >= last - timedelta(seconds=1)
    assert max(queued.values()) == 1, "a slot was handed to workers twice"
