"""Every example request of the three seed documents (shared/seeds/001-003), sent verbatim,
each answer compared field by field with the seed's example response: every field the example
has is there, with the same JSON type and the same format (instant with Z or with an offset,
whole seconds or milliseconds, uuid, run id…). Fields we add are allowed.

What still differs is listed in DEVIATIONS (each with its reason, as docs/api.md's "Where the
answers differ from the seeds" says); the test fails when a deviation appears *or* disappears,
so the list stays true. The handlers the seeds name are registered here as stand-ins when no
installed app registers them.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from endpoints import registry
from endpoints.models import Endpoint
from runs import actions, executor, services
from runs.models import Log

pytest_plugins = ["tests.api_support"]

# --- the comparison ---------------------------------------------------------------------------

FORMATS = [
    ("instant, Z, seconds", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
    ("instant, Z, milliseconds", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"),
    ("instant, offset, seconds", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"),
    ("instant, offset, milliseconds", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"),
    ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    ("run id", r"run-\d{4,}"),
    ("schedule id", r"sched-\d+"),
    ("execution id", r"exec-\d+"),
]
# Example values that stand for a uuid (seed 003 writes its action ids as placeholders).
UUID_PLACEHOLDERS = {"uuid-1", "uuid-2", "uuid-3", "uuid-123", "new-uuid"}
# Free-form objects: what a handler returned, what a caller sent; only their type is compared.
FREE_FORM = {"result_summary", "payload", "json", "details"}


def format_of(value: str) -> str:
    if value in UUID_PLACEHOLDERS:
        return "uuid"
    for name, pattern in FORMATS:
        if re.fullmatch(pattern, value):
            return name
    return "text"


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def differences(example: Any, actual: Any, path: str = "", also: tuple = ()) -> list[str]:
    """'path: what differs' for each field of `example` that `actual` lacks or shows otherwise.

    An item of a list is compared with the example item of its status; `also` adds example
    items from elsewhere in the seed (its detail example shows a completed action)."""
    if kind_of(example) != kind_of(actual):
        return [f"{path}: {kind_of(actual)}, the seed has {kind_of(example)}"]
    if isinstance(example, str) and format_of(example) != format_of(actual):
        return [f"{path}: {format_of(actual)} {actual!r}, the seed has {format_of(example)}"]
    if isinstance(example, dict) and path.rsplit(".", 1)[-1] not in FREE_FORM:
        found = []
        for key, value in example.items():
            if key not in actual:
                found.append(f"{path}.{key}: missing")
            else:
                found += differences(value, actual[key], f"{path}.{key}", also)
        return found
    if isinstance(example, list) and example and actual:
        found = []
        for item in actual:
            found += differences(closest([*example, *also], item), item, f"{path}[]", also)
        return sorted(set(found))
    return []


def closest(examples: list, item: Any) -> Any:
    """The example item most like `item` (same status or success), else the first."""
    if isinstance(item, dict):
        for key in ("status", "success"):
            for example in examples:
                if isinstance(example, dict) and key in item and example.get(key) == item[key]:
                    return example
    return examples[0]


class Contract:
    """Collects each answer's differences from its example, by seed and request."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def check(self, name: str, response, example: str | None, status: int, also=()) -> Any:
        assert response.status_code == status, (name, response.status_code, response.content)
        if example is None:
            assert response.content == b"", name
            return None
        body = response.json()
        for difference in differences(json.loads(example), body, name, tuple(also)):
            self.found.setdefault(name, []).append(difference)
        return body


DEVIATIONS = {
    "002 history": [
        "002 history.data[].executionId: run id 'run-{n}', the seed has execution id",
    ],
}


@pytest.fixture
def contract():
    found = Contract()
    yield found


