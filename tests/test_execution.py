"""Claim, perform, record (runs/executor.py, runs/recording.py): many runs at once keep the
invariants of one run. These call the path in the test's own thread (`execute_many`); the
cluster's engine (tests/test_engine.py) runs the same claim, perform and record."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from runs import cluster, dispatcher, executor, services
from runs.models import LEASE_GRACE, Log
from tests.processes import ROOT, manage_env
from tests.runs_support import queued
from tests.target import free_port


def run(log_ids: list[int]) -> dict[str, int]:
    """Execute these Logs here; how many ended in each state."""
    counts: dict[str, int] = {}
    for log in executor.execute_many(log_ids):
        counts[log.state] = counts.get(log.state, 0) + 1
    return counts


def by_name(logs: list[Log]) -> dict[str, Log]:
    fresh = Log.objects.filter(pk__in=[log.pk for log in logs]).select_related("endpoint")
    return {log.endpoint.name: log for log in fresh}


def test_a_batch_runs_each_log_and_records_it_like_execute(make_endpoint, target):
    logs = queued(make_endpoint, {f"ok-{i}": target.url(f"/ok?i={i}") for i in range(5)})

    counts = run([log.pk for log in logs])

    assert counts == {"success": 5}
    assert len(target.received) == 5
    for log in by_name(logs).values():
        assert log.state == "success" and log.status_code == 200
        assert log.started_at <= log.finished_at and log.lease_expires_at is None
        assert log.result_summary["status_code"] == 200
        assert log.endpoint.run_count == log.endpoint.success_count == 1
        assert log.endpoint.last_status == "success"
        assert log.endpoint.last_run_at == log.started_at


def test_a_batch_delivered_twice_runs_each_slot_once(make_endpoint, target):
    logs = queued(make_endpoint, {f"twice-{i}": target.url(f"/ok?i={i}") for i in range(4)})
    ids = [log.pk for log in logs]

    run(ids)
    assert run(ids) == {}

    assert len(target.received) == 4
    assert all(log.endpoint.run_count == 1 for log in by_name(logs).values())


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_racing_run_each_slot_once(make_endpoint, target):
    logs = queued(make_endpoint, {f"race-{i}": target.url(f"/ok?i={i}") for i in range(20)})
    ids = [log.pk for log in logs]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            start.wait()
            run(ids)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(target.received) == 20
    assert sorted(log.endpoint.run_count for log in by_name(logs).values()) == [1] * 20


def test_a_slow_call_does_not_hold_back_the_others_past_their_timeout(make_endpoint, target):
    logs = queued(
        make_endpoint,
        {
            "slow": target.url("/slow/4"),
            **{f"quick-{i}": target.url(f"/ok?i={i}") for i in range(3)},
        },
        timeout_seconds=1,
        max_attempts=1,
    )
    started = time.monotonic()

    run([log.pk for log in logs])

    assert time.monotonic() - started < 3, "the batch waited for the slow target, not its timeout"
    runs = by_name(logs)
    slow = runs.pop("slow")
    assert slow.state == "failed" and slow.error_class == "timeout"
    assert slow.duration_ms < 2500
    for quick in runs.values():
        assert quick.state == "success"
        # Recorded as soon as it was done, not when the slow one gave up.
        assert quick.finished_at - quick.started_at < timedelta(seconds=0.9)


def test_failing_calls_do_not_fail_the_rest_of_their_batch(make_endpoint, target):
    refused = f"http://127.0.0.1:{free_port()}/"
    logs = queued(
        make_endpoint,
        {
            "server-error": target.url("/status/500"),
            "refused": refused,
            "too-slow": target.url("/slow/3"),
            "fine": target.url("/ok"),
            "not-found": target.url("/status/404"),
        },
        timeout_seconds=0.5,
    )

    counts = run([log.pk for log in logs])

    assert counts == {"failed": 4, "success": 1}
    runs = by_name(logs)
    assert runs["fine"].state == "success"
    assert runs["server-error"].error_class == "http_status"
    assert runs["refused"].error_class == "connection"
    assert runs["too-slow"].error_class == "timeout"
    assert runs["not-found"].error_class == "http_status"
    # Failures go through record(): retries for what is worth retrying, stats per run.
    retried = set(Log.objects.filter(trigger="retry").values_list("endpoint__name", flat=True))
    assert retried == {"server-error", "refused", "too-slow"}
    assert runs["not-found"].endpoint.failure_count == 1
    assert runs["not-found"].endpoint.consecutive_failures == 1


def test_a_success_after_failures_resets_the_streak_through_record(make_endpoint, target):
    logs = queued(make_endpoint, {"back": target.url("/ok"), "calm": target.url("/ok?calm")})
    endpoint = by_name(logs)["back"].endpoint
    endpoint.consecutive_failures = 3
    endpoint.save(update_fields=["consecutive_failures"])

    run([log.pk for log in logs])

    runs = by_name(logs)
    assert runs["back"].state == "success"
    assert runs["back"].endpoint.consecutive_failures == 0
    assert runs["back"].endpoint.success_count == 1
    assert runs["calm"].endpoint.success_count == 1


def test_a_result_arriving_after_the_sweeper_gave_up_is_dropped(make_endpoint, target):
    logs = queued(make_endpoint, {"late": target.url("/ok")})
    log = executor.claim([logs[0].pk], timezone.now())[0]
    Log.objects.filter(pk=log.pk).update(state="failed", error_class="stuck")
    from calls.spec import Outcome
    from runs.recording import record_many

    record_many([(log, Outcome(ok=True, status_code=200), timezone.now())])

    log.refresh_from_db()
    assert log.state == "failed" and log.error_class == "stuck"
    assert log.endpoint.run_count == 0


def test_dry_runs_and_handlers_in_a_batch(make_endpoint, target):
    from endpoints import registry

    @registry.handler("tests:batch-echo")
    def echo(payload, *, dry_run, log):
        return {"echo": payload["word"]}

    now = timezone.now()
    call = make_endpoint(name="dry", url=target.url("/ok"))
    job = make_endpoint(
        name="job", kind="handler", handler="tests:batch-echo", payload={"word": "hi"}, url=""
    )
    dry = services.create_run(call, dry_run=True, state="queued", now=now)
    handled = services.create_run(job, state="queued", now=now)

    run([dry.pk, handled.pk])

    dry.refresh_from_db()
    handled.refresh_from_db()
    assert dry.state == "success" and dry.result_summary["dry_run"] is True
    assert target.received == []
    assert handled.state == "success" and handled.result_summary == {"echo": "hi"}


def test_enqueue_many_hands_http_runs_over_in_batches(make_endpoint, target, settings):
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    logs = queued(make_endpoint, {f"b-{i}": target.url(f"/ok?i={i}") for i in range(7)})
    broker = get_broker()  # the ORM broker, or Redis when REDIS_URL is set
    broker.purge_queue()

    services.enqueue_many(logs)

    tasks = []
    while delivered := broker.dequeue():
        tasks += [SignedPackage.loads(payload) for _, payload in delivered]
    assert {task["func"] for task in tasks} == {services.BATCH_TASK}
    handed = sorted(pk for task in tasks for pk in task["args"][0])
    assert handed == sorted(log.pk for log in logs)
    assert len(tasks) == 2  # one per worker


def test_batches_fill_every_worker_and_stay_under_the_cap():
    logs = list(range(1000))
    sizes = [len(chunk) for chunk in services.split(logs, 2)]
    assert sum(sizes) == 1000 and max(sizes) <= services.MAX_BATCH and len(sizes) == 2
    assert len(services.split(list(range(1200)), 2)) == 3
    assert [len(chunk) for chunk in services.split(logs[:3], 2)] == [2, 1]
    assert services.split([], 2) == []


@pytest.mark.django_db(transaction=True)
def test_a_process_killed_mid_call_leaves_its_runs_to_recover_stuck(make_endpoint, target):
    logs = queued(
        make_endpoint,
        {f"killed-{i}": target.url(f"/slow/30?i={i}") for i in range(3)},
        timeout_seconds=5,
        max_attempts=2,
    )
    ids = ",".join(str(log.pk) for log in logs)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c",
         f"from runs.executor import execute_many; execute_many([{ids}])"],
        cwd=ROOT, env=manage_env(), start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while len(target.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(target.received) == 3, "the batch did not start its calls"
        assert Log.objects.filter(pk__in=[log.pk for log in logs], state="running").count() == 3
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    # Nothing is given up on before the lease (timeout + grace) runs out...
    failed, _ = cluster.recover_stuck(timezone.now())
    assert failed == []
    later = timezone.now() + timedelta(seconds=5) + LEASE_GRACE + timedelta(seconds=1)
    failed, _ = cluster.recover_stuck(later)

    assert sorted(log.pk for log in failed) == sorted(log.pk for log in logs)
    for log in by_name(logs).values():
        assert log.state == "failed" and log.error_class == "stuck"
        assert Log.objects.filter(retry_of=log, state="pending").exists()


def test_a_slot_taken_early_is_called_at_its_instant_not_before(make_endpoint, target):
    now = timezone.now()
    # A whole second 1–2 s away: never so close that it has come before the first look.
    slot = (now + timedelta(seconds=2)).replace(microsecond=0)
    endpoint = make_endpoint(name="early", url=target.url("/ok"), cron_expression="* * * * * *")
    endpoint.next_run_at = slot
    endpoint.save(update_fields=["next_run_at"])

    logs = dispatcher.dispatch_due(now, ahead=timedelta(seconds=2)).to_run
    assert [log.scheduled_for for log in logs] == [slot]
    assert logs[0].due_at == slot and logs[0].state == "queued"
    assert run([logs[0].pk]) == {}  # not before its time
    time.sleep(max(0.0, (slot - timezone.now()).total_seconds()))
    run([logs[0].pk])

    log = Log.objects.get(pk=logs[0].pk)
    assert log.state == "success" and log.started_at >= slot
    assert target.received[0].at >= slot.timestamp()
    endpoint.refresh_from_db()
    assert endpoint.next_run_at == slot + timedelta(seconds=1)


def test_an_endpoint_with_an_open_run_is_not_taken_early(make_endpoint, target):
    now = timezone.now()
    busy = make_endpoint(name="busy", url=target.url("/ok"), cron_expression="* * * * * *")
    services.create_run(busy, state="running", now=now)
    free = make_endpoint(
        name="free", url=target.url("/ok"), cron_expression="* * * * * *", overlap_policy="allow"
    )
    services.create_run(free, state="running", now=now)
    from endpoints.models import Endpoint

    Endpoint.objects.update(next_run_at=now + timedelta(seconds=0.5))

    result = dispatcher.dispatch_due(now, ahead=timedelta(seconds=1))

    # skip (the default) would decide against a run that may end before the slot: wait for it.
    assert result.deferred == 1
    assert [log.endpoint.name for log in result.to_run] == ["free"]
    busy.refresh_from_db()
    assert busy.next_run_at == now + timedelta(seconds=0.5)


def test_a_due_slot_is_never_missed_because_the_next_one_is_taken_early(make_endpoint, target):
    now = timezone.now().replace(microsecond=300_000)
    due = now.replace(microsecond=0)
    endpoint = make_endpoint(
        name="late", url=target.url("/ok"), cron_expression="* * * * * *", overlap_policy="allow"
    )
    endpoint.next_run_at = due
    endpoint.save(update_fields=["next_run_at"])

    first = dispatcher.dispatch_due(now, ahead=timedelta(seconds=1))
    second = dispatcher.dispatch_due(now, ahead=timedelta(seconds=1))

    assert [log.scheduled_for for log in first.to_run] == [due]
    assert first.missed == 0
    assert [log.scheduled_for for log in second.to_run] == [due + timedelta(seconds=1)]
