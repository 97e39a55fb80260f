from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from calls.spec import Outcome
from endpoints.models import Endpoint
from runs import cluster, dispatcher
from runs.models import Log
from runs.recording import record

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def due(make_endpoint):
    """An endpoint whose next slot is `at` (T0 unless given)."""

    def make(at: datetime = T0, **fields) -> Endpoint:
        fields.setdefault("cron_expression", "* * * * *")
        endpoint = make_endpoint(**fields)
        Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=at)
        endpoint.refresh_from_db()
        return endpoint

    return make


def states(endpoint: Endpoint) -> list[tuple[str, str, str]]:
    return [
        (log.scheduled_for.strftime("%H:%M:%S"), log.state, log.trigger)
        for log in Log.objects.filter(endpoint=endpoint).order_by("scheduled_for")
    ]


def test_a_due_slot_becomes_one_queued_log_and_the_schedule_advances(due):
    endpoint = due()
    result = dispatcher.dispatch_due(T0 + timedelta(milliseconds=3))
    assert [log.scheduled_for for log in result.to_run] == [T0]
    log = Log.objects.get()
    assert (log.state, log.trigger, log.attempt) == ("queued", "schedule", 1)
    assert log.lease_expires_at is not None
    endpoint.refresh_from_db()
    assert endpoint.next_run_at == T0 + timedelta(minutes=1)


def test_dispatching_again_at_the_same_instant_creates_nothing(due):
    due()
    dispatcher.dispatch_due(T0)
    assert dispatcher.dispatch_due(T0).to_run == []
    assert dispatcher.dispatch_due(T0 + timedelta(seconds=59)).to_run == []
    assert Log.objects.count() == 1


def test_nothing_is_dispatched_before_its_time(due):
    due()
    assert dispatcher.dispatch_due(T0 - timedelta(milliseconds=1)).endpoints == 0
    assert Log.objects.count() == 0


def test_a_disabled_endpoint_is_not_dispatched(due):
    endpoint = due()
    Endpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    assert dispatcher.dispatch_due(T0 + timedelta(hours=1)).endpoints == 0


def test_a_slot_already_claimed_is_not_claimed_twice(due):
    # e.g. an edit wrote back an older next_run_at after the slot had run.
    endpoint = due()
    dispatcher.dispatch_due(T0)
    Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=T0)
    dispatcher.dispatch_due(T0 + timedelta(seconds=1))
    assert Log.objects.filter(scheduled_for=T0).count() == 1


# --- missed runs after downtime: slots every minute from T0, worker back at T0 + 9m40s ---------

BACK = T0 + timedelta(minutes=9, seconds=40)


def test_missed_policy_skip_records_every_missed_slot_and_runs_none(due):
    endpoint = due(missed_policy="skip")
    result = dispatcher.dispatch_due(BACK)
    assert result.to_run == [] and result.missed == 10
    assert {state for _, state, _ in states(endpoint)} == {"missed"}
    assert "policy: skip" in Log.objects.first().reason
    endpoint.refresh_from_db()
    assert endpoint.next_run_at == T0 + timedelta(minutes=10)


def test_missed_policy_run_once_runs_the_latest_and_records_the_rest(due):
    endpoint = due(missed_policy="run_once")
    result = dispatcher.dispatch_due(BACK)
    assert result.missed == 9
    assert [log.scheduled_for for log in result.to_run] == [T0 + timedelta(minutes=9)]
    assert states(endpoint)[-1] == ("12:09:00", "queued", "catch_up")
    assert all(state == "missed" for _, state, _ in states(endpoint)[:-1])


def test_missed_policy_run_all_runs_the_slots_inside_its_window(due):
    endpoint = due(missed_policy="run_all", catch_up_window_seconds=300, overlap_policy="allow")
    result = dispatcher.dispatch_due(BACK)
    assert [s for s, state, _ in states(endpoint) if state == "missed"] == [
        "12:00:00", "12:01:00", "12:02:00", "12:03:00", "12:04:00",
    ]  # fmt: skip
    assert [log.scheduled_for.strftime("%H:%M") for log in result.to_run] == [
        "12:05", "12:06", "12:07", "12:08", "12:09",
    ]  # fmt: skip
    assert {log.trigger for log in result.to_run} == {"catch_up"}