def assert_deviations(contract: Contract, seed: str) -> None:
    expected = {name: lines for name, lines in DEVIATIONS.items() if name.startswith(seed)}
    shown = {
        name: sorted({re.sub(r"run-\d+", "run-{n}", line) for line in lines})
        for name, lines in contract.found.items()
    }
    assert shown == expected


@pytest.fixture
def stand_ins():
    """The handlers the seeds name, registered unless an installed app has them."""
    added = []

    def stand_in(name: str, result: dict):
        if registry.get_handler(name) is None:
            registry.handler(name)(lambda payload, *, dry_run, log: dict(result))
            added.append(name)

    stand_in("generateWeeklyExpiryReport", {"reports_sent": 1})
    stand_in("certification:expiry-check", SEED_001_SUMMARY)
    stand_in("billing:check-renewals", {"renewals_checked": 0})
    yield
    for name in added:
        registry.unregister(name)


# --- seed 001 ---------------------------------------------------------------------------------

SEED_001_SUMMARY = {
    "mentors_checked": 87,
    "expired_found": 2,
    "auto_paused": 2,
    "reminders_sent": 5,
    "errors": 0,
}
JOBS = "/api/v1/scheduler/jobs"
SEED_001_LIST = """{"data": [
 {"job_name": "certification-expiry-nightly", "cron_expression": "0 2 * * *", "is_active": true,
  "last_run_at": "2026-03-26T02:00:00Z", "last_run_status": "success",
  "next_run_at": "2026-03-27T02:00:00Z"},
 {"job_name": "pause-auto-lift-check", "cron_expression": "0 6 * * *", "is_active": true,
  "last_run_at": "2026-03-26T06:00:00Z", "last_run_status": "success",
  "next_run_at": "2026-03-27T06:00:00Z"}],
 "pagination": {"page": 1, "limit": 20, "total": 4}}"""
SEED_001_CREATE = """{"job_name": "weekly-expiry-summary-report", "cron_expression": "0 8 * * 1",
"handler": "generateWeeklyExpiryReport", "is_active": true}"""
SEED_001_CREATED = """{"job_name": "weekly-expiry-summary-report", "cron_expression": "0 8 * * 1",
"is_active": true, "created_at": "2026-03-26T09:00:00Z", "next_run_at": "2026-03-30T08:00:00Z"}"""
SEED_001_TRIGGER = """{"triggered_by": "coordinator-007", "dry_run": false}"""
SEED_001_TRIGGERED = """{"job_name": "certification-expiry-nightly",
"triggered_at": "2026-03-26T10:15:00Z", "run_id": "run-0094", "status": "running"}"""
SEED_001_LAST_RESULT = """{"job_name": "certification-expiry-nightly", "run_id": "run-0093",
"started_at": "2026-03-26T02:00:00Z", "completed_at": "2026-03-26T02:00:01Z", "status": "success",
"result_summary": {"mentors_checked": 87, "expired_found": 2, "auto_paused": 2,
"reminders_sent": 5, "errors": 0}}"""
SEED_001_DELETED = """{"deleted": true, "job_name": "weekly-expiry-summary-report",
"cancelled_at": "2026-03-26T11:00:00Z"}"""


def at(moment: datetime):
    return time_machine.travel(moment, tick=False)


