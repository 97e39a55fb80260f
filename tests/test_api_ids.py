"""Public ids (DESIGN §10): every endpoint has a stable UUID — seed 002's `workflowId`, seed
003's action `id` — accepted wherever an id is; the numeric ids of before keep working."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from endpoints.models import Endpoint
from runs import actions, services
from runs.models import Log

pytest_plugins = ["tests.api_support"]

SCHEDULES = "/api/v1/schedules"
ACTIONS = "/api/v1/devtools/scheduled-actions"
SEED_WORKFLOW_ID = "550e8400-e29b-41d4-a716-446655440000"


@pytest.fixture
def workflow(make_endpoint, renewals_handler) -> Endpoint:
    return make_endpoint(
        name="daily-report",
        kind="handler",
        url="",
        handler="billing:check-renewals",
        schedule_type="none",
        cron_expression="",
        uuid=uuid.UUID(SEED_WORKFLOW_ID),
    )


def test_every_endpoint_gets_its_own_stable_uuid(make_endpoint):
    first, second = make_endpoint(name="a"), make_endpoint(name="b")
    assert isinstance(first.uuid, uuid.UUID) and first.uuid != second.uuid
    kept = first.uuid
    first.description = "edited"
    first.save()
    first.refresh_from_db()
    assert first.uuid == kept


@pytest.mark.parametrize(
    "given",
    [SEED_WORKFLOW_ID, SEED_WORKFLOW_ID.upper(), SEED_WORKFLOW_ID.replace("-", "")],
)
def test_an_endpoint_is_found_by_its_uuid_or_its_old_numeric_id(workflow, given):
    assert Endpoint.objects.by_public_id(given).get() == workflow
    assert Endpoint.objects.by_public_id(str(workflow.pk)).get() == workflow
    assert Endpoint.objects.by_public_id(workflow.pk).get() == workflow


@pytest.mark.parametrize("given", ["uuid-1", "", "9" * 40, "550e8400-e29b", None, "sched-1"])
def test_a_malformed_public_id_matches_nothing(workflow, given):
    assert not Endpoint.objects.by_public_id(given).exists()


def test_the_seed_002_create_example_is_accepted_verbatim(as_editor, workflow):
    response = as_editor.post(
        SCHEDULES,
        {"workflowId": SEED_WORKFLOW_ID, "cronExpression": "0 9 * * MON-FRI"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["workflowId"] == SEED_WORKFLOW_ID
    schedule_id = response.json()["id"]
    for path in (schedule_id, f"sched-{SEED_WORKFLOW_ID}", SEED_WORKFLOW_ID):
        shown = as_editor.get(f"{SCHEDULES}/{path}")
        assert shown.status_code == 200, path
        assert shown.json()["workflowId"] == SEED_WORKFLOW_ID
    listed = as_editor.get(SCHEDULES, {"workflowId": SEED_WORKFLOW_ID}).json()["data"]
    assert [item["workflowId"] for item in listed] == [SEED_WORKFLOW_ID]
    by_number = as_editor.get(SCHEDULES, {"workflowId": str(workflow.pk)}).json()["data"]
    assert [item["workflowId"] for item in by_number] == [SEED_WORKFLOW_ID]
    assert as_editor.get(SCHEDULES, {"workflowId": "uuid-1"}).json()["data"] == []


def test_an_update_may_name_its_own_workflow_by_uuid(as_editor, workflow):
    as_editor.post(
        SCHEDULES, {"workflowId": workflow.pk, "cronExpression": "@daily"}, format="json"
    )
    same = as_editor.put(
        f"{SCHEDULES}/{SEED_WORKFLOW_ID}", {"workflowId": SEED_WORKFLOW_ID}, format="json"
    )
    other = as_editor.put(
        f"{SCHEDULES}/{SEED_WORKFLOW_ID}", {"workflowId": str(uuid.uuid4())}, format="json"
    )
    assert same.status_code == 200 and other.status_code == 400


def test_an_unknown_workflow_uuid_is_a_400(as_editor, db):
    response = as_editor.post(
        SCHEDULES, {"workflowId": str(uuid.uuid4()), "cronExpression": "@daily"}, format="json"
    )
    assert response.status_code == 400 and "workflowId" in response.json()["details"]


def test_an_action_is_known_by_its_uuid_on_every_route(as_editor, renewals_handler):
    created = as_editor.post(
        ACTIONS,
        {"actionType": "billing:check-renewals", "payload": {"explode": True}},
        format="json",
    ).json()["data"]
    endpoint = Endpoint.objects.get()
    assert created["id"] == str(endpoint.uuid)

    assert as_editor.get(f"{ACTIONS}/{created['id']}").json()["data"]["id"] == created["id"]
    assert as_editor.get(f"{ACTIONS}/{endpoint.pk}").json()["data"]["id"] == created["id"]
    listed = as_editor.get(ACTIONS).json()["data"]["actions"]
    assert [action["id"] for action in listed] == [created["id"]]

    (log,) = services.run_due_inline(endpoint.next_run_at, budget_seconds=30, batch_size=10)
    assert log.state == "failed"
    retried = as_editor.post(f"{ACTIONS}/{created['id']}/retry")
    assert retried.status_code == 200 and retried.json()["data"]["id"] == created["id"]


def test_cancelling_an_action_by_its_uuid(as_editor, renewals_handler):
    from datetime import timedelta

    from django.utils import timezone

    later = timezone.now() + timedelta(hours=1)
    action_id = actions.schedule_action("billing:check-renewals", {}, later)
    public_id = str(Endpoint.objects.get(pk=action_id).uuid)

    response = as_editor.delete(f"{ACTIONS}/{public_id}")

    assert response.status_code == 200, response.json()
    assert response.json() == {"success": True, "message": "Action cancelled"}


@pytest.mark.parametrize("action_id", ["uuid-1", str(uuid.uuid4()), "new-uuid"])
def test_an_unknown_or_malformed_action_id_is_not_found(as_editor, db, action_id):
    for response in (
        as_editor.get(f"{ACTIONS}/{action_id}"),
        as_editor.delete(f"{ACTIONS}/{action_id}"),
        as_editor.post(f"{ACTIONS}/{action_id}/retry"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"


def test_the_cron_route_names_each_action_by_its_uuid(client, db, settings, renewals_handler):
    settings.CRON_SECRET = "s" * 32
    action_id = actions.schedule_action("billing:check-renewals", {})
    endpoint = Endpoint.objects.get(pk=action_id)

    body = client.get("/api/v1/cron/process", HTTP_X_CRON_SECRET="s" * 32).json()

    assert [result["actionId"] for result in body["results"]] == [str(endpoint.uuid)]
    assert Log.objects.get().state == "success"


def test_a_job_shows_its_uuid(as_viewer, make_endpoint):
    endpoint = make_endpoint(name="nightly")
    (job,) = as_viewer.get("/api/v1/scheduler/jobs").json()["data"]
    assert job["uuid"] == str(endpoint.uuid)


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_each_existing_endpoint_its_own_uuid():
    before, after = (
        [("endpoints", "0004_beyond_peers")],
        [("endpoints", "0007_endpoint_uuid_unique")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("endpoints", "Endpoint")
    for number in range(3):
        old.objects.create(name=f"before-uuids-{number}", url="http://127.0.0.1:9/ok")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    values = list(Endpoint.objects.values_list("uuid", flat=True))
    assert len(values) == 3 and None not in values and len(set(values)) == 3
