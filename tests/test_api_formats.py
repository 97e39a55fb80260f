"""Each time field in the format its seed's example shows, whatever the instant's fractions.

Seed 001 and seed 003: whole seconds in UTC with Z ("2026-03-26T02:00:00Z"). Seed 002: slots and
run times in the schedule's own offset ("2024-01-26T09:00:00-05:00"), `startedAt`/`finishedAt`
always with milliseconds ("2024-01-25T09:00:01.000-05:00"), `createdAt`/`updatedAt` in Z.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from runs import executor, services
from runs.models import Log

pytest_plugins = ["tests.api_support"]

WHOLE_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
WHOLE_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
MILLIS_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
# An instant with milliseconds, as a real clock gives them.
RAGGED_NOW = datetime(2024, 1, 26, 16, 0, 0, 879_000, tzinfo=UTC)


@pytest.fixture(autouse=True)
def ragged_clock():
    with time_machine.travel(RAGGED_NOW, tick=False) as traveller:
        yield traveller


def assert_format(body: dict, pattern: re.Pattern, *fields: str) -> None:
    for field in fields:
        assert pattern.match(body[field] or ""), f"{field} = {body[field]!r}"


def test_seed_001_times_are_whole_seconds_with_z(as_editor, report_handler):
    jobs = "/api/v1/scheduler/jobs"
    created = as_editor.post(
        jobs,
        {
            "job_name": "weekly",
            "cron_expression": "0 8 * * 1",
            "handler": "generateWeeklyExpiryReport",
        },
        format="json",
    ).json()
    assert created["created_at"] == "2024-01-26T16:00:00Z"
    assert created["next_run_at"] == "2024-01-29T08:00:00Z"

    triggered = as_editor.post(f"{jobs}/weekly/trigger").json()
    assert triggered["triggered_at"] == "2024-01-26T16:00:00Z"
    executor.execute(Log.objects.by_run_id(triggered["run_id"]).get().pk)

    result = as_editor.get(f"{jobs}/weekly/last-result").json()
    assert_format(result, WHOLE_Z, "started_at", "completed_at")
    listed = as_editor.get(jobs).json()["data"][0]
    assert_format(listed, WHOLE_Z, "last_run_at", "next_run_at", "created_at")
    assert as_editor.delete(f"{jobs}/weekly").json()["cancelled_at"] == "2024-01-26T16:00:00Z"


def test_seed_002_times_are_in_the_schedules_offset_with_milliseconds_for_run_times(
    as_editor, make_endpoint, renewals_handler
):
    workflow = make_endpoint(
        name="daily-report",
        kind="handler",
        url="",
        handler="billing:check-renewals",
        schedule_type="none",
        cron_expression="",
    )
    schedules = "/api/v1/schedules"
    created = as_editor.post(
        schedules,
        {
            "workflowId": str(workflow.pk),
            "cronExpression": "0 9 * * MON-FRI",
            "timezone": "America/New_York",
        },
        format="json",
    ).json()
    assert created["createdAt"] == "2024-01-26T16:00:00Z"
    assert created["updatedAt"] == "2024-01-26T16:00:00Z"
    assert created["nextRun"] == "2024-01-29T09:00:00-05:00"
    started = datetime(2024, 1, 26, 14, 0, 1, tzinfo=UTC)  # whole seconds: still .000
    Log.objects.create(
        endpoint=workflow,
        scheduled_for=datetime(2024, 1, 26, 14, tzinfo=UTC),
        state="success",
        started_at=started,
        finished_at=started + timedelta(milliseconds=1500),
        duration_ms=1500,
    )

    entry = as_editor.get(f"{schedules}/{created['id']}/history").json()
    assert entry["data"][0]["scheduledTime"] == "2024-01-26T09:00:00-05:00"
    assert entry["data"][0]["startedAt"] == "2024-01-26T09:00:01.000-05:00"
    assert entry["data"][0]["finishedAt"] == "2024-01-26T09:00:02.500-05:00"
    assert_format(entry["data"][0], MILLIS_OFFSET, "startedAt", "finishedAt")
    assert_format(entry["data"][0], WHOLE_OFFSET, "scheduledTime")


def test_seed_003_times_are_whole_seconds_with_z(as_editor, renewals_handler):
    actions = "/api/v1/devtools/scheduled-actions"
    created = as_editor.post(
        actions, {"actionType": "billing:check-renewals", "payload": {}}, format="json"
    ).json()["data"]
    services.run_due_inline(RAGGED_NOW, budget_seconds=30, batch_size=10)

    action = as_editor.get(f"{actions}/{created['id']}").json()["data"]

    assert action["status"] == "completed"
    assert_format(action, WHOLE_Z, "scheduledAt", "startedAt", "completedAt")
    assert_format(action, WHOLE_Z, "createdAt", "updatedAt")
    assert action["createdAt"] == "2024-01-26T16:00:00Z"
    listed = as_editor.get(actions).json()["data"]["actions"][0]
    assert_format(listed, WHOLE_Z, "scheduledAt", "createdAt", "updatedAt")