def test_seed_001_nightly_scheduler(editor, token_client, make_endpoint, contract, stand_ins):
    client = token_client(editor)
    with at(datetime(2026, 3, 25, 12, tzinfo=UTC)):
        for name, cron in (
            ("certification-expiry-nightly", "0 2 * * *"),
            ("pause-auto-lift-check", "0 6 * * *"),
        ):
            make_endpoint(
                name=name,
                kind="handler",
                url="",
                handler="certification:expiry-check",
                cron_expression=cron,
            )
    for hour in (2, 6):  # each runs at its slot, by the inline dispatcher
        with at(datetime(2026, 3, 26, hour, tzinfo=UTC)):
            (log,) = services.run_due_inline(datetime.now(UTC), budget_seconds=30, batch_size=10)
            assert log.state == "success"

    with at(datetime(2026, 3, 26, 9, tzinfo=UTC)):
        listed = contract.check("001 list", client.get(JOBS), SEED_001_LIST, 200)
        raw = SEED_001_CREATE
        created = client.generic("POST", JOBS, raw, content_type="application/json")
        created = contract.check("001 create", created, SEED_001_CREATED, 201)
    assert created == {**created, **json.loads(SEED_001_CREATED)}  # the very values
    assert [job["job_name"] for job in listed["data"]] == [
        "certification-expiry-nightly",
        "pause-auto-lift-check",
    ]

    with at(datetime(2026, 3, 26, 10, 15, tzinfo=UTC)):
        trigger = f"{JOBS}/certification-expiry-nightly/trigger"
        response = client.generic(
            "POST", trigger, SEED_001_TRIGGER, content_type="application/json"
        )
        triggered = contract.check("001 trigger", response, SEED_001_TRIGGERED, 200)
        executor.execute(Log.objects.by_run_id(triggered["run_id"]).get().pk)
        response = client.get(f"{JOBS}/certification-expiry-nightly/last-result")
        result = contract.check("001 last-result", response, SEED_001_LAST_RESULT, 200)
    assert triggered["triggered_at"] == "2026-03-26T10:15:00Z"
    assert result["run_id"] == triggered["run_id"] and result["status"] == "success"
    if registry.get_handler("certification:expiry-check") is not None:
        assert result["result_summary"] == SEED_001_SUMMARY

    with at(datetime(2026, 3, 26, 11, tzinfo=UTC)):
        response = client.delete(f"{JOBS}/weekly-expiry-summary-report")
        deleted = contract.check("001 delete", response, SEED_001_DELETED, 200)
    assert deleted == json.loads(SEED_001_DELETED)
    assert_deviations(contract, "001")


# --- seed 002 ---------------------------------------------------------------------------------

SCHEDULES = "/api/v1/schedules"
SEED_002_WORKFLOW = "550e8400-e29b-41d4-a716-446655440000"
SEED_002_LIST = """{"data": [{"id": "sched-123",
 "workflowId": "550e8400-e29b-41d4-a716-446655440000", "workflowName": "Daily Report",
 "cronExpression": "0 9 * * MON-FRI", "timezone": "America/New_York", "enabled": true,
 "nextRun": "2024-01-27T09:00:00-05:00", "lastRun": "2024-01-26T09:00:00-05:00",
 "lastStatus": "success", "createdAt": "2024-01-01T00:00:00Z"}], "total": 5}"""
SEED_002_GET = """{"id": "sched-123", "workflowId": "550e8400-e29b-41d4-a716-446655440000",
 "workflowName": "Daily Report", "cronExpression": "0 9 * * MON-FRI",
 "timezone": "America/New_York", "enabled": true,
 "inputData": [{"json": {"reportType": "daily"}}],
 "nextRun": "2024-01-27T09:00:00-05:00", "lastRun": "2024-01-26T09:00:00-05:00",
 "lastStatus": "success", "runCount": 25, "successCount": 24, "failureCount": 1,
 "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-26T09:00:00Z"}"""
SEED_002_CREATE = """{
    "workflowId": "550e8400-e29b-41d4-a716-446655440000",
    "cronExpression": "0 9 * * MON-FRI",
    "timezone": "America/New_York",
    "enabled": true,
    "inputData": [{"json": {"reportType": "daily"}}]
  }"""
SEED_002_CREATED = """{"id": "sched-456", "workflowId": "550e8400-e29b-41d4-a716-446655440000",
 "cronExpression": "0 9 * * MON-FRI", "timezone": "America/New_York", "enabled": true,
 "nextRun": "2024-01-27T09:00:00-05:00", "createdAt": "2024-01-26T16:00:00Z"}"""
