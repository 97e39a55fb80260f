"""Bulk replay (runs/replay.py): failed runs of real calls to loopback targets run again, each
once, as the next attempt of its own slot."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from endpoints.models import Endpoint
from runs import dispatcher, executor, replay, verbs
from runs.models import Log
from tests.target import free_port


def fail_slots(make_endpoint, url: str, names: list[str], slots: int = 2, **fields) -> None:
    """Each endpoint's `slots` past minutes dispatched and called for real: all fail."""
    first = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    for name in names:
        endpoint = make_endpoint(
            name=name, url=url, cron_expression="* * * * *", max_attempts=1, **fields
        )
        Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=first)
    for minute in range(slots):
        due = dispatcher.dispatch_due(first + timedelta(minutes=minute)).to_run
        executor.execute_many([log.pk for log in due])
    assert Log.objects.filter(state=Log.State.FAILED).count() >= len(names) * slots


@pytest.fixture
def fixed_failures(make_endpoint, target):
    """billing and reports, two failed slots each; their target answers 200 since."""
    fail_slots(make_endpoint, target.url("/status/500"), ["billing", "reports"], slots=2)
    Endpoint.objects.update(url=target.url("/ok"), overlap_policy="allow")


def run_replays() -> list[Log]:
    """What the dispatcher's pending pass and a worker do with the replays that are due."""
    queued = dispatcher.dispatch_pending(timezone.now()).to_run
    return executor.execute_many([log.pk for log in queued])


def calls_to(target, path: str) -> int:
    return sum(1 for received in target.received if received.path == path)


def test_the_preview_counts_failed_runs_and_endpoints_and_writes_nothing(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["a", "b", "c", "d"], slots=3)
    logs, calls = Log.objects.count(), len(target.received)

    preview = replay.preview(replay.Selection())

    assert preview.summary() == "12 failed runs, 4 endpoints"
    assert preview.endpoints == {"a": 3, "b": 3, "c": 3, "d": 3}
    assert preview.error_classes == {"http_status": 12}
    assert preview.created == 0
    assert Log.objects.count() == logs
    assert len(target.received) == calls


def test_a_replay_runs_each_selected_slot_once_as_its_next_attempt(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["a", "b"], overlap_policy="allow")
    failed = list(Log.objects.filter(state=Log.State.FAILED).order_by("id"))
    Endpoint.objects.update(url=target.url("/ok"))  # the target is fixed

    result = replay.replay(replay.Selection(), by="ops", now=timezone.now())
    finished = run_replays()

    assert result.created == 4
    assert calls_to(target, "/ok") == 4
    assert sorted(log.state for log in finished) == [Log.State.SUCCESS] * 4
    for log in failed:
        attempt = Log.objects.get(retry_of=log)
        assert (attempt.trigger, attempt.triggered_by) == (Log.Trigger.REPLAY, "ops")
        assert (attempt.scheduled_for, attempt.attempt) == (log.scheduled_for, log.attempt + 1)
        assert attempt.idempotency_key == log.idempotency_key
        assert attempt.state == Log.State.SUCCESS
    sent = {r.headers["Idempotency-Key"] for r in target.received if r.path == "/ok"}
    assert sent == {log.idempotency_key for log in failed}


def test_a_second_replay_of_the_same_selection_runs_nothing_twice(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["a", "b"], overlap_policy="allow")
    Endpoint.objects.update(url=target.url("/ok"))
    selection = replay.Selection()
    replay.replay(selection, now=timezone.now())

    before_running = replay.replay(selection, now=timezone.now())
    run_replays()
    after_running = replay.replay(selection, now=timezone.now())
    run_replays()

    assert before_running.created == after_running.created == 0
    assert replay.preview(selection).runs == 0
    assert calls_to(target, "/ok") == 4
    assert Log.objects.filter(trigger=Log.Trigger.REPLAY).count() == 4


def test_a_replay_that_fails_again_is_a_new_failed_run_replayed_once_more(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["a"], slots=1)
    replay.replay(replay.Selection(), now=timezone.now())
    (again,) = run_replays()

    assert again.state == Log.State.FAILED and again.attempt == 2
    assert replay.preview(replay.Selection()).runs == 1
    assert replay.replay(replay.Selection(), now=timezone.now()).created == 1
    assert Log.objects.get(retry_of=again).attempt == 3


