"""Seed 002, "Schedules API": /api/v1/schedules — every route, every example field.

The seed's examples put "0 9 * * MON-FRI" next on 2024-01-27, a Saturday; our answers are the
true next slot (Monday 29th) in the same form: wall time with the schedule's offset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from endpoints.models import Endpoint
from runs.models import Log

pytest_plugins = ["tests.api_support"]

SCHEDULES = "/api/v1/schedules"
SEED_NOW = datetime(2024, 1, 26, 16, 0, tzinfo=UTC)  # Friday, 11:00 in New York


@pytest.fixture(autouse=True)
def at_seed_time():
    with time_machine.travel(SEED_NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def daily_report(make_endpoint, renewals_handler):
    """Seed 002's "Daily Report" workflow, created 2024-01-01, scheduled, 25 runs in."""
    with time_machine.travel(datetime(2024, 1, 1, tzinfo=UTC), tick=False):
        endpoint = make_endpoint(
            name="Daily-Report",
            kind="handler",
            url="",
            handler="billing:check-renewals",
            payload={"reportType": "daily"},
            cron_expression="0 9 * * MON-FRI",
            timezone="America/New_York",
        )
    Endpoint.objects.filter(pk=endpoint.pk).update(
        last_run_at=datetime(2024, 1, 26, 14, tzinfo=UTC),
        next_run_at=datetime(2024, 1, 29, 14, tzinfo=UTC),  # as the dispatcher leaves it
        last_status="success",
        run_count=25,
        success_count=24,
        failure_count=1,
    )
    endpoint.refresh_from_db()
    return endpoint


@pytest.fixture
def unscheduled(make_endpoint, renewals_handler):
    return make_endpoint(
        name="weekly-digest",
        kind="handler",
        url="",
        handler="billing:check-renewals",
        schedule_type="none",
        cron_expression="",
    )


def test_the_list_shows_each_schedule_with_the_seed_fields_and_a_total(as_viewer, daily_report):
    response = as_viewer.get(SCHEDULES)

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1
    assert {key: body["data"][0][key] for key in SEED_LIST_FIELDS} == {
        "id": f"sched-{daily_report.pk}",
        "workflowId": str(daily_report.uuid),
        "workflowName": "Daily-Report",
        "cronExpression": "0 9 * * MON-FRI",
        "timezone": "America/New_York",
        "enabled": True,
        "nextRun": "2024-01-29T09:00:00-05:00",
        "lastRun": "2024-01-26T09:00:00-05:00",
        "lastStatus": "success",
        "createdAt": "2024-01-01T00:00:00Z",
    }


SEED_LIST_FIELDS = (
    "id",
    "workflowId",
    "workflowName",
    "cronExpression",
    "timezone",
    "enabled",
    "nextRun",
    "lastRun",
    "lastStatus",
    "createdAt",
)


def test_the_list_filters_by_workflow_and_enabled(as_viewer, daily_report, make_endpoint):
    other = make_endpoint(name="other", enabled=False)

    def ids(**query):
        return [
            schedule["workflowId"] for schedule in as_viewer.get(SCHEDULES, query).json()["data"]
        ]

    assert ids() == [str(daily_report.uuid), str(other.uuid)]
    assert ids(workflowId=str(other.uuid)) == [str(other.uuid)]
    assert ids(workflowId=str(other.pk)) == [str(other.uuid)]  # the old numeric id
    assert ids(workflowId="550e8400-e29b-41d4-a716-446655440000") == []
    assert ids(enabled="true") == [str(daily_report.uuid)]
    assert ids(enabled="false", workflowId=str(daily_report.uuid)) == []
    assert ids(limit=1, offset=1) == [str(other.uuid)]
    assert as_viewer.get(SCHEDULES, {"limit": 1}).json()["total"] == 2
    assert as_viewer.get(SCHEDULES, {"enabled": "maybe"}).json()["details"] == {
        "enabled": "Must be true or false."
    }


def test_an_endpoint_without_a_schedule_is_not_listed(as_viewer, unscheduled):
    assert as_viewer.get(SCHEDULES).json() == {"data": [], "total": 0}