def test_an_on_time_slot_runs_normally_after_downtime(due):
    endpoint = due(missed_policy="run_once")
    result = dispatcher.dispatch_due(T0 + timedelta(minutes=10, seconds=2))
    # 12:00–12:09 are missed; 12:10 is due now and runs on schedule, so no catch-up is needed.
    assert result.missed == 10
    assert [(log.scheduled_for, log.trigger) for log in result.to_run] == [
        (T0 + timedelta(minutes=10), "schedule")
    ]
    assert len(states(endpoint)) == 11


def test_a_long_backlog_is_worked_off_over_several_passes_and_fully_accounted(due):
    endpoint = due(cron_expression="* * * * * *", missed_policy="run_once")
    back = T0 + timedelta(minutes=30)
    passes = 0
    while dispatcher.dispatch_due(back).endpoints:
        passes += 1
    assert passes == 2
    assert Log.objects.filter(endpoint=endpoint).count() == 30 * 60 + 1
    # The slot due now (12:30:00) runs; the others are accounted for as missed.
    assert list(Log.objects.exclude(state="missed").values_list("scheduled_for", flat=True)) == [
        back
    ]


# --- overlap -----------------------------------------------------------------------------------


def running_log(endpoint: Endpoint) -> Log:
    return Log.objects.create(
        endpoint=endpoint, state=Log.State.RUNNING, scheduled_for=T0 - timedelta(minutes=1)
    )


def test_overlap_skip_records_the_slot_as_skipped_while_a_run_is_still_going(due):
    endpoint = due(overlap_policy="skip")
    blocker = running_log(endpoint)
    result = dispatcher.dispatch_due(T0)
    assert result.to_run == [] and result.skipped == 1
    skipped = Log.objects.get(scheduled_for=T0)
    assert skipped.state == "skipped"
    assert skipped.reason == f"Previous run {blocker.run_id} was still going."


def test_overlap_allow_runs_anyway(due):
    endpoint = due(overlap_policy="allow")
    running_log(endpoint)
    assert len(dispatcher.dispatch_due(T0).to_run) == 1


def test_overlap_queue_one_waits_for_the_running_one_then_starts(due):
    endpoint = due(overlap_policy="queue_one")
    blocker = running_log(endpoint)
    dispatcher.dispatch_due(T0)
    dispatcher.dispatch_due(T0 + timedelta(minutes=1))
    assert [state for _, state, _ in states(endpoint)] == ["running", "pending", "skipped"]
    assert dispatcher.dispatch_pending(T0 + timedelta(minutes=1)).to_run == []
    Log.objects.filter(pk=blocker.pk).update(state=Log.State.SUCCESS)
    started = dispatcher.dispatch_pending(T0 + timedelta(minutes=1, seconds=5)).to_run
    assert [log.scheduled_for for log in started] == [T0]


def test_a_pending_retry_does_not_block_the_next_slot(due):
    endpoint = due(overlap_policy="skip")
    Log.objects.create(
        endpoint=endpoint,
        state=Log.State.PENDING,
        trigger=Log.Trigger.RETRY,
        attempt=2,
        scheduled_for=T0 - timedelta(minutes=1),
        due_at=T0 + timedelta(minutes=10),
    )
    assert len(dispatcher.dispatch_due(T0).to_run) == 1