def test_replays_respect_the_overlap_policy(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["serial"], slots=3)  # overlap: skip
    replay.replay(replay.Selection(), now=timezone.now())

    first = dispatcher.dispatch_pending(timezone.now())

    assert len(first.to_run) == 1 and first.waiting == 2
    executor.execute_many([log.pk for log in first.to_run])
    assert len(dispatcher.dispatch_pending(timezone.now()).to_run) == 1


def test_a_selection_narrows_by_endpoint_error_class_and_time(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["http"], slots=2)
    fail_slots(make_endpoint, f"http://127.0.0.1:{free_port()}/", ["down"], slots=2)
    down = Endpoint.objects.get(name="down")
    old = Log.objects.filter(endpoint__name="http").order_by("id").first()
    Log.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=2))
    since = timezone.now() - timedelta(days=1)

    by_endpoint = replay.preview(replay.Selection(endpoints=(down.pk,)))
    by_class = replay.preview(replay.Selection(error_classes=("connection",)))
    by_time = replay.preview(replay.Selection(start=since))
    before = replay.preview(replay.Selection(end=since))

    assert (by_endpoint.runs, by_endpoint.endpoints) == (2, {"down": 2})
    assert by_class.endpoints == {"down": 2}
    assert by_time.runs == 3
    assert (before.runs, before.endpoints) == (1, {"http": 1})


def test_dry_runs_successes_and_retried_runs_are_not_selected(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["a"], slots=2)
    first, second = Log.objects.filter(state=Log.State.FAILED).order_by("id")
    Log.objects.filter(pk=first.pk).update(dry_run=True)
    verbs.retry(second)

    assert replay.preview(replay.Selection()).runs == 0


def test_a_replay_starts_at_most_the_limit_and_the_next_replay_takes_the_rest(
    target, make_endpoint, settings
):
    settings.SCHEDULER_MAX_REPLAY_RUNS = 3
    fail_slots(make_endpoint, target.url("/status/500"), ["a", "b"], slots=2)

    preview = replay.preview(replay.Selection())
    first = replay.replay(replay.Selection(), now=timezone.now())
    second = replay.replay(replay.Selection(), now=timezone.now())

    assert preview.summary() == (
        "4 failed runs, 2 endpoints; a replay starts the oldest 3, replay again for the rest"
    )
    assert (first.created, second.created) == (3, 1)


def test_a_bad_selection_is_refused_with_its_field():
    with pytest.raises(ValidationError) as refused:
        now = timezone.now()
        replay.Selection(start=now, end=now - timedelta(hours=1), error_classes=("nope",))

    assert set(refused.value.message_dict) == {"end", "error_class"}


@pytest.mark.django_db(transaction=True)
def test_racing_replays_create_one_attempt_per_failed_run(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["a", "b", "c"], slots=3)
    racers = 4
    start = threading.Barrier(racers)
    created: list[int] = []
    errors: list[BaseException] = []

    def race() -> None:
        try:
            start.wait()
            created.append(replay.replay(replay.Selection(), now=timezone.now()).created)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(created) == 9
    replays = Log.objects.filter(trigger=Log.Trigger.REPLAY)
    assert replays.count() == 9
    assert replays.values("retry_of").distinct().count() == 9


def test_replays_respect_the_flow_limit_their_jobs_share(target, make_endpoint):
    fail_slots(make_endpoint, target.url("/status/500"), ["a", "b"], overlap_policy="allow")
    for endpoint in Endpoint.objects.all():  # then both get one limit, and a working target
        endpoint.flow_key, endpoint.flow_parallelism = "billing-api", 1
        endpoint.url = target.url("/ok")
        endpoint.full_clean()
        endpoint.save()
    replay.replay(replay.Selection(), now=timezone.now())

    first = dispatcher.dispatch_pending(timezone.now())
    executor.execute_many([log.pk for log in first.to_run])
    finished = Log.objects.filter(trigger=Log.Trigger.REPLAY, state=Log.State.SUCCESS)

    assert len(first.to_run) == 1  # one at a time for the key, across both jobs
    assert Log.objects.filter(trigger=Log.Trigger.REPLAY, state=Log.State.PENDING).count() >= 2
    assert finished.count() == 1
