"""The execution engine of a worker process (runs/engine.py): a batch task returns once its runs
are claimed, calls go on one event loop, outcomes are recorded by a thread of their own — so no
run waits on another's target. Real loopback servers; the engine's threads use connections of
their own, hence transactional tests."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from endpoints import registry
from runs import engine, tasks, wakeup
from runs.models import Log
from tests.runs_support import queued, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fresh_engine():
    """The process's engine, new for the test and drained after it."""
    engine._engine = None
    yield engine.engine()
    current = engine.current()
    if current is not None:
        current.drain(timeout=15)
    engine._engine = None


def state_of(logs: list[Log]) -> dict[str, str]:
    fresh = Log.objects.filter(pk__in=[log.pk for log in logs]).select_related("endpoint")
    return {log.endpoint.name: log.state for log in fresh}


def test_a_batch_task_returns_while_its_calls_are_still_going(make_endpoint, target, fresh_engine):
    logs = queued(make_endpoint, {"slow": target.url("/slow/2"), "fast": target.url("/ok")})

    assert tasks.run_batch([log.pk for log in logs]) == {"claimed": 2}

    # The task is done; the slow call is not: the worker is free for the next task.
    assert state_of(logs)["slow"] == "running"
    assert fresh_engine.wait_idle(10)
    assert state_of(logs) == {"slow": "success", "fast": "success"}


def test_a_fast_run_is_recorded_while_a_slow_neighbour_is_still_calling(
    make_endpoint, target, fresh_engine
):
    slow = queued(make_endpoint, {f"slow-{i}": target.url(f"/slow/3?i={i}") for i in range(4)})
    tasks.run_batch([log.pk for log in slow])
    fast = queued(make_endpoint, {"fast": target.url("/ok")})

    tasks.run_batch([log.pk for log in fast])

    assert wait_for(lambda: state_of(fast) == {"fast": "success"}, timeout=2.5)
    assert set(state_of(slow).values()) == {"running"}
    assert fresh_engine.wait_idle(10)
    assert set(state_of(slow).values()) == {"success"}


def test_a_slow_handler_holds_no_http_run_and_ends_at_its_timeout(
    make_endpoint, target, fresh_engine
):
    @registry.handler("tests:engine-sleeps")
    def sleeps(payload, *, dry_run, log):
        time.sleep(payload["seconds"])
        return {"slept": payload["seconds"]}

    try:
        now = timezone.now()
        job = make_endpoint(
            name="sleepy",
            kind="handler",
            url="",
            handler="tests:engine-sleeps",
            payload={"seconds": 5},
            timeout_seconds=1,
            max_attempts=1,
        )
        job.next_run_at = now
        job.save(update_fields=["next_run_at"])
        both = queued(make_endpoint, {"http": target.url("/ok")})
        handler_run = Log.objects.get(endpoint=job)
        logs = [log for log in both if log.pk != handler_run.pk]
        started = time.monotonic()

        tasks.run_batch([log.pk for log in both])

        assert wait_for(lambda: state_of(logs) == {"http": "success"}, timeout=2)
        assert fresh_engine.wait_idle(5)
        elapsed = time.monotonic() - started
        handler_run.refresh_from_db()
        assert (handler_run.state, handler_run.error_class) == ("failed", "timeout")
        assert "did not return within 1 s" in handler_run.error_message
        assert elapsed < 1 + 1.5  # its own timeout, not the handler's 5 s
    finally:
        registry.unregister("tests:engine-sleeps")


def test_drain_finishes_and_records_the_calls_in_flight(make_endpoint, target, fresh_engine):
    logs = queued(make_endpoint, {f"inflight-{i}": target.url(f"/slow/1?i={i}") for i in range(5)})
    tasks.run_batch([log.pk for log in logs])

    fresh_engine.drain(timeout=10)

    assert set(state_of(logs).values()) == {"success"}
    assert len(target.received) == 5


def test_recording_rings_the_dispatchers_bell(make_endpoint, target, fresh_engine, monkeypatch):
    """The bell qcluster shares between the workers and the dispatcher (runs/wakeup.py)."""
    monkeypatch.setattr(wakeup, "_bell", wakeup.PipeBell())
    logs = queued(make_endpoint, {"rings": target.url("/slow/1")})
    tasks.run_batch([log.pk for log in logs])
    assert not wakeup.bell().is_set()  # claimed, not yet recorded

    assert fresh_engine.wait_idle(10)

    assert state_of(logs) == {"rings": "success"}
    assert wakeup.bell().is_set()


