"""Seed 001, "Nightly Scheduler": /api/v1/scheduler/jobs — every route, every example field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine

from calls.masking import MASK
from endpoints.models import Endpoint
from runs import executor
from runs.models import Log

pytest_plugins = ["tests.api_support"]

JOBS = "/api/v1/scheduler/jobs"
SEED_NOW = datetime(2026, 3, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def at_seed_time():
    with time_machine.travel(SEED_NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def nightly(make_endpoint, at_seed_time):
    """The two jobs of seed 001's list example, each last run at 02:00 / 06:00 that day."""
    jobs = []
    for name, cron, hour in (
        ("certification-expiry-nightly", "0 2 * * *", 2),
        ("pause-auto-lift-check", "0 6 * * *", 6),
    ):
        endpoint = make_endpoint(name=name, cron_expression=cron)
        last_run = datetime(2026, 3, 26, hour, tzinfo=UTC)
        Endpoint.objects.filter(pk=endpoint.pk).update(last_run_at=last_run, last_status="success")
        jobs.append(endpoint)
    return jobs


def test_the_list_shows_each_job_with_the_seed_fields_and_pagination(as_viewer, nightly):
    response = as_viewer.get(JOBS)

    assert response.status_code == 200
    body = response.json()
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 2}
    first, second = body["data"]
    assert {key: first[key] for key in SEED_LIST_FIELDS} == {
        "job_name": "certification-expiry-nightly",
        "cron_expression": "0 2 * * *",
        "is_active": True,
        "last_run_at": "2026-03-26T02:00:00Z",
        "last_run_status": "success",
        "next_run_at": "2026-03-27T02:00:00Z",
    }
    assert (second["job_name"], second["last_run_at"], second["next_run_at"]) == (
        "pause-auto-lift-check",
        "2026-03-26T06:00:00Z",
        "2026-03-27T06:00:00Z",
    )


SEED_LIST_FIELDS = (
    "job_name",
    "cron_expression",
    "is_active",
    "last_run_at",
    "last_run_status",
    "next_run_at",
)


def test_the_list_pages_by_page_and_limit_up_to_100(as_viewer, make_endpoint):
    for number in range(25):
        make_endpoint(name=f"job-{number:02d}")

    page_two = as_viewer.get(JOBS, {"page": 2, "limit": 10}).json()
    too_many = as_viewer.get(JOBS, {"limit": 500}).json()
    past_the_end = as_viewer.get(JOBS, {"page": 9}).json()

    assert [job["job_name"] for job in page_two["data"]] == [f"job-{n}" for n in range(10, 20)]
    assert page_two["pagination"] == {"page": 2, "limit": 10, "total": 25}
    assert too_many["pagination"]["limit"] == 100 and len(too_many["data"]) == 25
    assert past_the_end["data"] == [] and past_the_end["pagination"]["total"] == 25


@pytest.mark.parametrize("query", [{"page": 0}, {"limit": "ten"}, {"page": "-1"}, {"limit": "²"}])
def test_a_bad_page_or_limit_is_a_validation_error(as_viewer, query):
    response = as_viewer.get(JOBS, query)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert set(response.json()["details"]) == set(query)


def test_registering_the_seed_example_answers_as_the_seed_does(
    as_editor, editor, report_handler, at_seed_time
):
    seed_request = {
        "job_name": "weekly-expiry-summary-report",
        "cron_expression": "0 8 * * 1",
        "handler": "generateWeeklyExpiryReport",
        "is_active": True,
    }

    response = as_editor.post(JOBS, seed_request, format="json")

    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in SEED_CREATED_FIELDS} == {
        "job_name": "weekly-expiry-summary-report",
        "cron_expression": "0 8 * * 1",
        "is_active": True,
        "created_at": "2026-03-26T09:00:00Z",
        "next_run_at": "2026-03-30T08:00:00Z",
    }
    endpoint = Endpoint.objects.get(name="weekly-expiry-summary-report")
    assert (endpoint.kind, endpoint.handler, endpoint.created_by) == (
        "handler",
        "generateWeeklyExpiryReport",
        editor,
    )