def test_one_endpoints_backlog_does_not_keep_others_retries_waiting(due, make_endpoint):
    """600 pending runs of one endpoint that runs one at a time (a replay, a backfill), older
    than another endpoint's retry: one pass still starts that retry."""
    backlog = due(name="backlog", overlap_policy="skip")
    running_log(backlog)
    Log.objects.bulk_create(
        Log(
            endpoint=backlog,
            state=Log.State.PENDING,
            trigger=Log.Trigger.BACKFILL,
            scheduled_for=T0 - timedelta(hours=1, seconds=i),
            due_at=T0 - timedelta(minutes=30, seconds=i),
        )
        for i in range(600)
    )
    other = due(name="other")
    retry = Log.objects.create(
        endpoint=other,
        state=Log.State.PENDING,
        trigger=Log.Trigger.RETRY,
        attempt=2,
        scheduled_for=T0 - timedelta(minutes=1),
        due_at=T0,
    )

    passed = dispatcher.dispatch_pending(T0, limit=500)

    assert [log.pk for log in passed.to_run] == [retry.pk]
    assert passed.waiting == dispatcher.PENDING_PER_ENDPOINT  # the backlog's, looked at in part
    assert Log.objects.filter(endpoint=backlog, state=Log.State.PENDING).count() == 600


# --- schedule kinds and limits -----------------------------------------------------------------


def test_a_one_time_schedule_runs_once_and_disables_itself(due):
    endpoint = due(schedule_type="once", cron_expression="", run_at=T0)
    assert len(dispatcher.dispatch_due(T0).to_run) == 1
    endpoint.refresh_from_db()
    assert endpoint.enabled is False and endpoint.next_run_at is None
    assert endpoint.disabled_reason == "One-time run dispatched."
    assert dispatcher.dispatch_due(T0 + timedelta(days=1)).endpoints == 0


def test_an_interval_schedule_advances_by_its_interval(due):
    endpoint = due(schedule_type="interval", cron_expression="", interval_seconds=90, starts_at=T0)
    dispatcher.dispatch_due(T0)
    endpoint.refresh_from_db()
    assert endpoint.next_run_at == T0 + timedelta(seconds=90)


def test_max_runs_stops_the_schedule(due):
    endpoint = due(max_runs=2, overlap_policy="allow")
    dispatcher.dispatch_due(T0)
    dispatcher.dispatch_due(T0 + timedelta(minutes=1))
    endpoint.refresh_from_db()
    assert endpoint.next_run_at is None
    assert Log.objects.filter(endpoint=endpoint).count() == 2


def test_the_end_of_the_window_stops_the_schedule(due):
    endpoint = due(ends_at=T0 + timedelta(minutes=1))
    dispatcher.dispatch_due(T0)
    dispatcher.dispatch_due(T0 + timedelta(minutes=1))
    endpoint.refresh_from_db()
    assert endpoint.next_run_at is None


# --- retries and stuck runs --------------------------------------------------------------------


def test_a_retry_is_queued_when_its_backoff_has_passed(due):
    endpoint = due()
    retry = Log.objects.create(
        endpoint=endpoint, state="pending", trigger="retry", attempt=2, due_at=T0
    )
    assert dispatcher.dispatch_pending(T0 - timedelta(seconds=1)).to_run == []
    assert [log.pk for log in dispatcher.dispatch_pending(T0).to_run] == [retry.pk]
    retry.refresh_from_db()
    assert retry.state == "queued"


def test_a_retry_of_a_disabled_endpoint_is_cancelled(due):
    endpoint = due(enabled=False)
    retry = Log.objects.create(endpoint=endpoint, state="pending", trigger="retry", due_at=T0)
    assert dispatcher.dispatch_pending(T0).to_run == []
    retry.refresh_from_db()
    assert retry.state == "cancelled"


def test_a_run_whose_worker_died_is_failed_with_a_reason_and_retried(due):
    endpoint = due(max_attempts=2, timeout_seconds=10)
    stuck = Log.objects.create(
        endpoint=endpoint,
        state=Log.State.RUNNING,
        scheduled_for=T0,
        started_at=T0,
        lease_expires_at=T0 + timedelta(seconds=40),
    )
    assert cluster.recover_stuck(T0 + timedelta(seconds=39)) == ([], [])
    failed, _ = cluster.recover_stuck(T0 + timedelta(seconds=41))
    assert [log.pk for log in failed] == [stuck.pk]
    stuck.refresh_from_db()
    assert (stuck.state, stuck.error_class) == ("failed", "stuck")
    assert "10 s timeout plus grace" in stuck.error_message
    retry = Log.objects.get(retry_of=stuck)
    assert (retry.state, retry.attempt, retry.scheduled_for) == ("pending", 2, T0)


