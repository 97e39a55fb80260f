"""What the API adds to the seed contracts: pauses with a reason and an end, backfill, runs as
of an instant, jitter and signing keys (write-only) — every addition optional, every bad input
a 400 with field details."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from calls import signing
from calls.masking import MASK
from endpoints.models import Endpoint
from runs.models import Log

pytest_plugins = ["tests.api_support"]

SCHEDULES = "/api/v1/schedules"
JOBS = "/api/v1/scheduler/jobs"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SECRET = signing.new_secret()
NEXT_SECRET = signing.new_secret()


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def hourly(make_endpoint) -> Endpoint:
    with time_machine.travel(datetime(2026, 10, 1, tzinfo=UTC), tick=False):
        return make_endpoint(
            name="hourly", cron_expression="0 * * * *", timezone="America/New_York"
        )


# --- pause with a reason and an end ------------------------------------------------------------


def test_disabling_takes_a_reason_and_an_end_and_shows_them(as_operator, hourly):
    response = as_operator.post(
        f"{SCHEDULES}/sched-{hourly.pk}/disable",
        {"reason": "vendor maintenance", "until": "2026-12-01T14:00:00Z"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["enabled"], body["pausedBy"], body["pauseReason"]) == (
        False,
        "otto-operator",
        "vendor maintenance",
    )
    assert body["pausedUntil"] == "2026-12-01T09:00:00-05:00"
    assert body["pauseDescription"] == (
        "Paused until 2026-12-01 09:00 EST by otto-operator: vendor maintenance"
    )
    hourly.refresh_from_db()
    assert hourly.paused_until == datetime(2026, 12, 1, 14, tzinfo=UTC)
    shown = as_operator.get(f"{SCHEDULES}/sched-{hourly.pk}").json()
    assert shown["pauseReason"] == "vendor maintenance" and shown["pausedBy"] == "otto-operator"
    job = as_operator.get(JOBS).json()["data"][0]
    assert job["paused_until"] == "2026-12-01T14:00:00Z" and job["paused_by"] == "otto-operator"
    assert job["disabled_reason"] == "vendor maintenance"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"until": "2026-11-01T00:00:00Z"}, "until"),  # in the past
        ({"until": "tomorrow"}, "until"),
        ({"until": "2026-12-01T09:00"}, "until"),  # no offset
        ({"reason": 42}, "reason"),
        ({"reason": "x" * 301}, "reason"),
        ({"whatever": 1}, "whatever"),
    ],
)
def test_a_bad_pause_is_a_400_naming_the_field_and_changes_nothing(
    as_operator, hourly, body, field
):
    response = as_operator.post(f"{SCHEDULES}/sched-{hourly.pk}/disable", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR" and field in response.json()["details"]
    hourly.refresh_from_db()
    assert hourly.enabled and hourly.paused_until is None


def test_disabling_with_no_body_still_answers_as_the_seed_does(as_operator, hourly):
    response = as_operator.post(f"{SCHEDULES}/sched-{hourly.pk}/disable")
    assert response.status_code == 200 and response.json()["enabled"] is False
    hourly.refresh_from_db()
    assert hourly.disabled_reason == "Disabled by otto-operator."


def test_a_viewer_cannot_disable(as_viewer, hourly):
    response = as_viewer.post(f"{SCHEDULES}/sched-{hourly.pk}/disable", {"reason": "x"})
    assert response.status_code == 403


# --- backfill ------------------------------------------------------------------------------------


def backfill(client, endpoint, **body):
    return client.post(f"{SCHEDULES}/sched-{endpoint.pk}/backfill", body, format="json")


def test_a_dry_run_backfill_lists_the_slots_and_writes_nothing(as_operator, hourly):
    # 2026-11-01 in New York has 25 hours, but 01:00 (which happens twice) is one slot.
    response = backfill(
        as_operator, hourly, start="2026-11-01T00:00", end="2026-11-02T00:00", dryRun=True
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["toRun"], body["alreadyRan"], body["created"]) == (24, 24, 0, 0)
    assert body["slots"][1] == {"scheduledTime": "2026-11-01T01:00:00-04:00", "action": "run"}
    assert body["slots"][2] == {"scheduledTime": "2026-11-01T02:00:00-05:00", "action": "run"}
    assert body["start"] == "2026-11-01T00:00:00-04:00"
    assert not Log.objects.exists()


def test_a_backfill_creates_the_planned_runs_once(as_operator, hourly):
    Log.objects.create(
        endpoint=hourly,
        scheduled_for=datetime(2026, 11, 1, 15, tzinfo=UTC),
        due_at=NOW,
        created_at=NOW,
        state="success",
    )
    Log.objects.create(
        endpoint=hourly,
        scheduled_for=datetime(2026, 11, 1, 16, tzinfo=UTC),
        due_at=NOW,
        created_at=NOW,
        state="missed",
    )
    body = {"start": "2026-11-01T14:00:00Z", "end": "2026-11-01T18:00:00Z"}

    first = backfill(as_operator, hourly, **body)
    second = backfill(as_operator, hourly, **body)

    assert first.status_code == 201
    assert (first.json()["toRun"], first.json()["alreadyRan"], first.json()["reopened"]) == (
        2,
        1,
        1,
    )
    assert first.json()["created"] == 3
    runs = Log.objects.filter(trigger="backfill")
    assert sorted(log.scheduled_for.hour for log in runs) == [14, 16, 17]
    assert {log.triggered_by for log in runs if log.scheduled_for.hour != 16} == {"otto-operator"}
    assert second.status_code == 200 and second.json()["created"] == 0
    assert Log.objects.filter(trigger="backfill").count() == 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({"start": "2026-11-01T00:00", "end": "2026-11-01T00:00"}, "end"),
        ({"start": "2026-11-01T00:00", "end": "2026-12-01T00:00"}, "end"),  # the future
        ({"start": "yesterday", "end": "2026-11-01T00:00"}, "start"),
        ({"start": "2026-11-01T00:00", "end": "99999-01-01"}, "end"),
        ({"start": "1900-01-01T00:00Z", "end": "2026-11-01T00:00"}, "start"),
        ({"start": "2020-01-01T00:00Z", "end": "2026-11-01T00:00"}, "end"),  # too many slots
        ({"start": 5, "end": "2026-11-01T00:00"}, "start"),
        ({"end": "2026-11-01T00:00"}, "start"),
        ({"start": "2026-11-01T00:00", "end": "2026-11-01T05:00", "dryRun": "yes"}, "dryRun"),
    ],
)
def test_a_bad_backfill_is_a_400_naming_the_field(as_operator, hourly, body, field):
    response = backfill(as_operator, hourly, **body)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR" and field in response.json()["details"]
    assert not Log.objects.exists()


def test_a_paused_or_manual_endpoint_cannot_be_backfilled(as_operator, hourly, make_endpoint):
    hourly.set_enabled(False, now=NOW)
    body = {"start": "2026-11-01T00:00", "end": "2026-11-01T05:00"}
    response = backfill(as_operator, hourly, **body)
    assert response.status_code == 400 and "enabled" in response.json()["details"]


def test_a_viewer_cannot_backfill(as_viewer, hourly):
    body = {"start": "2026-11-01T00:00", "end": "2026-11-01T05:00"}
    assert backfill(as_viewer, hourly, **body).status_code == 403
    assert not Log.objects.exists()


# --- run now as of an instant ------------------------------------------------------------------


def test_a_job_runs_as_of_a_chosen_instant(as_operator, hourly):
    response = as_operator.post(
        f"{JOBS}/hourly/trigger", {"as_of": "2026-10-31T09:00:00-04:00"}, format="json"
    )

    assert response.status_code == 200
    log = Log.objects.get()
    assert log.as_of == datetime(2026, 10, 31, 13, tzinfo=UTC)
    assert response.json()["as_of"] == "2026-10-31T13:00:00Z"
    assert response.json()["idempotency_key"] == log.idempotency_key != ""
    Log.objects.filter(pk=log.pk).update(state="success", started_at=NOW, finished_at=NOW)
    last = as_operator.get(f"{JOBS}/hourly/last-result").json()
    assert (
        last["as_of"] == "2026-10-31T13:00:00Z" and last["idempotency_key"] == log.idempotency_key
    )
    history = as_operator.get(f"{SCHEDULES}/sched-{hourly.pk}/history").json()["data"][0]
    assert history["asOf"] == "2026-10-31T09:00:00-04:00"
    assert history["idempotencyKey"] == log.idempotency_key


@pytest.mark.parametrize("as_of", ["yesterday", "2026-10-31T09:00", "3001-01-01T00:00:00Z", 7])
def test_a_bad_as_of_is_a_400(as_operator, hourly, as_of):
    response = as_operator.post(f"{JOBS}/hourly/trigger", {"as_of": as_of}, format="json")
    assert response.status_code == 400 and "as_of" in response.json()["details"]
    assert not Log.objects.exists()


# --- jitter and signing -------------------------------------------------------------------------


def test_jitter_and_signing_keys_are_set_through_the_schedules_api_and_never_shown(
    as_editor, hourly
):
    response = as_editor.put(
        f"{SCHEDULES}/sched-{hourly.pk}",
        {"jitterSeconds": 30, "signingSecret": SECRET, "signingSecretNext": NEXT_SECRET},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["jitterSeconds"], body["signingEnabled"], body["signingNextKeySet"]) == (
        30,
        True,
        True,
    )
    hourly.refresh_from_db()
    assert (hourly.jitter_seconds, hourly.signing_secret) == (30, SECRET)
    for path in (f"{SCHEDULES}/sched-{hourly.pk}", SCHEDULES, JOBS):
        text = as_editor.get(path).content.decode()
        assert SECRET not in text and NEXT_SECRET not in text
        assert 'signingSecret"' not in text and '"signing_secret"' not in text
    cleared = as_editor.put(
        f"{SCHEDULES}/sched-{hourly.pk}", {"signingSecretNext": ""}, format="json"
    )
    assert cleared.json()["signingNextKeySet"] is False


@pytest.mark.parametrize(
    "body, field",
    [
        ({"jitterSeconds": 3600}, "jitterSeconds"),  # not shorter than an hour between runs
        ({"jitterSeconds": -1}, "jitterSeconds"),
        ({"jitterSeconds": True}, "jitterSeconds"),
        ({"jitterSeconds": 10**30}, "jitterSeconds"),
        ({"signingSecret": 12}, "signingSecret"),
    ],
)
def test_bad_jitter_or_secret_is_a_400(as_editor, hourly, body, field):
    response = as_editor.put(f"{SCHEDULES}/sched-{hourly.pk}", body, format="json")
    assert response.status_code == 400 and field in response.json()["details"]


def test_a_job_is_created_with_jitter_and_a_signing_key_that_is_never_shown(as_editor):
    response = as_editor.post(
        JOBS,
        {
            "job_name": "signed",
            "cron_expression": "*/5 * * * *",
            "url": "http://127.0.0.1:9/hook",
            "jitter_seconds": 20,
            "signing_secret": SECRET,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["jitter_seconds"], body["signing_enabled"], body["signing_next_key_set"]) == (
        20,
        True,
        False,
    )
    assert SECRET not in json.dumps(body) and "signing_secret" not in body
    endpoint = Endpoint.objects.get(name="signed")
    assert endpoint.signing_secret == SECRET and endpoint.jitter_seconds == 20
    listed = as_editor.get(JOBS).content.decode()
    assert SECRET not in listed and MASK not in listed


def test_a_job_with_a_masked_signing_key_and_nothing_stored_is_a_400(as_editor):
    response = as_editor.post(
        JOBS,
        {"job_name": "x", "url": "http://127.0.0.1:9/hook", "signing_secret": MASK},
        format="json",
    )
    assert response.status_code == 400 and "signing_secret" in response.json()["details"]


def test_a_pause_until_an_instant_ends_on_its_own(as_operator, hourly):
    from runs import dispatcher

    until = NOW + timedelta(hours=1)
    as_operator.post(
        f"{SCHEDULES}/sched-{hourly.pk}/disable", {"until": until.isoformat()}, format="json"
    )
    dispatcher.resume_paused(until + timedelta(seconds=1))
    hourly.refresh_from_db()
    assert hourly.enabled and hourly.paused_until is None


def test_a_scheduled_action_shows_the_idempotency_key_of_its_latest_run(
    as_viewer, renewals_handler
):
    from runs import actions, verbs

    action_id = actions.schedule_action("billing:check-renewals", {}, NOW + timedelta(hours=1))
    endpoint = Endpoint.objects.get(pk=action_id)
    shown = as_viewer.get(f"/api/v1/devtools/scheduled-actions/{action_id}").json()["data"]
    assert shown["idempotencyKey"] is None

    log = verbs.trigger(endpoint, by="x")

    shown = as_viewer.get(f"/api/v1/devtools/scheduled-actions/{action_id}").json()["data"]
    assert shown["idempotencyKey"] == log.idempotency_key