SEED_002_UPDATE = """{
    "cronExpression": "0 8 * * MON-FRI",
    "timezone": "Europe/London"
  }"""
SEED_002_ENABLED = (
    """{"id": "sched-123", "enabled": true, "nextRun": "2024-01-27T09:00:00-05:00"}"""
)
SEED_002_DISABLED = """{"id": "sched-123", "enabled": false, "nextRun": null}"""
SEED_002_HISTORY = """{"data": [
 {"executionId": "exec-100", "scheduledTime": "2024-01-26T09:00:00-05:00",
  "startedAt": "2024-01-26T09:00:00.500-05:00", "finishedAt": "2024-01-26T09:00:02.500-05:00",
  "status": "success", "duration": 2000},
 {"executionId": "exec-99", "scheduledTime": "2024-01-25T09:00:00-05:00",
  "startedAt": "2024-01-25T09:00:00.500-05:00", "finishedAt": "2024-01-25T09:00:01.000-05:00",
  "status": "failed", "duration": 500, "error": "HTTP request timeout"}], "total": 25}"""
SEED_002_INVALID = """{"error": "Invalid cron expression", "code": "VALIDATION_ERROR",
 "details": {"cronExpression": "Invalid format"}}"""
SEED_002_NOT_FOUND = """{"error": "Schedule not found", "code": "NOT_FOUND"}"""
SEED_002_CONFLICT = """{"error": "Schedule already exists for this workflow", "code": "CONFLICT"}"""


def test_seed_002_schedules(editor, token_client, make_endpoint, target, contract):
    client = token_client(editor)
    with at(datetime(2024, 1, 1, tzinfo=UTC)):
        # An HTTP workflow whose first call fails (500) and the next succeeds: real outcomes.
        make_endpoint(
            name="Daily-Report",
            url=target.url("/flaky/1"),
            schedule_type="none",
            cron_expression="",
            max_attempts=1,
            uuid=uuid.UUID(SEED_002_WORKFLOW),
        )

    def send(method: str, path: str, body: str | None = None):
        return client.generic(method, path, body or "", content_type="application/json")

    with at(datetime(2024, 1, 26, 16, tzinfo=UTC)):
        invalid = SEED_002_CREATE.replace("0 9 * * MON-FRI", "61 9 * * MON-FRI")
        contract.check("002 invalid", send("POST", SCHEDULES, invalid), SEED_002_INVALID, 400)
        created = contract.check(
            "002 create", send("POST", SCHEDULES, SEED_002_CREATE), SEED_002_CREATED, 201
        )
        contract.check(
            "002 conflict", send("POST", SCHEDULES, SEED_002_CREATE), SEED_002_CONFLICT, 409
        )
    schedule = f"{SCHEDULES}/{created['id']}"
    for day in (29, 30):  # Monday fails (HTTP 500), Tuesday succeeds
        with at(datetime(2024, 1, day, 14, tzinfo=UTC)):
            services.run_due_inline(datetime.now(UTC), budget_seconds=30, batch_size=10)

    with at(datetime(2024, 1, 30, 16, tzinfo=UTC)):
        listed = contract.check("002 list", client.get(SCHEDULES), SEED_002_LIST, 200)
        shown = contract.check("002 get", client.get(schedule), SEED_002_GET, 200)
        history = client.get(f"{schedule}/history?limit=10")
        history = contract.check("002 history", history, SEED_002_HISTORY, 200)
        contract.check(
            "002 get unknown", client.get(f"{SCHEDULES}/sched-123"), SEED_002_NOT_FOUND, 404
        )
        contract.check("002 update", send("PUT", schedule, SEED_002_UPDATE), SEED_002_GET, 200)
        disabled = contract.check(
            "002 disable", send("POST", f"{schedule}/disable"), SEED_002_DISABLED, 200
        )
        enabled = contract.check(
            "002 enable", send("POST", f"{schedule}/enable"), SEED_002_ENABLED, 200
        )
        contract.check("002 delete", send("DELETE", schedule), None, 204)

    assert created["workflowId"] == SEED_002_WORKFLOW and listed["total"] == 1
    assert shown["inputData"] == [{"json": {"reportType": "daily"}}]
    assert (shown["runCount"], shown["successCount"], shown["failureCount"]) == (2, 1, 1)
    assert history["total"] == 2
    assert [entry["status"] for entry in history["data"]] == ["success", "failed"]
    assert (disabled["nextRun"], enabled["enabled"]) == (None, True)
    assert_deviations(contract, "002")


