"""Jittered starts (deterministic per slot, inside the window) and pauses that end by themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from endpoints.models import Endpoint
from runs import dispatcher, executor, services, verbs
from runs.models import Log

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def due_at(endpoint: Endpoint, slot: datetime) -> None:
    Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=slot)


# --- jitter ------------------------------------------------------------------------------------


def test_a_slots_delay_is_the_same_every_time_and_inside_the_window(make_endpoint):
    endpoint = make_endpoint(cron_expression="0 * * * *", jitter_seconds=300)
    slots = [T0 + timedelta(hours=h) for h in range(500)]
    delays = [endpoint.jitter_for(slot) for slot in slots]
    assert delays == [Endpoint.objects.get(pk=endpoint.pk).jitter_for(slot) for slot in slots]
    assert all(timedelta(0) <= delay < timedelta(seconds=300) for delay in delays)
    # Spread over the window, not bunched: every fifth of it is used.
    assert {int(delay.total_seconds() // 60) for delay in delays} == {0, 1, 2, 3, 4}


def test_endpoints_sharing_a_slot_get_different_delays(make_endpoint):
    delays = {
        make_endpoint(name=f"herd-{n}", cron_expression="0 * * * *", jitter_seconds=600).jitter_for(
            T0
        )
        for n in range(20)
    }
    assert len(delays) == 20


def test_a_jittered_slot_waits_for_its_delay_then_runs(make_endpoint, target):
    endpoint = make_endpoint(url=target.url(), cron_expression="0 * * * *", jitter_seconds=900)
    delay = endpoint.jitter_for(T0)
    due_at(endpoint, T0)
    result = dispatcher.dispatch_due(T0)
    assert result.to_run == []
    log = Log.objects.get()
    assert (log.state, log.scheduled_for, log.due_at) == ("pending", T0, T0 + delay)
    assert dispatcher.dispatch_pending(T0 + delay - timedelta(milliseconds=1)).to_run == []
    (queued,) = dispatcher.dispatch_pending(T0 + delay).to_run
    executor.execute(queued.pk)
    log.refresh_from_db()
    assert log.state == "success" and log.scheduled_for == T0
    assert dispatcher.next_wakeup(T0) is not None


def test_a_retry_keeps_its_slot_its_key_and_its_delay(make_endpoint, target):
    endpoint = make_endpoint(
        url=target.url("/flaky/1"), cron_expression="0 * * * *", jitter_seconds=900
    )
    due_at(endpoint, T0)
    dispatcher.dispatch_due(T0)
    first = Log.objects.get()
    (queued,) = dispatcher.dispatch_pending(first.due_at).to_run
    executor.execute(queued.pk)
    retry = Log.objects.get(attempt=2)
    assert retry.scheduled_for == T0 and retry.idempotency_key == first.idempotency_key
    assert endpoint.jitter_for(retry.scheduled_for) == first.due_at - T0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule_type": "interval", "interval_seconds": 60, "jitter_seconds": 60}, "shorter"),
        ({"cron_expression": "*/5 * * * *", "jitter_seconds": 301}, "(300 s)"),
        (
            {"schedule_type": "none", "cron_expression": "", "jitter_seconds": 5},
            "cron and interval",
        ),
        ({"jitter_seconds": 3601}, "less than or equal to 3600"),
    ],
)
def test_a_jitter_window_that_does_not_fit_is_refused(make_endpoint, fields, message):
    with pytest.raises(ValidationError) as raised:
        make_endpoint(**fields)
    assert message in " ".join(raised.value.message_dict["jitter_seconds"])


# --- pause with a reason and an end --------------------------------------------------------------


def test_a_pause_says_until_when_by_whom_and_why(make_endpoint):
    endpoint = make_endpoint(timezone="America/New_York")
    until = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    verbs.disable(endpoint, by="alice", reason="vendor maintenance", until=until, now=T0)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.next_run_at is None
    assert endpoint.pause_description == (
        "Paused until 2026-12-01 09:00 EST by alice: vendor maintenance"
    )


def test_a_pause_ends_by_itself_and_the_slots_it_covered_are_not_missed(make_endpoint):
    endpoint = make_endpoint(cron_expression="*/5 * * * *")
    until = T0 + timedelta(hours=2)
    verbs.disable(endpoint, by="alice", reason="deploy", until=until, now=T0)
    assert dispatcher.dispatch_due(until - timedelta(seconds=1)).endpoints == 0
    endpoint.refresh_from_db()
    assert not endpoint.enabled

    dispatcher.dispatch_due(until + timedelta(seconds=1))
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.pause_description == ""
    assert (endpoint.paused_until, endpoint.paused_by, endpoint.disabled_reason) == (None, "", "")
    assert endpoint.next_run_at == until + timedelta(minutes=5)
    assert Log.objects.count() == 0  # a pause is not downtime: nothing missed


def test_resuming_by_hand_before_the_end_clears_the_pause(make_endpoint):
    endpoint = make_endpoint()
    verbs.disable(endpoint, reason="x", until=T0 + timedelta(days=1), now=T0)
    verbs.enable(endpoint, now=T0 + timedelta(hours=1))
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.paused_until is None


def test_a_pause_that_ends_in_the_past_is_refused_and_changes_nothing(make_endpoint):
    endpoint = make_endpoint()
    with pytest.raises(ValidationError) as raised:
        verbs.disable(endpoint, reason="x", until=T0 - timedelta(minutes=1), now=T0)
    assert "paused_until" in raised.value.message_dict
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_a_pause_without_an_end_lasts_until_resumed(make_endpoint):
    endpoint = make_endpoint()
    verbs.disable(endpoint, by="bob", reason="", now=T0)
    dispatcher.dispatch_due(T0 + timedelta(days=400))
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.pause_description == "Paused by bob"


def test_a_jittered_run_not_yet_started_is_cancelled_by_a_pause(make_endpoint, target):
    endpoint = make_endpoint(url=target.url(), cron_expression="0 * * * *", jitter_seconds=900)
    due_at(endpoint, T0)
    dispatcher.dispatch_due(T0)
    verbs.disable(endpoint, reason="hold", now=T0)
    assert dispatcher.dispatch_pending(T0 + timedelta(hours=1)).to_run == []
    log = Log.objects.get()
    assert log.state == "cancelled" and "paused" in log.reason
    assert target.received == []


def test_auto_disable_ends_a_timed_pause(make_endpoint, target):
    endpoint = make_endpoint(url=target.url("/status/500"), max_attempts=1, auto_disable_after=1)
    log = services.create_run(endpoint, state=Log.State.QUEUED)
    verbs.disable(endpoint, reason="x", until=T0 + timedelta(days=3650), now=T0)
    Endpoint.objects.filter(pk=endpoint.pk).update(enabled=True)
    executor.execute(log.pk)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.paused_until is None
    assert endpoint.pause_description.startswith("Auto-disabled after 1 consecutive")
