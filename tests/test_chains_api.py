"""run_after at the three APIs: the job API (snake_case), the Schedules API and the Scheduled
Actions API (camelCase `runAfter`): taken, shown, and refused with the field named."""

from __future__ import annotations

import pytest

from endpoints.models import Endpoint

pytest_plugins = ["tests.api_support"]

JOBS = "/api/v1/scheduler/jobs"
SCHEDULES = "/api/v1/schedules"
ACTIONS = "/api/v1/devtools/scheduled-actions"


@pytest.fixture
def extract(make_endpoint):
    return make_endpoint(name="extract")


def test_the_job_api_takes_and_shows_run_after(as_editor, extract):
    job = {
        "job_name": "load",
        "url": "http://127.0.0.1:9/?t={{ upstream.result.token }}",
        "run_after": [{"job_name": "extract", "on": "failure"}],
    }
    created = as_editor.post(JOBS, job, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["run_after"] == [{"job_name": "extract", "on": "failure"}]
    jobs = as_editor.get(JOBS).json()["data"]
    assert {j["job_name"]: j["run_after"] for j in jobs} == {
        "extract": [],
        "load": [{"job_name": "extract", "on": "failure"}],
    }
    assert Endpoint.objects.get(name="load").upstream_links.get().upstream == extract


@pytest.mark.parametrize(
    ("run_after", "message"),
    [
        ([{"job_name": "nope"}], "No job named 'nope'."),
        ([{"job_name": "extract", "on": "later"}], "'on' is one of success, failure, finished"),
        ("extract", "A list of"),
    ],
)
def test_the_job_api_refuses_bad_run_after_with_the_field_named(
    as_editor, extract, run_after, message
):
    job = {"job_name": "load", "url": "http://127.0.0.1:9/", "run_after": run_after}
    response = as_editor.post(JOBS, job, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and message in str(body["details"]["run_after"])
    assert not Endpoint.objects.filter(name="load").exists()


def test_the_schedules_api_takes_and_shows_run_after_in_camel_case(
    as_editor, extract, make_endpoint
):
    workflow = make_endpoint(name="report", schedule_type=Endpoint.ScheduleType.NONE)
    body = {
        "workflowId": str(workflow.uuid),
        "cronExpression": "0 9 * * *",
        "runAfter": [{"jobName": "extract", "on": "finished"}],
    }
    response = as_editor.post(SCHEDULES, body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["runAfter"] == [{"jobName": "extract", "on": "finished"}]
    workflow.refresh_from_db()
    assert workflow.run_after == [{"job_name": "extract", "on": "finished"}]
    listed = as_editor.get(SCHEDULES).json()["data"]
    assert {s["workflowName"]: s["runAfter"] for s in listed} == {
        "extract": [],
        "report": [{"jobName": "extract", "on": "finished"}],
    }


@pytest.mark.parametrize(
    ("run_after", "field"),
    [
        ([{"jobName": "nope"}], "runAfter"),
        ([{"jobName": "extract", "on": "later"}], "runAfter.0.on"),
        ([{"job_name": "extract"}], "runAfter.0.job_name"),
    ],
)
def test_the_schedules_api_refuses_bad_run_after_with_the_field_named(
    as_editor, extract, make_endpoint, run_after, field
):
    workflow = make_endpoint(name="report", schedule_type=Endpoint.ScheduleType.NONE)
    body = {"workflowId": str(workflow.uuid), "cronExpression": "0 9 * * *", "runAfter": run_after}
    response = as_editor.post(SCHEDULES, body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"]
    workflow.refresh_from_db()
    assert workflow.run_after == [] and workflow.schedule_type == "none"


def _post_action(client, job_name: str):
    action = {
        "actionType": "webhook:send",
        "payload": {"url": "http://127.0.0.1:9/hook"},
        "runAfter": [{"jobName": job_name}],
    }
    return client.post(ACTIONS, action, format="json")


def test_a_scheduled_action_may_run_after_a_job(as_editor, extract):
    response = _post_action(as_editor, "extract")
    assert response.status_code == 201, response.json()
    action_id = response.json()["data"]["id"]
    shown = as_editor.get(f"{ACTIONS}/{action_id}").json()["data"]
    assert shown["runAfter"] == [{"jobName": "extract", "on": "success"}]


def test_a_scheduled_action_after_an_unknown_job_is_refused(as_editor, db):
    response = _post_action(as_editor, "nope")
    assert response.status_code == 400
    assert "runAfter" in response.json()["details"]
    assert not Endpoint.objects.exists()


def test_a_schedule_update_that_makes_a_cycle_is_refused_naming_it(
    as_editor, extract, make_endpoint
):
    make_endpoint(name="report", run_after=["extract"])
    response = as_editor.put(
        f"{SCHEDULES}/sched-{extract.pk}", {"runAfter": [{"jobName": "report"}]}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert response.json()["details"]["runAfter"] == (
        "That makes a cycle: extract → report → extract."
    )
    extract.refresh_from_db()
    assert extract.run_after == []