# --- seed 003 ---------------------------------------------------------------------------------

ACTIONS = "/api/v1/devtools/scheduled-actions"
CRON = "/api/v1/cron/process"
SECRET = "your-secure-random-string-min-32-chars"
SEED_003_PROCESSED = """{"success": true, "processed": 3, "results": [
 {"actionId": "uuid-1", "actionType": "webhook:send", "success": true, "duration": 245},
 {"actionId": "uuid-2", "actionType": "billing:check-renewals", "success": true,
  "duration": 1230},
 {"actionId": "uuid-3", "actionType": "webhook:send", "success": false,
  "error": "Timeout after 30000ms"}], "duration": 1520}"""
SEED_003_NOTHING = """{"success": true, "processed": 0, "results": [], "duration": 12}"""
SEED_003_UNAUTHORIZED = """{"error": "Unauthorized", "message": "Invalid or missing cron secret"}"""
SEED_003_LIST = """{"success": true, "data": {"actions": [{"id": "uuid-1",
 "actionType": "webhook:send", "status": "pending",
 "payload": {"eventType": "task:created", "entityType": "task", "entityId": "task-uuid",
   "data": {"title": "New Task"}},
 "teamId": "team-uuid", "scheduledAt": "2024-01-15T10:30:00Z", "startedAt": null,
 "completedAt": null, "errorMessage": null, "attempts": 0, "recurringInterval": null,
 "createdAt": "2024-01-15T10:30:00Z", "updatedAt": "2024-01-15T10:30:00Z"}],
 "pagination": {"total": 50, "page": 1, "limit": 20, "totalPages": 3},
 "meta": {"registeredActionTypes": ["webhook:send", "billing:check-renewals"]}}}"""
SEED_003_DETAIL = """{"success": true, "data": {"id": "uuid-123", "actionType": "webhook:send",
 "status": "completed",
 "payload": {"eventType": "task:created", "entityType": "task", "entityId": "task-uuid",
   "data": {"title": "New Task"}},
 "teamId": "team-uuid", "scheduledAt": "2024-01-15T10:30:00Z",
 "startedAt": "2024-01-15T10:31:00Z", "completedAt": "2024-01-15T10:31:01Z",
 "errorMessage": null, "retryCount": 0, "recurringInterval": null,
 "createdAt": "2024-01-15T10:30:00Z", "updatedAt": "2024-01-15T10:31:01Z"}}"""
SEED_003_CREATE = """{
    "actionType": "webhook:send",
    "payload": {
      "eventType": "test:event",
      "entityType": "test",
      "entityId": "test-123",
      "data": { "message": "Test webhook" }
    },
    "teamId": "team-uuid",
    "scheduledAt": "2024-01-15T12:00:00Z"
  }"""
SEED_003_CREATED = """{"success": true, "data": {"id": "new-uuid", "actionType": "webhook:send",
 "status": "pending"}}"""
SEED_003_RETRIED = """{"success": true, "message": "Action queued for retry",
 "data": {"id": "uuid-123", "status": "pending", "retryCount": 1}}"""
SEED_003_CANCELLED = """{"success": true, "message": "Action cancelled"}"""
SEED_003_ERROR = """{"success": false, "error": "Not Found"}"""