def test_getting_a_schedule_shows_input_data_and_run_counts(as_viewer, daily_report):
    response = as_viewer.get(f"{SCHEDULES}/sched-{daily_report.pk}")

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in SEED_GET_FIELDS} == {
        "id": f"sched-{daily_report.pk}",
        "workflowId": str(daily_report.uuid),
        "workflowName": "Daily-Report",
        "cronExpression": "0 9 * * MON-FRI",
        "timezone": "America/New_York",
        "enabled": True,
        "inputData": [{"json": {"reportType": "daily"}}],
        "nextRun": "2024-01-29T09:00:00-05:00",
        "lastRun": "2024-01-26T09:00:00-05:00",
        "lastStatus": "success",
        "runCount": 25,
        "successCount": 24,
        "failureCount": 1,
        "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": "2024-01-01T00:00:00Z",
    }
    assert body["description"] == "At 09:00, Monday through Friday"


SEED_GET_FIELDS = (
    *SEED_LIST_FIELDS,
    "inputData",
    "runCount",
    "successCount",
    "failureCount",
    "updatedAt",
)


@pytest.mark.parametrize("schedule_id", ["sched-999", "sched-abc", "123", "sched-" + "9" * 30])
def test_an_unknown_schedule_is_not_found(as_viewer, db, schedule_id):
    response = as_viewer.get(f"{SCHEDULES}/{schedule_id}")
    assert response.status_code == 404
    assert response.json() == {"error": "Schedule not found", "code": "NOT_FOUND"}


def test_creating_the_seed_example_schedules_the_workflow(as_editor, unscheduled):
    seed_request = {
        "workflowId": str(unscheduled.uuid),
        "cronExpression": "0 9 * * MON-FRI",
        "timezone": "America/New_York",
        "enabled": True,
        "inputData": [{"json": {"reportType": "daily"}}],
    }

    response = as_editor.post(SCHEDULES, seed_request, format="json")

    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in SEED_CREATED_FIELDS} == {
        "id": f"sched-{unscheduled.pk}",
        "workflowId": str(unscheduled.uuid),
        "cronExpression": "0 9 * * MON-FRI",
        "timezone": "America/New_York",
        "enabled": True,
        "nextRun": "2024-01-29T09:00:00-05:00",
        "createdAt": "2024-01-26T16:00:00Z",
    }
    unscheduled.refresh_from_db()
    assert (unscheduled.schedule_type, unscheduled.payload) == ("cron", {"reportType": "daily"})
    assert unscheduled.next_run_at == datetime(2024, 1, 29, 14, tzinfo=UTC)


SEED_CREATED_FIELDS = (
    "id",
    "workflowId",
    "cronExpression",
    "timezone",
    "enabled",
    "nextRun",
    "createdAt",
)


def test_a_workflow_that_already_has_a_schedule_is_a_conflict(as_editor, daily_report):
    response = as_editor.post(
        SCHEDULES,
        {"workflowId": str(daily_report.pk), "cronExpression": "0 7 * * *"},
        format="json",
    )
    assert response.status_code == 409
    assert response.json() == {
        "error": "Schedule already exists for this workflow",
        "code": "CONFLICT",
    }


