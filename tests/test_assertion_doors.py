"""`assertions` through every door: job files (applyjobs, exportjobs round-trip), the Nightly
Scheduler jobs API (snake_case) and the Schedules API (seed 002's camelCase), each refusing a
bad row with the field named and saving nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from endpoints.models import Endpoint

pytest_plugins = ["tests.api_support"]
pytestmark = pytest.mark.django_db

ROWS = [
    {"source": "json", "property": "$.data.state", "comparison": "equals", "target": "ok"},
    {"source": "json", "property": "$.completedAt", "comparison": "not_equals", "target": None},
    {"source": "header", "property": "Content-Type", "comparison": "contains", "target": "json"},
    {"source": "status_code", "property": "", "comparison": "less_than", "target": 300},
    {"source": "duration_ms", "property": "", "comparison": "less_than", "target": 2000},
    {"source": "text", "property": "", "comparison": "matches", "target": "ok|done"},
    {"source": "json", "property": "$.items[?@.id > 2]", "comparison": "exists", "target": None},
]
BAD = [{"source": "json", "property": "$.data[", "comparison": "equals", "target": "ok"}]


def job(**fields) -> dict:
    return {"job_name": "export-status", "url": "http://127.0.0.1:9/ok", **fields}


def apply(tmp_path: Path, jobs: list[dict], problems: io.StringIO | None = None) -> str:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs), encoding="utf-8")
    out = io.StringIO()
    call_command("applyjobs", str(path), stdout=out, stderr=problems or io.StringIO())
    return out.getvalue()


def export() -> list[dict]:
    out = io.StringIO()
    call_command("exportjobs", stdout=out)
    return json.loads(out.getvalue())


def test_a_job_file_carries_assertions_and_exportjobs_round_trips_them(tmp_path):
    apply(tmp_path, [job(assertions=ROWS), job(job_name="plain")])
    first = export()

    Endpoint.objects.all().delete()
    apply(tmp_path, first)

    assert export() == first
    exported = {item["job_name"]: item for item in first}
    assert exported["export-status"]["assertions"] == ROWS
    assert "assertions" not in exported["plain"]  # a job without them reads as before
    assert Endpoint.objects.get(name="export-status").assertions == ROWS


def test_a_job_file_with_a_bad_jsonpath_is_refused_whole(tmp_path):
    problems = io.StringIO()

    with pytest.raises(CommandError, match="nothing was changed"):
        apply(tmp_path, [job(job_name="fine"), job(assertions=BAD)], problems)

    assert "Assertion 1: '$.data[' is not a valid JSONPath" in problems.getvalue()
    assert not Endpoint.objects.exists()


def test_a_handler_job_takes_no_assertions(tmp_path):
    handler_job = {"job_name": "h", "handler": "webhook:send", "payload": {"url": "https://x.io"}}

    problems = io.StringIO()

    with pytest.raises(CommandError):
        apply(tmp_path, [{**handler_job, "assertions": ROWS[:1]}], problems)

    assert "Only HTTP jobs take 'assertions'" in problems.getvalue()


# --- the Nightly Scheduler jobs API --------------------------------------------------------------

JOBS = "/api/v1/scheduler/jobs"


def test_the_jobs_api_takes_and_shows_assertions(as_editor):
    created = as_editor.post(JOBS, job(cron_expression="*/10 * * * *", assertions=ROWS), "json")
    listed = as_editor.get(JOBS).json()["data"][0]

    assert created.status_code == 201, created.json()
    assert created.json()["assertions"] == ROWS
    assert listed["assertions"] == ROWS


@pytest.mark.parametrize(
    "given,message",
    [
        (BAD, "Assertion 1: '$.data[' is not a valid JSONPath"),
        ([{"source": "json", "property": "$.a", "comparison": "like", "target": 1}], "one of"),
        ({"source": "json"}, "Must be a list of JSON objects."),
    ],
)
def test_the_jobs_api_refuses_an_assertion_it_cannot_check(as_editor, given, message):
    response = as_editor.post(JOBS, job(cron_expression="0 * * * *", assertions=given), "json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert message in response.json()["details"]["assertions"]
    assert not Endpoint.objects.exists()


# --- the Schedules API (seed 002) ----------------------------------------------------------------


@pytest.fixture
def scheduled(make_endpoint) -> Endpoint:
    return make_endpoint(name="daily-report", cron_expression="0 9 * * *")


def test_the_schedules_api_sets_shows_and_removes_assertions(as_editor, scheduled):
    url = f"/api/v1/schedules/sched-{scheduled.pk}"

    put = as_editor.put(url, {"assertions": ROWS[:2]}, format="json")
    shown = as_editor.get(url).json()
    removed = as_editor.put(url, {"assertions": []}, format="json")

    assert put.status_code == 200, put.json()
    assert shown["assertions"] == ROWS[:2]
    assert removed.json()["assertions"] == []
    scheduled.refresh_from_db()
    assert scheduled.assertions == []


def test_the_schedules_api_refuses_a_bad_row_naming_the_field(as_editor, scheduled):
    url = f"/api/v1/schedules/sched-{scheduled.pk}"

    response = as_editor.put(url, {"assertions": BAD, "timezone": "Europe/Paris"}, format="json")

    assert response.status_code == 400
    assert "is not a valid JSONPath" in response.json()["details"]["assertions"]
    scheduled.refresh_from_db()
    assert (scheduled.assertions, scheduled.timezone) == ([], "UTC")


def test_a_handler_workflow_takes_no_assertions_through_the_schedules_api(as_editor, make_endpoint):
    handler = make_endpoint(
        name="renewals", kind=Endpoint.Kind.HANDLER, url="", handler="webhook:send",
        payload={"url": "https://hooks.example.com/r"},
    )  # fmt: skip

    response = as_editor.put(
        f"/api/v1/schedules/sched-{handler.pk}", {"assertions": ROWS[:1]}, format="json"
    )

    assert response.status_code == 400
    assert "Only HTTP jobs take assertions" in response.json()["details"]["assertions"]
