"""Backfill: a past range's slots run once each, with their own scheduled time, DST included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from endpoints.models import Endpoint
from runs import backfill, dispatcher, executor
from runs.models import Log

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
# 2026-11-01 in New York: 00:00 EDT (04:00Z) to 00:00 EST on the 2nd (05:00Z): 25 hours.
DAY_START = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
DAY_END = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


@pytest.fixture
def hourly_in_new_york(make_endpoint, target):
    return make_endpoint(
        name="hourly-ny",
        url=target.url("/ok?slot={{ scheduled_at }}"),
        cron_expression="0 * * * *",
        timezone="America/New_York",
        overlap_policy="allow",
    )


def work_off(now: datetime) -> None:
    """What the cluster does: queue pending runs as the overlap policy allows, run them."""
    while True:
        queued = dispatcher.dispatch_pending(now).to_run
        if not queued:
            return
        for log in queued:
            executor.execute(log.pk)


def test_the_fall_back_day_has_24_hourly_slots_and_each_runs_once(hourly_in_new_york, target):
    plan = backfill.plan(hourly_in_new_york, DAY_START, DAY_END, now=NOW)
    # Wall-clock hours: 01:00 happens twice (EDT, then EST); cron means the first one.
    expected = [DAY_START + timedelta(hours=h) for h in (0, 1)] + [
        DAY_START + timedelta(hours=h) for h in range(3, 25)
    ]
    assert plan.slots == expected and plan.to_run == expected

    backfill.backfill(hourly_in_new_york, DAY_START, DAY_END, by="alice", now=NOW)
    work_off(NOW)

    logs = Log.objects.filter(endpoint=hourly_in_new_york).order_by("scheduled_for")
    assert [log.scheduled_for for log in logs] == expected
    assert {(log.state, log.trigger, log.triggered_by) for log in logs} == {
        ("success", "backfill", "alice")
    }
    sent_slots = sorted(parse_qs(urlsplit(r.path).query)["slot"][0] for r in target.received)
    assert sent_slots == [slot.strftime("%Y-%m-%dT%H:%M:%SZ") for slot in expected]
    keys = {request.headers["Idempotency-Key"] for request in target.received}
    assert len(keys) == 24


def test_backfilling_the_same_range_again_runs_nothing(hourly_in_new_york, target):
    backfill.backfill(hourly_in_new_york, DAY_START, DAY_END, now=NOW)
    work_off(NOW)
    again = backfill.backfill(hourly_in_new_york, DAY_START, DAY_END, now=NOW + timedelta(hours=1))
    work_off(NOW + timedelta(hours=1))
    assert (len(again.to_run), len(again.already_ran)) == (0, 24)
    assert Log.objects.count() == 24 and len(target.received) == 24


def test_a_slot_that_ran_on_schedule_is_not_run_again(hourly_in_new_york, target):
    slot = DAY_START + timedelta(hours=5)
    Endpoint.objects.filter(pk=hourly_in_new_york.pk).update(next_run_at=slot)
    for log in dispatcher.dispatch_due(slot).to_run:
        executor.execute(log.pk)
    plan = backfill.backfill(hourly_in_new_york, DAY_START, DAY_END, now=NOW)
    work_off(NOW)
    assert plan.already_ran == [slot] and len(plan.to_run) == 23
    assert Log.objects.filter(scheduled_for=slot).count() == 1
    assert len(target.received) == 24


def test_a_missed_slot_is_run_by_a_backfill_and_its_record_says_so(hourly_in_new_york):
    slot = DAY_START + timedelta(hours=2 + 1)  # 02:00 EST
    Log.objects.create(
        endpoint=hourly_in_new_york,
        scheduled_for=slot,
        state=Log.State.MISSED,
        reason="Missed while no worker was running (policy: skip).",
    )
    plan = backfill.backfill(hourly_in_new_york, slot, slot + timedelta(hours=1), by="bob", now=NOW)
    work_off(NOW)
    assert plan.reopened == [slot]
    log = Log.objects.get(scheduled_for=slot)
    assert (log.state, log.trigger, log.triggered_by) == ("success", "backfill", "bob")
    assert log.reason.startswith("Backfilled by bob (was missed: Missed while")


def test_with_overlap_skip_the_slots_run_one_after_another_oldest_first(make_endpoint, target):
    endpoint = make_endpoint(url=target.url(), cron_expression="0 * * * *", overlap_policy="skip")
    backfill.backfill(endpoint, DAY_START, DAY_START + timedelta(hours=3), now=NOW)
    first = dispatcher.dispatch_pending(NOW).to_run
    assert [log.scheduled_for for log in first] == [DAY_START]
    executor.execute(first[0].pk)
    second = dispatcher.dispatch_pending(NOW).to_run
    assert [log.scheduled_for for log in second] == [DAY_START + timedelta(hours=1)]


def test_with_overlap_allowed_the_slots_are_queued_together(make_endpoint, target):
    endpoint = make_endpoint(url=target.url(), cron_expression="0 * * * *", overlap_policy="allow")
    backfill.backfill(endpoint, DAY_START, DAY_START + timedelta(hours=3), now=NOW)
    assert len(dispatcher.dispatch_pending(NOW).to_run) == 3


def test_a_preview_writes_nothing(hourly_in_new_york):
    plan = backfill.plan(hourly_in_new_york, DAY_START, DAY_END, now=NOW)
    assert len(plan.to_run) == 24 and Log.objects.count() == 0


@pytest.mark.parametrize(
    ("start", "end", "field", "message"),
    [
        (DAY_END, DAY_START, "end", "after its start"),
        (DAY_START, NOW + timedelta(seconds=1), "end", "before now"),
    ],
)
def test_a_bad_range_is_refused_with_its_field(hourly_in_new_york, start, end, field, message):
    with pytest.raises(ValidationError) as raised:
        backfill.backfill(hourly_in_new_york, start, end, now=NOW)
    assert message in " ".join(raised.value.message_dict[field])
    assert Log.objects.count() == 0


def test_a_range_with_too_many_slots_is_refused(settings, hourly_in_new_york):
    settings.SCHEDULER_MAX_BACKFILL_SLOTS = 10
    with pytest.raises(ValidationError, match="more than 10 slots"):
        backfill.backfill(hourly_in_new_york, DAY_START, DAY_END, now=NOW)
    assert Log.objects.count() == 0


def test_paused_and_manual_endpoints_cannot_be_backfilled(make_endpoint):
    manual = make_endpoint(name="manual", schedule_type="none", cron_expression="")
    with pytest.raises(ValidationError, match="Only cron and interval"):
        backfill.plan(manual, DAY_START, DAY_END, now=NOW)
    paused = make_endpoint(name="paused")
    paused.pause(now=NOW, reason="maintenance")
    with pytest.raises(ValidationError, match="resume it to backfill"):
        backfill.plan(paused, DAY_START, DAY_END, now=NOW)
