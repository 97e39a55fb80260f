"""The dispatcher loop's own decisions (runs/dispatcher_loop.py), at fixed instants."""

from datetime import UTC, datetime, timedelta

import pytest

from endpoints.models import Endpoint
from runs import dispatcher_loop
from runs.dispatcher_loop import DispatcherLoop
from runs.models import Log

NOW = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


@pytest.fixture
def loop(db):
    handed: list[Log] = []
    made = DispatcherLoop(
        clock=lambda: NOW, enqueue=handed.extend, name="loop-test:1", cluster_id="c-loop"
    )
    made.handed = handed
    return made


def test_a_run_left_waiting_is_looked_at_again_shortly_not_at_once(loop, make_endpoint):
    """A queue_one run waiting behind a running one: the loop must not spin on it (every pass
    would find it due and leave it waiting again), but look again within DEFERRED_POLL."""
    endpoint = make_endpoint(name="queued-behind", overlap_policy="queue_one")
    Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=NOW + timedelta(hours=1))
    Log.objects.create(
        endpoint=endpoint, state=Log.State.RUNNING, due_at=NOW - timedelta(seconds=5)
    )
    waiting = Log.objects.create(
        endpoint=endpoint, state=Log.State.PENDING, due_at=NOW - timedelta(seconds=5)
    )

    delay = loop.tick()

    assert loop.handed == []
    assert Log.objects.get(pk=waiting.pk).state == Log.State.PENDING
    assert delay == pytest.approx(dispatcher_loop.DEFERRED_POLL)


def test_a_pending_run_that_can_start_is_handed_over_at_once(loop, make_endpoint):
    endpoint = make_endpoint(name="free-to-go")
    Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=NOW + timedelta(hours=1))
    ready = Log.objects.create(
        endpoint=endpoint, state=Log.State.PENDING, due_at=NOW - timedelta(seconds=1)
    )

    loop.tick()

    assert [log.pk for log in loop.handed] == [ready.pk]