SEED_CREATED_FIELDS = ("job_name", "cron_expression", "is_active", "created_at", "next_run_at")


def test_an_http_job_with_policies_is_shown_back_with_its_secrets_masked(as_editor, target):
    job = {
        "job_name": "billing-sync",
        "interval_seconds": 300,
        "timezone": "Europe/Paris",
        "url": target.url("/ok"),
        "method": "post",
        "headers": {"Authorization": "Bearer s3cret", "X-Signature": "sig-1", "X-Plain": "p"},
        "secret_headers": ["X-Signature"],
        "body": {"full": True},
        "timeout_seconds": 10,
        "expected_status": [200, 204],
        "max_attempts": 5,
        "retry_backoff_seconds": 2.5,
        "overlap_policy": "allow",
        "missed_policy": "skip",
        "max_runs": 7,
        "ends_at": "2030-01-01T00:00:00Z",
    }
    assert as_editor.post(JOBS, job, format="json").status_code == 201

    shown = as_editor.get(JOBS).json()["data"][0]

    assert shown["headers"] == {"Authorization": MASK, "X-Signature": MASK, "X-Plain": "p"}
    assert "s3cret" not in json.dumps(shown) and "sig-1" not in json.dumps(shown)
    assert shown["cron_expression"] is None and shown["interval_seconds"] == 300
    assert (shown["method"], shown["body"], shown["expected_status"]) == (
        "POST",
        '{"full":true}',
        "200,204",
    )
    assert (shown["timeout_seconds"], shown["max_attempts"], shown["max_runs"]) == (10, 5, 7)
    assert (shown["overlap_policy"], shown["missed_policy"]) == ("allow", "skip")
    assert shown["retry_backoff_seconds"] == 2.5 and shown["ends_at"] == "2030-01-01T00:00:00Z"
    stored = Endpoint.objects.get(name="billing-sync")
    assert stored.headers["Authorization"] == "Bearer s3cret"  # masked only when shown


def test_an_inactive_job_has_no_next_run(as_editor, target):
    job = {
        "job_name": "paused",
        "cron_expression": "@daily",
        "url": target.url(),
        "is_active": False,
    }
    body = as_editor.post(JOBS, job, format="json").json()
    assert body["is_active"] is False and body["next_run_at"] is None
    assert Endpoint.objects.get(name="paused").enabled is False


