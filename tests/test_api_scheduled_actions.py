"""Seed 003, "Scheduled Actions" DevTools routes and the Python API behind them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from endpoints.models import Endpoint
from runs import actions, services, verbs
from runs.models import Log

pytest_plugins = ["tests.api_support"]

ACTIONS = "/api/v1/devtools/scheduled-actions"
SEED_NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
SEED_PAYLOAD = {
    "eventType": "task:created",
    "entityType": "task",
    "entityId": "task-uuid",
    "data": {"title": "New Task"},
}


@pytest.fixture(autouse=True)
def at_seed_time():
    with time_machine.travel(SEED_NOW, tick=False) as traveller:
        yield traveller


def public_id(action_id: str) -> str:
    """The id the API shows for an action the Python API returned."""
    return str(Endpoint.objects.get(pk=action_id).uuid)


def run_due_now() -> list[Log]:
    return services.run_due_inline(datetime.now(UTC), budget_seconds=30, batch_size=100)


def test_creating_the_seed_example_answers_as_the_seed_does(as_editor, editor):
    seed_request = {
        "actionType": "webhook:send",
        "payload": {**SEED_PAYLOAD, "eventType": "test:event"},
        "teamId": "team-uuid",
        "scheduledAt": "2024-01-15T12:00:00Z",
    }

    response = as_editor.post(ACTIONS, seed_request, format="json")

    assert response.status_code == 201
    endpoint = Endpoint.objects.get()
    assert response.json() == {
        "success": True,
        "data": {"id": str(endpoint.uuid), "actionType": "webhook:send", "status": "pending"},
    }
    assert (endpoint.kind, endpoint.handler, endpoint.schedule_type) == (
        "handler",
        "webhook:send",
        "once",
    )
    assert endpoint.next_run_at == datetime(2024, 1, 15, 12, tzinfo=UTC)
    assert endpoint.created_by == editor


def test_the_list_answers_as_the_seed_does(as_viewer, renewals_handler):
    action_id = actions.schedule_action("webhook:send", SEED_PAYLOAD)

    response = as_viewer.get(ACTIONS)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["data"]["pagination"] == {"total": 1, "page": 1, "limit": 20, "totalPages": 1}
    assert {"webhook:send", "billing:check-renewals"} <= set(
        body["data"]["meta"]["registeredActionTypes"]
    )
    (action,) = body["data"]["actions"]
    assert {key: action[key] for key in SEED_LIST_FIELDS} == {
        "id": public_id(action_id),
        "actionType": "webhook:send",
        "status": "pending",
        "payload": SEED_PAYLOAD,
        "teamId": None,
        "scheduledAt": "2024-01-15T10:30:00Z",
        "startedAt": None,
        "completedAt": None,
        "errorMessage": None,
        "attempts": 0,
        "recurringInterval": None,
        "createdAt": "2024-01-15T10:30:00Z",
        "updatedAt": "2024-01-15T10:30:00Z",
    }


SEED_LIST_FIELDS = (
    "id",
    "actionType",
    "status",
    "payload",
    "teamId",
    "scheduledAt",
    "startedAt",
    "completedAt",
    "errorMessage",
    "attempts",
    "recurringInterval",
    "createdAt",
    "updatedAt",
)
SEED_DETAIL_FIELDS = tuple(f for f in SEED_LIST_FIELDS if f != "attempts") + ("retryCount",)


def test_a_completed_action_shows_its_run_as_the_seed_detail_does(as_viewer, at_seed_time, target):
    action_id = actions.schedule_action("webhook:send", {"url": target.url("/ok"), "n": 1})
    at_seed_time.shift(timedelta(seconds=60))
    (log,) = run_due_now()

    response = as_viewer.get(f"{ACTIONS}/{action_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert {key: body["data"][key] for key in SEED_DETAIL_FIELDS} == {
        "id": public_id(action_id),
        "actionType": "webhook:send",
        "status": "completed",
        "payload": {"url": target.url("/ok"), "n": 1},
        "teamId": None,
        "scheduledAt": "2024-01-15T10:30:00Z",
        "startedAt": "2024-01-15T10:31:00Z",
        "completedAt": "2024-01-15T10:31:00Z",
        "errorMessage": None,
        "retryCount": 0,
        "recurringInterval": None,
        "createdAt": "2024-01-15T10:30:00Z",
        "updatedAt": "2024-01-15T10:31:00Z",
    }
    assert body["data"]["attempts"] == 1 and log.state == "success"
    assert target.received[0].json() == {"n": 1}


def test_the_list_filters_by_status_and_type_and_pages(as_viewer, renewals_handler):
    failing = actions.schedule_action("billing:check-renewals", {"explode": True})
    renewing = actions.schedule_action("billing:check-renewals", {})
    for number in range(3):
        actions.schedule_action("webhook:send", {"n": number}, SEED_NOW + timedelta(hours=1))
    run_due_now()

    def ids(**query):
        shown = [a["id"] for a in as_viewer.get(ACTIONS, query).json()["data"]["actions"]]
        return [str(Endpoint.objects.get(uuid=action).pk) for action in shown]

    assert ids(status="failed") == [failing]
    assert ids(status="completed") == [renewing]
    assert len(ids(status="pending")) == 3 and ids(status="running") == []
    assert ids(action_type="billing:check-renewals") == [renewing, failing]
    assert ids(status="pending", action_type="billing:check-renewals") == []
    page_two = as_viewer.get(ACTIONS, {"page": 2, "limit": 2}).json()["data"]
    assert page_two["pagination"] == {"total": 5, "page": 2, "limit": 2, "totalPages": 3}
    assert as_viewer.get(ACTIONS, {"limit": 1000}).json()["data"]["pagination"]["limit"] == 100
    bad = as_viewer.get(ACTIONS, {"status": "exploded"})
    assert bad.status_code == 400 and bad.json()["success"] is False
    assert list(bad.json()["details"]) == ["status"]


def test_a_recurring_action_runs_every_interval_from_its_first_time(as_editor):
    response = as_editor.post(
        ACTIONS,
        {
            "actionType": "webhook:send",
            "payload": {},
            "recurringInterval": "daily",
            "scheduledAt": "2024-01-16T00:00:00Z",
        },
        format="json",
    )
    action_id = response.json()["data"]["id"]

    shown = as_editor.get(f"{ACTIONS}/{action_id}").json()["data"]

    assert shown["recurringInterval"] == "daily" and shown["scheduledAt"] == "2024-01-16T00:00:00Z"
    endpoint = Endpoint.objects.get(uuid=action_id)
    assert (endpoint.schedule_type, endpoint.interval_seconds) == ("interval", 86400)
    assert endpoint.next_runs(SEED_NOW, 2) == [
        datetime(2024, 1, 16, tzinfo=UTC),
        datetime(2024, 1, 17, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"actionType": "nope:unknown"}, "actionType"),
        ({"actionType": 3}, "actionType"),
        ({"payload": "text"}, "payload"),
        ({"payload": [1]}, "payload"),
        ({"scheduledAt": "2024-01-15T12:00:00"}, "scheduledAt"),
        ({"scheduledAt": "soon"}, "scheduledAt"),
        ({"scheduledAt": "9999-12-31T23:59:59-05:00"}, "scheduledAt"),
        ({"scheduledAt": "2024-02-30T12:00:00Z"}, "scheduledAt"),
        ({"actionType": "webhook:\ud800"}, "actionType"),
        ({"payload": {"k": "\ud800"}}, "payload.k"),
        ({"payload": {"k": "a\x00"}}, "payload.k"),
        ({"recurringInterval": "fortnightly"}, "recurringInterval"),
        ({"recurringInterval": 0}, "recurringInterval"),
        ({"recurringInterval": True}, "recurringInterval"),
        ({"teamId": 5}, "teamId"),
        ({"priority": "high"}, "priority"),
    ],
)
def test_bad_input_is_a_400_with_field_details_and_saves_nothing(as_editor, change, field):
    raw = json.dumps({"actionType": "webhook:send", "payload": {}, **change})

    response = as_editor.generic("POST", ACTIONS, raw, content_type="application/json")

    assert response.status_code == 400, response.json()
    assert response.json()["success"] is False and response.json()["code"] == "VALIDATION_ERROR"
    assert field in response.json()["details"]
    assert not Endpoint.objects.exists()


def test_a_missing_payload_is_a_400(as_editor):
    response = as_editor.post(ACTIONS, {"actionType": "webhook:send"}, format="json")
    assert response.status_code == 400 and "payload" in response.json()["details"]


def test_retrying_a_failed_action_queues_it_again(as_operator, operator, renewals_handler):
    action_id = actions.schedule_action("billing:check-renewals", {"explode": True})
    run_due_now()
    assert as_operator.get(f"{ACTIONS}/{action_id}").json()["data"]["errorMessage"] == (
        "RuntimeError: ledger unavailable"
    )

    response = as_operator.post(f"{ACTIONS}/{action_id}/retry")

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "message": "Action queued for retry",
        "data": {"id": public_id(action_id), "status": "pending", "retryCount": 1},
    }
    attempt = Log.objects.order_by("-id").first()
    assert (attempt.trigger, attempt.attempt, attempt.triggered_by) == (
        "retry",
        2,
        operator.username,
    )


def test_only_a_failed_action_can_be_retried(as_operator):
    action_id = actions.schedule_action("webhook:send", {})
    response = as_operator.post(f"{ACTIONS}/{action_id}/retry")
    assert response.status_code == 409
    assert response.json()["success"] is False and response.json()["code"] == "CONFLICT"


def test_cancelling_a_pending_action_answers_as_the_seed_does(as_operator):
    action_id = actions.schedule_action("webhook:send", {}, SEED_NOW + timedelta(hours=1))

    response = as_operator.delete(f"{ACTIONS}/{action_id}")

    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Action cancelled"}
    shown = as_operator.get(f"{ACTIONS}/{action_id}").json()["data"]
    assert shown["status"] == "cancelled"
    assert not run_due_now()  # it never runs
    again = as_operator.delete(f"{ACTIONS}/{action_id}")
    assert again.status_code == 409 and again.json()["code"] == "CONFLICT"


def test_cancelling_a_queued_run_cancels_the_run(as_operator):
    action_id = actions.schedule_action("webhook:send", {})
    verbs.trigger(Endpoint.objects.get(pk=action_id))
    assert as_operator.delete(f"{ACTIONS}/{action_id}").status_code == 200
    assert Log.objects.get().state == "cancelled"


@pytest.mark.parametrize("action_id", ["999", "uuid-123", "9" * 40])
@pytest.mark.parametrize(("method", "suffix"), [("get", ""), ("delete", ""), ("post", "/retry")])
def test_an_unknown_action_is_not_found(as_editor, db, action_id, method, suffix):
    response = getattr(as_editor, method)(f"{ACTIONS}/{action_id}{suffix}")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Action not found", "code": "NOT_FOUND"}


def test_an_http_job_is_not_an_action(as_viewer, make_endpoint):
    endpoint = make_endpoint(name="plain-http")
    assert as_viewer.get(f"{ACTIONS}/{endpoint.pk}").status_code == 404
    assert as_viewer.get(ACTIONS).json()["data"]["actions"] == []


# --- the Python API (DESIGN §4) ---


def test_schedule_action_with_a_dedup_key_schedules_once_per_type(renewals_handler, db):
    first = actions.schedule_action("webhook:send", {"a": 1}, dedup_key="task-123-created")
    again = actions.schedule_action("webhook:send", {"a": 2}, dedup_key="task-123-created")
    other_type = actions.schedule_action("billing:check-renewals", {}, dedup_key="task-123-created")

    assert first == again and isinstance(first, str)
    assert other_type != first
    assert Endpoint.objects.get(pk=first).payload == {"a": 1}


def test_schedule_recurring_action_always_returns_a_new_id(db):
    first = actions.schedule_recurring_action("webhook:send", {}, "hourly")
    second = actions.schedule_recurring_action("webhook:send", {}, "15m")
    assert first != second
    assert Endpoint.objects.get(pk=second).interval_seconds == 900


def test_schedule_action_names_the_bad_parameter(db):
    with pytest.raises(ValidationError) as raised:
        actions.schedule_action("nope", "not a dict", scheduled_at=datetime(2024, 1, 1))
    assert set(raised.value.message_dict) == {"scheduled_at"}
    with pytest.raises(ValidationError) as raised:
        actions.schedule_action("nope", "not a dict")
    assert set(raised.value.message_dict) == {"action_type", "payload"}
    assert not Endpoint.objects.exists()


def test_cancel_scheduled_action_is_true_only_while_something_is_left_to_run(db):
    action_id = actions.schedule_action("webhook:send", {}, SEED_NOW + timedelta(minutes=5))
    assert actions.cancel_scheduled_action(action_id) is True
    assert actions.cancel_scheduled_action(action_id) is False
    assert actions.cancel_scheduled_action("404") is False