def test_a_late_result_does_not_overwrite_a_run_given_up_on(due):
    endpoint = due(max_attempts=1)
    log = Log.objects.create(endpoint=endpoint, state=Log.State.RUNNING, lease_expires_at=T0)
    cluster.recover_stuck(T0 + timedelta(seconds=1))
    assert record(log, Outcome(ok=True)) is False
    log.refresh_from_db()
    assert log.state == "failed"


def test_a_queued_run_whose_task_was_lost_is_handed_out_again(due):
    endpoint = due()
    lost = Log.objects.create(endpoint=endpoint, state=Log.State.QUEUED, lease_expires_at=T0)
    _, requeued = cluster.recover_stuck(T0 + timedelta(seconds=1))
    assert [log.pk for log in requeued] == [lost.pk]
    lost.refresh_from_db()
    assert lost.lease_expires_at == T0 + timedelta(seconds=1) + cluster.QUEUED_LEASE


def test_next_wakeup_is_the_earliest_slot_or_pending_run(due):
    due(at=T0 + timedelta(seconds=30))
    assert dispatcher.next_wakeup(T0) == T0 + timedelta(seconds=30)
    endpoint = Endpoint.objects.get()
    Log.objects.create(endpoint=endpoint, state="pending", due_at=T0 + timedelta(seconds=5))
    assert dispatcher.next_wakeup(T0) == T0 + timedelta(seconds=5)


def test_a_dead_clusters_heartbeat_is_forgotten_after_a_while(db):
    from runs.models import Heartbeat

    beat = {"host": "h", "pid": 1, "started_at": T0, "cluster_id": "gone"}
    Heartbeat.objects.create(name="h:1", last_seen_at=T0, **beat)
    Heartbeat.objects.create(name="h:2", last_seen_at=T0 + timedelta(minutes=9), **beat)

    assert cluster.forget_long_gone(T0 + cluster.FORGET_AFTER + timedelta(seconds=1)) == 1

    assert list(Heartbeat.objects.values_list("name", flat=True)) == ["h:2"]


# --- what changes between a pass's read and its transaction (the read is outside it) ----------


@pytest.fixture
def between_read_and_lock(monkeypatch):
    """Do `action` once, after a pass has read and decided and before its transaction. Only
    SQLite's passes read before their transaction; on PostgreSQL the endpoints are locked as
    they are read, which tests/test_exactly_once.py races."""
    if connection.features.has_select_for_update_skip_locked:
        pytest.skip("the endpoints are locked as they are read")

    def install(action):
        decide, pending = dispatcher._decide, [action]

        def deciding_then(*args, **kwargs):
            decided = decide(*args, **kwargs)
            if pending:
                pending.pop()()
            return decided

        monkeypatch.setattr(dispatcher, "_decide", deciding_then)

    return install


def test_a_slot_another_pass_took_meanwhile_is_not_taken_twice(due, between_read_and_lock):
    endpoint = due()
    between_read_and_lock(lambda: dispatcher.dispatch_due(T0))
    result = dispatcher.dispatch_due(T0)
    assert (result.endpoints, result.to_run) == (0, [])
    assert states(endpoint) == [("12:00:00", "queued", "schedule")]
    endpoint.refresh_from_db()
    assert endpoint.next_run_at == T0 + timedelta(minutes=1)


def test_an_endpoint_paused_meanwhile_is_not_dispatched(due, between_read_and_lock):
    endpoint = due()
    between_read_and_lock(lambda: Endpoint.objects.get(pk=endpoint.pk).pause(now=T0, by="alice"))
    assert dispatcher.dispatch_due(T0).endpoints == 0
    assert Log.objects.count() == 0