def test_runs_over_the_cap_wait_and_none_is_dropped(make_endpoint, target):
    capped = engine.Engine(max_in_flight=3)
    capped.start()
    try:
        logs = queued(make_endpoint, {f"capped-{i}": target.url(f"/ok?i={i}") for i in range(30)})
        from runs import cluster, executor

        claimed = executor.claim(
            [log.pk for log in logs], timezone.now(), cluster=cluster.current()
        )
        capped.submit(claimed)
        assert capped.wait_idle(15)
    finally:
        capped.drain(timeout=5)
    assert set(state_of(logs).values()) == {"success"}
    assert len(target.received) == 30


def test_a_batch_delivered_twice_is_performed_once(make_endpoint, target, fresh_engine):
    logs = queued(make_endpoint, {f"twice-{i}": target.url(f"/ok?i={i}") for i in range(4)})
    ids = [log.pk for log in logs]

    assert tasks.run_batch(ids) == {"claimed": 4}
    assert tasks.run_batch(ids) == {"claimed": 0}

    assert fresh_engine.wait_idle(10)
    assert len(target.received) == 4
    assert Log.objects.filter(pk__in=ids, state="success").count() == 4


def test_a_run_not_yet_due_stays_queued(make_endpoint, target, fresh_engine, monkeypatch):
    monkeypatch.setattr(tasks, "MAX_AHEAD_SECONDS", 0.1)
    logs = queued(make_endpoint, {"later": target.url("/ok")})
    Log.objects.filter(pk=logs[0].pk).update(due_at=timezone.now() + timedelta(seconds=30))

    assert tasks.run_batch([logs[0].pk]) == {"claimed": 0}

    assert state_of(logs) == {"later": "queued"}


def test_a_batch_handed_over_early_is_claimed_at_once_and_sent_at_its_slot(
    make_endpoint, target, fresh_engine
):
    logs = queued(make_endpoint, {"early": target.url("/ok")})
    slot = timezone.now() + timedelta(seconds=0.5)
    Log.objects.filter(pk=logs[0].pk).update(due_at=slot)

    assert tasks.run_batch([logs[0].pk]) == {"claimed": 1}

    assert state_of(logs) == {"early": "running"}  # claimed; the worker is free for others
    assert target.received == []
    assert wait_for(lambda: state_of(logs) == {"early": "success"}, timeout=5)
    log = Log.objects.get(pk=logs[0].pk)
    assert log.started_at >= slot
    assert target.received[0].at >= slot.timestamp()


def test_runs_held_for_their_slot_wait_as_prepared_requests_not_as_tasks(
    make_endpoint, target, fresh_engine
):
    logs = queued(make_endpoint, {name: target.url("/ok") for name in ("a", "b", "c")})
    slot = timezone.now() + timedelta(seconds=1)
    Log.objects.filter(pk__in=[log.pk for log in logs]).update(due_at=slot)

    def tasks_on_the_loop() -> int:
        async def count() -> int:
            return len(asyncio.all_tasks())

        return asyncio.run_coroutine_threadsafe(count(), fresh_engine.loop).result(5) - 1

    before = tasks_on_the_loop()
    assert tasks.run_batch([log.pk for log in logs]) == {"claimed": 3}

    # A task asleep per run is what made 5,000 runs of one instant cost 2 KB each more.
    assert tasks_on_the_loop() == before
    assert wait_for(lambda: set(state_of(logs).values()) == {"success"}, timeout=5)
    assert min(request.at for request in target.received) >= slot.timestamp()


def test_the_recorder_waits_for_calls_queued_under_the_cap_but_not_for_ever(
    make_endpoint, target, monkeypatch
):
    """While calls wait for a slot (an instant's thousands), the recorder leaves the process to
    the sends; but calls queued behind slow targets for longer than RECORD_DEFER do not hold
    a finished neighbour's record until they are sent."""
    monkeypatch.setattr(engine, "RECORD_DEFER", 0.5)
    capped = engine.Engine(max_in_flight=2)
    capped.start()
    try:
        from runs import executor

        slow = queued(make_endpoint, {f"slow-{i}": target.url(f"/slow/4?i={i}") for i in range(4)})
        capped.submit(executor.claim([log.pk for log in slow], timezone.now(), cluster="c"))
        dry = queued(make_endpoint, {"dry": target.url("/ok")})
        Log.objects.filter(pk=dry[0].pk).update(dry_run=True)
        capped.submit(executor.claim([dry[0].pk], timezone.now(), cluster="c"))
        assert wait_for(lambda: capped._client.waiting() == 2, timeout=2)

        recorded = wait_for(lambda: state_of(dry) == {"dry": "success"}, timeout=3)
        still_waiting = capped._client.waiting()
        assert capped.wait_idle(15)
    finally:
        capped.drain(timeout=5)
    assert recorded, "the finished run waited for the queued calls"
    assert still_waiting == 2, "the slow calls ended first: the test showed nothing"
    assert set(state_of(slow).values()) == {"success"}