def test_seed_003_scheduled_actions(
    editor, token_client, client, settings, target, contract, stand_ins
):
    settings.CRON_SECRET = SECRET
    bearer, api_key = token_client(editor), token_client(editor, header="x-api-key")
    with at(datetime(2024, 1, 15, 10, 30, tzinfo=UTC)):
        created = bearer.generic("POST", ACTIONS, SEED_003_CREATE, content_type="application/json")
        created = contract.check("003 create", created, SEED_003_CREATED, 201)
        listed = contract.check("003 list", bearer.get(ACTIONS), SEED_003_LIST, 200)
        pending = api_key.get(f"{ACTIONS}?status=pending")
        contract.check("003 list pending", pending, SEED_003_LIST, 200)
        # The seed's task:created webhook, with a url to deliver to: it will succeed.
        delivered = bearer.post(
            ACTIONS,
            {
                "actionType": "webhook:send",
                "payload": {**json.loads(SEED_003_LIST)["data"]["actions"][0]["payload"],
                            "url": target.url("/ok")},
                "teamId": "team-uuid",
                "scheduledAt": "2024-01-15T11:00:00Z",
            },
            format="json",
        ).json()["data"]["id"]  # fmt: skip
        # The seed's programmatic API: a recurring renewal check, a webhook for later.
        actions.schedule_recurring_action(
            "billing:check-renewals", {}, "daily", scheduled_at=datetime(2024, 1, 1, tzinfo=UTC)
        )
        later = actions.schedule_action("webhook:send", {}, datetime(2024, 1, 15, 14, tzinfo=UTC))

    with at(datetime(2024, 1, 15, 12, 0, 30, tzinfo=UTC)):
        processed = client.get(CRON, HTTP_X_CRON_SECRET=SECRET)
        processed = contract.check("003 cron process", processed, SEED_003_PROCESSED, 200)
        nothing = client.get(CRON, HTTP_X_CRON_SECRET=SECRET)
        contract.check("003 cron nothing", nothing, SEED_003_NOTHING, 200)
        refused = client.get(CRON, HTTP_X_CRON_SECRET="YOUR_SECRET")
        contract.check("003 cron unauthorized", refused, SEED_003_UNAUTHORIZED, 401)

    with at(datetime(2024, 1, 15, 12, 5, tzinfo=UTC)):
        detail = bearer.get(f"{ACTIONS}/{delivered}")
        detail = contract.check("003 get", detail, SEED_003_DETAIL, 200)
        completed_item = json.loads(SEED_003_DETAIL)["data"]
        completed = api_key.get(f"{ACTIONS}?status=completed&action_type=webhook:send")
        contract.check(
            "003 list completed webhooks", completed, SEED_003_LIST, 200, [completed_item]
        )
        page_two = api_key.get(f"{ACTIONS}?page=2&limit=10")
        contract.check("003 list page 2", page_two, SEED_003_LIST, 200, [completed_item])
        contract.check("003 get unknown", bearer.get(f"{ACTIONS}/uuid-123"), SEED_003_ERROR, 404)
        retried = bearer.post(f"{ACTIONS}/{created['data']['id']}/retry")
        retried = contract.check("003 retry", retried, SEED_003_RETRIED, 200)
        cancel = bearer.delete(f"{ACTIONS}/{Endpoint.objects.get(pk=later).uuid}")
        contract.check("003 cancel", cancel, SEED_003_CANCELLED, 200)

    assert listed["data"]["actions"][0]["teamId"] == "team-uuid"
    assert processed["processed"] == 3
    assert sorted((r["actionType"], r["success"]) for r in processed["results"]) == [
        ("billing:check-renewals", True),
        ("webhook:send", False),
        ("webhook:send", True),
    ]
    assert detail["data"]["status"] == "completed"
    assert retried["data"]["retryCount"] == 1
    assert actions.cancel_scheduled_action(later) is False  # already cancelled
    assert_deviations(contract, "003")