VALID = {"job_name": "valid-job", "cron_expression": "0 2 * * *", "url": "https://example.com/"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron_expression": "61 * * * *"}, "cron_expression"),
        ({"cron_expression": "0 0 30 2 *"}, "cron_expression"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"url": "ftp://example.com/file"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"body": "x" * (256 * 1024 + 1)}, "body"),
        ({"headers": {"X-Big": "v" * 9000}}, "headers"),
        ({"headers": {"Bad Name": "v"}}, "headers"),
        ({"headers": {"X-Split": "a\r\nInjected: yes"}}, "headers"),
        ({"headers": ["Authorization: x"]}, "headers"),
        ({"is_active": "yes"}, "is_active"),
        ({"timeout_seconds": "10"}, "timeout_seconds"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"job_name": "has spaces"}, "job_name"),
        ({"job_name": 42}, "job_name"),
        ({"job_name": "x" * 101}, "job_name"),
        ({"colour": "blue"}, "colour"),
        ({"overlap_policy": "sometimes"}, "overlap_policy"),
        ({"retry_backoff_seconds": True}, "retry_backoff_seconds"),
        ({"ends_at": "tomorrow"}, "ends_at"),
        ({"max_runs": 0}, "max_runs"),
        ({"handler": "no.such.handler", "url": None}, "handler"),
        ({"payload": {"a": 1}}, "payload"),
        ({"interval_seconds": 60}, "interval_seconds"),
        ({"job_name": "nul\x00name"}, "job_name"),
        ({"headers": {"X-Nul": "a\x00b"}}, "headers.X-Nul"),
        ({"description": ["\x00"]}, "description.0"),
        ({"url": "https://\udcff.example.com/"}, "url"),
        ({"run_at": "9999-12-31T23:59:59-05:00"}, "run_at"),
        ({"run_at": "0001-01-01T00:00:00+05:00"}, "run_at"),
        ({"run_at": "2024-02-30T00:00:00Z"}, "run_at"),
        ({"starts_at": "9999-12-31T23:00:00Z"}, "starts_at"),
    ],
)
def test_bad_input_is_a_400_with_field_details_and_saves_nothing(as_editor, change, field):
    # json.dumps escapes what UTF-8 cannot carry (a lone surrogate), as a hostile client may.
    raw = json.dumps({**VALID, **change})
    response = as_editor.generic("POST", JOBS, raw, content_type="application/json")

    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and body["error"].startswith("Invalid")
    assert field in body["details"] and isinstance(body["details"][field], str)
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ('{"job_name": ', "application/json"),
        ("[1, 2]", "application/json"),
        ("null", "application/json"),
        ('{"job_name": NaN}', "application/json"),
        ("[" * 100_000 + "]" * 100_000, "application/json"),
        ("job_name=x", "application/x-www-form-urlencoded"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(as_editor, raw, content_type):
    response = as_editor.generic("POST", JOBS, raw, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR" and response.json()["details"]
    assert not Endpoint.objects.exists()


def test_a_job_name_already_taken_is_a_conflict(as_editor, make_endpoint):
    make_endpoint(name="valid-job")
    response = as_editor.post(JOBS, VALID, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "error": "A job named 'valid-job' already exists",
        "code": "CONFLICT",
    }


def test_triggering_queues_a_run_and_answers_as_the_seed_does(
    as_operator, nightly, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as handed_to_broker:
        response = as_operator.post(
            f"{JOBS}/certification-expiry-nightly/trigger",
            {"triggered_by": "coordinator-007", "dry_run": False},
            format="json",
        )

    assert response.status_code == 200
    log = Log.objects.get()
    assert response.json() == {
        "job_name": "certification-expiry-nightly",
        "triggered_at": "2026-03-26T09:00:00Z",
        "run_id": log.run_id,
        "status": "running",
        "as_of": None,  # our additions after the seed's fields
        "idempotency_key": log.idempotency_key,
    }
    assert log.run_id.startswith("run-") and len(handed_to_broker) == 1
    assert (log.trigger, log.triggered_by, log.dry_run, log.state) == (
        "api",
        "coordinator-007",
        False,
        "queued",
    )


def test_a_trigger_without_a_body_is_a_run_by_the_caller(as_operator, operator, nightly):
    response = as_operator.post(f"{JOBS}/pause-auto-lift-check/trigger")
    assert response.status_code == 200
    assert Log.objects.get().triggered_by == operator.username


@pytest.mark.parametrize(
    "body", [{"dry_run": "false"}, {"triggered_by": 7}, {"who": "me"}, {"triggered_by": "x" * 151}]
)
def test_a_bad_trigger_body_is_a_400_and_runs_nothing(as_operator, nightly, body):
    response = as_operator.post(f"{JOBS}/pause-auto-lift-check/trigger", body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
    assert not Log.objects.exists()


def test_the_last_result_is_the_latest_execution_with_its_summary_never_a_dry_run(
    as_operator, make_endpoint, report_handler
):
    make_endpoint(
        name="certification-expiry-nightly",
        kind="handler",
        url="",
        handler="generateWeeklyExpiryReport",
    )
    trigger = f"{JOBS}/certification-expiry-nightly/trigger"
    run_id = as_operator.post(trigger, {"dry_run": False}, format="json").json()["run_id"]
    executor.execute(Log.objects.by_run_id(run_id).get().pk)
    dry_id = as_operator.post(trigger, {"dry_run": True}, format="json").json()["run_id"]
    executor.execute(Log.objects.by_run_id(dry_id).get().pk)  # later, but a rehearsal
    as_operator.post(trigger)  # queued, not executed: not a result yet

    response = as_operator.get(f"{JOBS}/certification-expiry-nightly/last-result")

    assert response.status_code == 200
    body = response.json()
    log = Log.objects.by_run_id(run_id).get()
    assert body == {
        "job_name": "certification-expiry-nightly",
        "run_id": run_id,
        "started_at": iso(log.started_at),
        "completed_at": iso(log.finished_at),
        "status": "success",
        "result_summary": {"mentors_checked": 87, "expired_found": 2, "errors": 0},
        "dry_run": False,
        "duration_ms": log.duration_ms,
        "error": None,
        "trigger": "api",
        "as_of": None,
        "idempotency_key": log.idempotency_key,
        "triggered_by": "otto-operator",
        "requested_by": "otto-operator's token",
    }
    assert report_handler == [({}, False), ({}, True)]


def test_a_job_that_only_had_dry_runs_has_no_last_result(
    as_operator, make_endpoint, report_handler
):
    make_endpoint(name="rehearsed", kind="handler", url="", handler="generateWeeklyExpiryReport")
    dry_id = as_operator.post(f"{JOBS}/rehearsed/trigger", {"dry_run": True}, format="json")
    executor.execute(Log.objects.by_run_id(dry_id.json()["run_id"]).get().pk)

    response = as_operator.get(f"{JOBS}/rehearsed/last-result")

    assert response.status_code == 404
    assert response.json() == {"error": "This job has not run yet", "code": "NOT_FOUND"}


def test_the_last_result_of_a_failed_http_call_names_the_error(as_operator, make_endpoint, target):
    make_endpoint(name="flaky", url=target.url("/status/500"), max_attempts=1)
    run_id = as_operator.post(f"{JOBS}/flaky/trigger").json()["run_id"]
    executor.execute(Log.objects.by_run_id(run_id).get().pk)

    body = as_operator.get(f"{JOBS}/flaky/last-result").json()

    assert body["status"] == "failed" and "500" in body["error"]
    assert body["completed_at"] is not None and target.received


def test_a_job_that_never_ran_has_no_last_result(as_viewer, nightly):
    response = as_viewer.get(f"{JOBS}/pause-auto-lift-check/last-result")
    assert response.status_code == 404
    assert response.json() == {"error": "This job has not run yet", "code": "NOT_FOUND"}


@pytest.mark.parametrize(
    ("method", "suffix"), [("post", "/trigger"), ("get", "/last-result"), ("delete", "")]
)
def test_an_unknown_job_is_not_found(as_editor, db, method, suffix):
    response = getattr(as_editor, method)(f"{JOBS}/no-such-job{suffix}")
    assert response.status_code == 404
    assert response.json() == {"error": "Job not found", "code": "NOT_FOUND"}


def test_deleting_deregisters_the_job_as_the_seed_shows(as_editor, nightly):
    response = as_editor.delete(f"{JOBS}/pause-auto-lift-check")

    assert response.status_code == 200
    assert response.json() == {
        "deleted": True,
        "job_name": "pause-auto-lift-check",
        "cancelled_at": "2026-03-26T09:00:00Z",
    }
    assert list(Endpoint.objects.values_list("name", flat=True)) == ["certification-expiry-nightly"]
    assert as_editor.delete(f"{JOBS}/pause-auto-lift-check").status_code == 404


def iso(moment: datetime) -> str:
    """As seed 001 writes instants: whole seconds, Z."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.mark.parametrize("path", [f"{JOBS}/nul%00name/last-result", f"{JOBS}?page=1%00"])
def test_a_nul_character_in_the_address_is_a_400(as_viewer, db, path):
    response = as_viewer.get(path)
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
