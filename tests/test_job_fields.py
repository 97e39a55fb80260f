"""One job field list (endpoints/job_fields.FIELDS) and one representation per API object: the
job files, exportjobs, the three APIs' answers and their OpenAPI schema all come from the same
declarations, so a field added once shows everywhere and an answer never says more (or less)
than its schema."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from api.job_object import JOB, JobRequest
from endpoints import job_fields
from endpoints.jobs import JOB_FIELDS, POLICY_FIELDS, endpoint_to_job
from endpoints.models import Endpoint
from runs import actions

pytest_plugins = ["tests.api_support"]

KINDS = {
    "http": {"url": "http://127.0.0.1:9/ok", "jitter_seconds": 5, "secret_headers": ["X-A"]},
    "handler": {"kind": "handler", "url": "", "handler": "webhook:send", "payload": {"a": 1}},
    "heartbeat": {"kind": "heartbeat", "url": "", "grace_seconds": 60},
}


@pytest.fixture(params=sorted(KINDS))
def endpoint(request, make_endpoint) -> Endpoint:
    return make_endpoint(name=f"a-{request.param}", **KINDS[request.param])


@pytest.fixture
def document(as_viewer) -> dict:
    return as_viewer.get("/api/v1/schema/", {"format": "json"}).json()["components"]["schemas"]


def test_the_job_files_and_the_job_api_take_the_fields_of_the_one_declaration():
    declared = [field.name for field in job_fields.FIELDS]
    assert [*JOB_FIELDS, *POLICY_FIELDS] == declared
    assert list(JobRequest().fields) == declared


def test_the_schema_documents_every_declared_field_a_job_answer_shows(document):
    shown = set(document["Job"]["properties"])
    secret = {field.name for field in job_fields.FIELDS if field.secret}
    assert {field.name for field in job_fields.FIELDS} - secret <= shown
    assert set(document["JobRequest"]["properties"]) == {f.name for f in job_fields.FIELDS}


def test_a_job_answer_shows_the_exported_job_and_what_its_schema_requires(
    endpoint, as_viewer, document
):
    answer = as_viewer.get("/api/v1/scheduler/jobs").json()["data"][0]

    schema = document["Job"]
    assert set(answer) <= set(schema["properties"])
    assert set(schema["required"]) <= set(answer)
    exported = json.loads(json.dumps(endpoint_to_job(endpoint)))
    assert {key: answer[key] for key in exported if key in answer} == {
        key: value for key, value in exported.items() if key in answer
    }
    assert answer == json.loads(json.dumps(JOB(endpoint)))


def test_exportjobs_writes_the_job_objects_of_the_declaration(endpoint):
    out = io.StringIO()
    call_command("exportjobs", stdout=out)

    (job,) = json.loads(out.getvalue())
    assert job == json.loads(json.dumps(endpoint_to_job(endpoint)))
    assert list(job) == [f.name for f in job_fields.FIELDS if f.name in job]


@pytest.mark.parametrize(
    ("path", "component", "unwrap"),
    [
        ("/api/v1/schedules", "Schedule", lambda body: body["data"][0]),
        (
            "/api/v1/devtools/scheduled-actions",
            "Action",
            lambda body: body["data"]["actions"][0],
        ),
    ],
)
def test_a_schedule_and_an_action_show_exactly_their_schema(
    path, component, unwrap, endpoint, as_viewer, document
):
    actions.schedule_action("webhook:send", {"url": "http://127.0.0.1:9/"}, recurring_interval=60)

    answer = unwrap(as_viewer.get(path).json())

    schema = document[component]
    assert set(answer) <= set(schema["properties"])
    assert set(schema["required"]) <= set(answer)
    assert list(answer) == [key for key in schema["properties"] if key in answer]


# Seed 002's own request fields; every other one is a job field in camelCase.
SEED_002_FIELDS = {"workflowId", "cronExpression", "timezone", "enabled", "inputData", "runAfter"}


def test_the_schedules_api_takes_its_job_fields_from_the_one_declaration():
    from api.schedules import JOB_FIELDS, ScheduleRequest

    fields = ScheduleRequest().fields
    assert set(fields) - SEED_002_FIELDS == set(JOB_FIELDS)
    for camel, name in JOB_FIELDS.items():
        declared = job_fields.BY_NAME[name]
        assert (fields[camel].help_text, fields[camel].write_only) == (
            declared.help or None, declared.secret,
        )  # fmt: skip


@pytest.mark.django_db
def test_a_job_fields_bounds_hold_at_the_schedules_api(superuser, make_endpoint):
    from tests.api_support import client_for

    path = f"/api/v1/schedules/sched-{make_endpoint().pk}"
    answer = client_for(superuser).put(
        path, {"flowKey": "k" * 101, "notifyAfterFailures": 0, "jitterSeconds": "5"}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["details"] == {
        "flowKey": "Ensure this field has no more than 100 characters.",
        "notifyAfterFailures": "Ensure this value is greater than or equal to 1.",
        "jitterSeconds": "Must be a whole number.",
    }