def test_an_invalid_cron_expression_is_the_seed_error(as_editor, unscheduled):
    response = as_editor.post(
        SCHEDULES, {"workflowId": str(unscheduled.pk), "cronExpression": "0 9 * *"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid cron expression" and body["code"] == "VALIDATION_ERROR"
    assert list(body["details"]) == ["cronExpression"]
    assert "5 fields" in body["details"]["cronExpression"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cronExpression": "every day"}, "cronExpression"),
        ({"cronExpression": 5}, "cronExpression"),
        ({"timezone": "America/Gotham"}, "timezone"),
        ({"enabled": "yes"}, "enabled"),
        ({"inputData": {"json": {}}}, "inputData"),
        ({"inputData": [{"json": []}]}, "inputData.0.json"),
        ({"inputData": [{"json": {}, "binary": {}}]}, "inputData.0.binary"),
        ({"inputData": [{"json": {"a": 1}}, {"json": {"b": 2}}]}, "inputData"),
        ({"workflowId": "999999"}, "workflowId"),
        ({"workflowId": True}, "workflowId"),
        ({"workflowId": None}, "workflowId"),
        ({"name": "x"}, "name"),
    ],
)
def test_bad_input_is_a_400_with_field_details_and_changes_nothing(
    as_editor, unscheduled, change, field
):
    body = {"workflowId": str(unscheduled.pk), "cronExpression": "0 9 * * *", **change}

    response = as_editor.post(SCHEDULES, body, format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert field in response.json()["details"]
    unscheduled.refresh_from_db()
    assert (unscheduled.schedule_type, unscheduled.cron_expression) == ("none", "")


def test_updating_changes_only_the_fields_given(as_editor, daily_report):
    response = as_editor.put(
        f"{SCHEDULES}/sched-{daily_report.pk}",
        {"cronExpression": "0 8 * * MON-FRI", "timezone": "Europe/London"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["cronExpression"], body["timezone"]) == ("0 8 * * MON-FRI", "Europe/London")
    assert body["nextRun"] == "2024-01-29T08:00:00+00:00"  # London is on UTC in winter
    assert body["inputData"] == [{"json": {"reportType": "daily"}}] and body["enabled"] is True
    assert body["runCount"] == 25  # an edit never touches run statistics


def test_an_update_cannot_move_a_schedule_to_another_workflow(as_editor, daily_report):
    response = as_editor.put(
        f"{SCHEDULES}/sched-{daily_report.pk}", {"workflowId": "12345"}, format="json"
    )
    assert response.status_code == 400 and "workflowId" in response.json()["details"]


def test_an_update_with_a_bad_time_zone_changes_nothing(as_editor, daily_report):
    response = as_editor.put(
        f"{SCHEDULES}/sched-{daily_report.pk}",
        {"cronExpression": "0 8 * * *", "timezone": "Nowhere/Land"},
        format="json",
    )
    assert response.status_code == 400 and list(response.json()["details"]) == ["timezone"]
    daily_report.refresh_from_db()
    assert daily_report.cron_expression == "0 9 * * MON-FRI"


def test_deleting_a_schedule_leaves_the_workflow_manual_only(as_editor, daily_report):
    response = as_editor.delete(f"{SCHEDULES}/sched-{daily_report.pk}")

    assert response.status_code == 204 and response.content == b""
    daily_report.refresh_from_db()
    assert (daily_report.schedule_type, daily_report.next_run_at) == ("none", None)
    assert as_editor.get(f"{SCHEDULES}/sched-{daily_report.pk}").status_code == 404


def test_disabling_and_enabling_answer_as_the_seed_does(as_operator, daily_report):
    disabled = as_operator.post(f"{SCHEDULES}/sched-{daily_report.pk}/disable")
    enabled = as_operator.post(f"{SCHEDULES}/sched-{daily_report.pk}/enable")

    assert disabled.status_code == 200 and enabled.status_code == 200
    seed = ("id", "enabled", "nextRun")  # then our optional pause fields
    assert {key: disabled.json()[key] for key in seed} == {
        "id": f"sched-{daily_report.pk}",
        "enabled": False,
        "nextRun": None,
    }
    assert {key: enabled.json()[key] for key in seed} == {
        "id": f"sched-{daily_report.pk}",
        "enabled": True,
        "nextRun": "2024-01-29T09:00:00-05:00",
    }
    assert enabled.json()["pausedBy"] is None and disabled.json()["pausedBy"] == "otto-operator"


def test_the_history_lists_executions_newest_first_with_a_total(as_viewer, daily_report):
    for day, outcome in ((24, "success"), (25, "failed"), (26, "success")):
        slot = datetime(2024, 1, day, 14, tzinfo=UTC)
        started = slot + timedelta(milliseconds=500)
        took = 500 if outcome == "failed" else 2000
        Log.objects.create(
            endpoint=daily_report,
            scheduled_for=slot,
            state=outcome,
            started_at=started,
            finished_at=started + timedelta(milliseconds=took),
            duration_ms=took,
            error_class="timeout" if outcome == "failed" else "",
            error_message="HTTP request timeout" if outcome == "failed" else "",
        )

    response = as_viewer.get(f"{SCHEDULES}/sched-{daily_report.pk}/history", {"limit": 2})

    assert response.status_code == 200
    body = response.json()
    newest, failed = Log.objects.order_by("-id")[:2]
    assert body["total"] == 3
    assert [
        {k: entry[k] for k in entry if k not in ("trigger", "attempt")} for entry in body["data"]
    ] == [
        {
            "executionId": newest.run_id,
            "scheduledTime": "2024-01-26T09:00:00-05:00",
            "startedAt": "2024-01-26T09:00:00.500-05:00",
            "finishedAt": "2024-01-26T09:00:02.500-05:00",
            "status": "success",
            "duration": 2000,
        },
        {
            "executionId": failed.run_id,
            "scheduledTime": "2024-01-25T09:00:00-05:00",
            "startedAt": "2024-01-25T09:00:00.500-05:00",
            "finishedAt": "2024-01-25T09:00:01.000-05:00",
            "status": "failed",
            "duration": 500,
            "error": "HTTP request timeout",
        },
    ]
    assert as_viewer.get(f"{SCHEDULES}/sched-{daily_report.pk}/history").json()["total"] == 3
    bad_limit = as_viewer.get(f"{SCHEDULES}/sched-{daily_report.pk}/history", {"limit": "0"})
    assert bad_limit.status_code == 400


def test_enabling_an_enabled_schedule_changes_nothing(as_operator, daily_report, at_seed_time):
    # The dispatcher holds a slot that is not the next from now (e.g. a missed one to catch up).
    held_slot = datetime(2024, 1, 26, 14, tzinfo=UTC)
    Endpoint.objects.filter(pk=daily_report.pk).update(
        consecutive_failures=2, next_run_at=held_slot
    )
    before = Endpoint.objects.get(pk=daily_report.pk)
    at_seed_time.shift(timedelta(minutes=5))

    response = as_operator.post(f"{SCHEDULES}/sched-{daily_report.pk}/enable")

    assert response.status_code == 200
    assert (response.json()["enabled"], response.json()["nextRun"]) == (
        True,
        "2024-01-26T09:00:00-05:00",
    )
    after = Endpoint.objects.get(pk=daily_report.pk)
    assert (after.consecutive_failures, after.next_run_at, after.updated_at) == (
        2,
        held_slot,
        before.updated_at,
    )


def test_the_history_counts_and_lists_executions_not_attempts_or_queued_runs(
    as_viewer, daily_report
):
    def run(day: int, state: str, *, attempt: int = 1, retry_of=None, dry_run=False) -> Log:
        slot = datetime(2024, 1, day, 14, tzinfo=UTC)
        started = slot + timedelta(seconds=attempt) if state not in ("queued", "pending") else None
        return Log.objects.create(
            endpoint=daily_report,
            scheduled_for=None if dry_run else slot,
            state=state,
            attempt=attempt,
            retry_of=retry_of,
            dry_run=dry_run,
            started_at=started,
            finished_at=started + timedelta(milliseconds=100) if started else None,
            duration_ms=100 if started else None,
        )

    first = run(23, "failed")
    retried = run(23, "success", attempt=2, retry_of=first)  # one execution: two attempts
    waiting = run(24, "failed")
    run(24, "pending", attempt=2, retry_of=waiting)  # its retry is not an execution yet
    run(25, "success", dry_run=True)  # a rehearsal, not an execution
    run(26, "queued")  # not executed yet

    body = as_viewer.get(f"{SCHEDULES}/sched-{daily_report.pk}/history").json()

    assert body["total"] == 2
    assert [(entry["executionId"], entry["status"]) for entry in body["data"]] == [
        (waiting.run_id, "failed"),
        (retried.run_id, "success"),
    ]
