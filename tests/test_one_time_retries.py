"""A one-time job retries per its policy and counts its run (issue 14, item 1).

The dispatcher disables a one-time endpoint once its slot is dispatched; its retries must still
run: that slot is not over until its last attempt is.
"""

from datetime import timedelta

from django.utils import timezone

from endpoints.models import Endpoint
from runs import dispatcher, executor
from runs.models import Log


def _one_time(make_endpoint, url: str, **fields) -> Endpoint:
    at = timezone.now() + timedelta(hours=1)
    endpoint = make_endpoint(
        name="once", url=url, schedule_type=Endpoint.ScheduleType.ONCE, cron_expression="",
        run_at=at, max_attempts=3, **fields,
    )  # fmt: skip
    assert endpoint.next_run_at == at
    # Its instant has just come (the executor works on the real clock, which must have reached
    # the slot): as the dispatcher finds it.
    at = timezone.now() - timedelta(seconds=1)
    Endpoint.objects.filter(pk=endpoint.pk).update(run_at=at, next_run_at=at)
    endpoint.refresh_from_db()
    return endpoint


def _run_every_attempt(endpoint: Endpoint) -> list[Log]:
    """Dispatch the slot, then execute each attempt as dispatch_pending hands it over."""
    result = dispatcher.dispatch_due(endpoint.run_at)
    assert len(result.to_run) == 1
    executor.execute(result.to_run[0].pk)
    for _ in range(endpoint.max_attempts):
        retries = dispatcher.dispatch_pending(timezone.now() + timedelta(minutes=1)).to_run
        for log in retries:
            executor.execute(log.pk)
    return list(Log.objects.filter(endpoint=endpoint).order_by("attempt"))


def test_a_failing_one_time_job_is_retried_up_to_its_max_attempts(make_endpoint, target):
    endpoint = _one_time(make_endpoint, target.url("/status/500"))
    logs = _run_every_attempt(endpoint)
    assert [(log.attempt, log.state) for log in logs] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert len(target.received) == 3
    endpoint.refresh_from_db()
    assert (endpoint.run_count, endpoint.failure_count, endpoint.last_status) == (1, 1, "failed")
    assert not endpoint.enabled and endpoint.next_run_at is None  # done: it does not run again


def test_a_one_time_job_that_succeeds_on_a_retry_counts_one_successful_run(make_endpoint, target):
    endpoint = _one_time(make_endpoint, target.url("/flaky/1"))
    logs = _run_every_attempt(endpoint)
    assert [(log.attempt, log.state) for log in logs] == [(1, "failed"), (2, "success")]
    endpoint.refresh_from_db()
    assert (endpoint.run_count, endpoint.success_count, endpoint.failure_count) == (1, 1, 0)


def test_a_retry_of_a_one_time_job_paused_after_its_slot_is_still_cancelled(make_endpoint, target):
    endpoint = _one_time(make_endpoint, target.url("/status/500"))
    result = dispatcher.dispatch_due(endpoint.run_at)
    executor.execute(result.to_run[0].pk)
    endpoint.refresh_from_db()
    endpoint.pause(now=timezone.now(), by="alice", reason="vendor maintenance")
    assert dispatcher.dispatch_pending(timezone.now() + timedelta(minutes=1)).to_run == []
    retry = Log.objects.get(endpoint=endpoint, attempt=2)
    assert retry.state == Log.State.CANCELLED
    assert len(target.received) == 1


def test_a_retry_of_a_cancelled_one_time_action_is_cancelled(make_endpoint, target):
    endpoint = _one_time(make_endpoint, target.url("/status/500"))
    result = dispatcher.dispatch_due(endpoint.run_at)
    executor.execute(result.to_run[0].pk)
    endpoint.refresh_from_db()
    endpoint.set_enabled(False, now=timezone.now(), reason="Action cancelled.")
    dispatcher.dispatch_pending(timezone.now() + timedelta(minutes=1))
    assert Log.objects.get(endpoint=endpoint, attempt=2).state == Log.State.CANCELLED
