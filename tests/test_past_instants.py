"""Past instants (issue 14, item 4): one rule at every door, and a dispatch lag that measures the
dispatcher rather than the instant a user chose.

The rule: a one-time instant must be in the future when it is set on an active job — a past one is
refused, saying so — except seed 003's scheduledAt, whose contract says "default: now": a past or
missing one runs now. A job that is not active may keep a past instant (a one-time job that has
run, as exportjobs writes it).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from dashboard.views.status import dispatch_lag
from endpoints import schedules
from endpoints.jobs import apply_job
from endpoints.models import Endpoint
from runs import actions, dispatcher, executor
from runs.models import Log
from runs.observability import dispatch_lags

pytest_plugins = ["tests.api_support"]

PAST = "2020-01-01T00:00:00Z"
REFUSAL = (
    "2020-01-01T00:00:00Z is in the past: a one-time run must be in the future "
    "(to run the job now, trigger it)."
)


def once(**fields) -> dict:
    return {"job_name": "launch", "url": "https://example.com/launch", "run_at": PAST, **fields}


# --- the rule, at each door ---------------------------------------------------------------------


def test_the_rule_says_what_is_wrong_and_what_to_do():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert schedules.one_time_problem(datetime(2020, 1, 1, tzinfo=UTC), now) == REFUSAL
    assert schedules.one_time_problem(now, now) is not None  # "now" has passed by the first slot
    assert schedules.one_time_problem(now + timedelta(seconds=1), now) is None
    assert schedules.one_time_problem(None, now) is None


def test_a_job_file_with_a_past_one_time_instant_is_refused_and_changes_nothing(db, tmp_path):
    (tmp_path / "jobs.json").write_text(json.dumps([once()]))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("applyjobs", str(tmp_path / "jobs.json"), stdout=io.StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [f"job 1 (launch): run_at: {REFUSAL}"]
    assert not Endpoint.objects.exists()


def test_the_job_api_refuses_a_past_run_at_with_a_validation_error(as_editor):
    answer = as_editor.post("/api/v1/scheduler/jobs", once(), format="json")
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["details"] == {"run_at": REFUSAL}
    assert not Endpoint.objects.exists()


def test_a_future_run_at_is_accepted_and_scheduled(db):
    soon = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    endpoint, _ = apply_job(once(run_at=soon))
    endpoint.save()
    assert endpoint.next_run_at is not None


def test_an_inactive_job_may_keep_a_past_instant(db):
    endpoint, _ = apply_job(once(is_active=False))
    assert endpoint.run_at == datetime(2020, 1, 1, tzinfo=UTC)


def test_turning_on_a_one_time_job_whose_instant_passed_is_refused(db):
    endpoint, _ = apply_job(once(is_active=False))
    endpoint.save()
    with pytest.raises(ValidationError) as caught:
        apply_job(once(), Endpoint.objects.get())
    assert caught.value.message_dict == {"run_at": [REFUSAL]}


def test_a_one_time_job_that_has_run_survives_export_wipe_and_apply(db, make_endpoint, tmp_path):
    at = timezone.now() + timedelta(minutes=5)
    make_endpoint(name="launch", schedule_type="once", cron_expression="", run_at=at)
    dispatcher.dispatch_due(at)  # dispatched: it is done, and disables itself
    call_command("exportjobs", "--output", str(tmp_path / "jobs.json"), stdout=io.StringIO())
    Endpoint.objects.all().delete()
    out = io.StringIO()
    call_command("applyjobs", str(tmp_path / "jobs.json"), stdout=out)
    assert out.getvalue().splitlines() == ["created launch"]
    assert not Endpoint.objects.get().enabled


def test_reapplying_an_unchanged_job_whose_instant_passed_is_not_refused(db, make_endpoint):
    at = timezone.now() + timedelta(minutes=5)
    endpoint = make_endpoint(name="launch", schedule_type="once", cron_expression="", run_at=at)
    Endpoint.objects.filter(pk=endpoint.pk).update(run_at=datetime(2020, 1, 1, tzinfo=UTC))
    job = {"job_name": "launch", "url": endpoint.url, "run_at": PAST, "is_active": True}
    _, changes = apply_job(job, Endpoint.objects.get())  # a re-apply of what is stored
    assert "run_at" not in changes


def test_a_scheduled_action_in_the_past_runs_now_as_its_contract_says(db, renewals_handler):
    action_id = actions.schedule_action(
        "billing:check-renewals", {}, scheduled_at=datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    )
    now = timezone.now()
    assert [log.endpoint_id for log in dispatcher.dispatch_due(now).to_run] == [int(action_id)]


# --- the dispatch lag ---------------------------------------------------------------------------


def _start(logs: list[Log], at: datetime) -> None:
    assert executor.claim([log.pk for log in logs], at)


def test_an_action_scheduled_years_ago_does_not_count_as_dispatch_lag(db, renewals_handler):
    actions.schedule_action(
        "billing:check-renewals", {}, scheduled_at=datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    )
    now = timezone.now()
    _start(dispatcher.dispatch_due(now).to_run, now + timedelta(milliseconds=40))
    later = now + timedelta(seconds=1)
    assert dispatch_lag(later).get("max", 0) < 1000
    assert max(dispatch_lags(later - timedelta(minutes=5)), default=0) < 1


def test_an_action_scheduled_moments_ago_lags_from_when_it_was_asked_for(db, renewals_handler):
    asked = timezone.now()
    actions.schedule_action(
        "billing:check-renewals", {}, scheduled_at=asked - timedelta(seconds=20)
    )
    created = Endpoint.objects.get().created_at
    _start(dispatcher.dispatch_due(created).to_run, created + timedelta(milliseconds=40))
    lag = dispatch_lag(created + timedelta(seconds=1))
    assert lag["runs"] == 1 and lag["max"] == 40


def test_a_late_dispatcher_is_measured_and_a_chosen_jitter_is_not(db, make_endpoint):
    slot = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    make_endpoint(name="late", cron_expression="0 9 * * *")
    spread = make_endpoint(name="spread", cron_expression="0 9 * * *", jitter_seconds=600)
    Endpoint.objects.update(next_run_at=slot)
    late = dispatcher.dispatch_due(slot + timedelta(seconds=2)).to_run
    _start(late, slot + timedelta(milliseconds=2300))  # the dispatcher came 2.3 s late
    # The jittered one waits for its own start, slot + its jitter, and starts 50 ms after it.
    intended = slot + spread.jitter_for(slot)
    Log.objects.filter(endpoint=spread).update(
        state="running", started_at=intended + timedelta(milliseconds=50)
    )
    lag = dispatch_lag(slot + timedelta(minutes=30))
    assert (lag["runs"], lag["max"]) == (2, 2300)
    assert dispatch_lags(slot) == [0.05, 2.3]
