"""The dispatcher loop's own decisions (runs/dispatcher_loop.py), at fixed instants."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from endpoints.models import Endpoint
from runs import dispatcher_loop, wakeup
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
    assert loop._waits_on_runs  # so a run this cluster records wakes it sooner (below)


def test_a_pending_run_that_can_start_is_handed_over_at_once(loop, make_endpoint):
    endpoint = make_endpoint(name="free-to-go")
    Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=NOW + timedelta(hours=1))
    ready = Log.objects.create(
        endpoint=endpoint, state=Log.State.PENDING, due_at=NOW - timedelta(seconds=1)
    )

    loop.tick()

    assert [log.pk for log in loop.handed] == [ready.pk]


def sleeping(loop: DispatcherLoop, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=loop._sleep, args=(seconds,), daemon=True)
    thread.start()
    return thread


def test_a_loop_whose_runs_wait_is_woken_by_a_recorded_run(monkeypatch):
    monkeypatch.setattr(wakeup, "_bell", wakeup.PipeBell())
    loop = DispatcherLoop(clock=lambda: NOW, name="loop-test:2", cluster_id="c-bell")
    loop._waits_on_runs = True
    asleep = sleeping(loop, 30)

    wakeup.ring()  # what a worker's recorder does (runs/engine.py)

    asleep.join(5)
    assert not asleep.is_alive()


def test_a_loop_waiting_on_no_run_lets_the_bell_pass(monkeypatch):
    monkeypatch.setattr(wakeup, "_bell", wakeup.PipeBell())
    loop = DispatcherLoop(clock=lambda: NOW, name="loop-test:3", cluster_id="c-bell")
    asleep = sleeping(loop, 1.0)

    wakeup.ring()
    asleep.join(0.3)

    assert asleep.is_alive()  # it sleeps its second out: a ring per recorded batch costs nothing
    loop.stop()
    asleep.join(5)
    assert not asleep.is_alive()  # but stop() wakes it
