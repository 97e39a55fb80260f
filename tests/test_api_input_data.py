"""Seed 002's `inputData` is the input of each run: it never erases the workflow's own
configuration, and it is kept for HTTP workflows too."""

from __future__ import annotations

import pytest

from endpoints.models import Endpoint
from runs import executor, verbs

pytest_plugins = ["tests.api_support"]

SCHEDULES = "/api/v1/schedules"
INPUT = [{"json": {"reportType": "daily"}}]


@pytest.fixture
def webhook(make_endpoint, target) -> Endpoint:
    """A webhook:send workflow: its payload is its configuration (url) and its body."""
    return make_endpoint(
        name="notify-ops",
        kind="handler",
        url="",
        handler="webhook:send",
        payload={"url": target.url("/ok"), "channel": "ops"},
        schedule_type="none",
        cron_expression="",
    )


def run_once(endpoint: Endpoint):
    log = verbs.trigger(endpoint, by="test")
    executor.execute(log.pk)
    log.refresh_from_db()
    return log


def test_input_data_joins_a_handler_workflows_payload_and_reaches_its_run(
    as_editor, webhook, target
):
    response = as_editor.post(
        SCHEDULES,
        {"workflowId": str(webhook.uuid), "cronExpression": "0 9 * * *", "inputData": INPUT},
        format="json",
    )

    assert response.status_code == 201, response.json()
    webhook.refresh_from_db()
    assert webhook.payload == {"url": target.url("/ok"), "channel": "ops", "reportType": "daily"}
    log = run_once(webhook)
    assert log.state == "success", log.error_message
    assert target.received[-1].json() == {"channel": "ops", "reportType": "daily"}


def test_new_input_data_replaces_only_the_keys_it_names(as_editor, webhook, target):
    as_editor.post(
        SCHEDULES,
        {"workflowId": str(webhook.uuid), "cronExpression": "@daily", "inputData": INPUT},
        format="json",
    )
    schedule = f"{SCHEDULES}/{webhook.uuid}"

    as_editor.put(schedule, {"inputData": [{"json": {"reportType": "weekly"}}]}, format="json")
    as_editor.put(schedule, {"inputData": []}, format="json")  # no input: nothing changes

    webhook.refresh_from_db()
    assert webhook.payload == {"url": target.url("/ok"), "channel": "ops", "reportType": "weekly"}
    assert run_once(webhook).state == "success"


def test_an_http_workflow_keeps_its_input_data_and_its_request(as_editor, make_endpoint, target):
    call = make_endpoint(
        name="report-call",
        url=target.url("/ok"),
        method="POST",
        body='{"fixed": true}',
        schedule_type="none",
        cron_expression="",
    )

    response = as_editor.post(
        SCHEDULES,
        {"workflowId": str(call.uuid), "cronExpression": "@hourly", "inputData": INPUT},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["inputData"] == INPUT
    assert as_editor.get(f"{SCHEDULES}/{call.uuid}").json()["inputData"] == INPUT
    call.refresh_from_db()
    assert (call.url, call.body, call.payload) == (
        target.url("/ok"),
        '{"fixed": true}',
        {"reportType": "daily"},
    )
    assert run_once(call).state == "success"
    assert target.received[-1].json() == {"fixed": True}


def test_an_http_workflows_input_reaches_its_request_as_a_template_variable(
    as_editor, make_endpoint, target
):
    call = make_endpoint(
        name="templated-call",
        url=target.url("/ok"),
        method="POST",
        body='{"report": "{{ input.reportType }}"}',
        schedule_type="none",
        cron_expression="",
    )
    as_editor.post(
        SCHEDULES,
        {"workflowId": str(call.uuid), "cronExpression": "@hourly", "inputData": INPUT},
        format="json",
    )
    assert run_once(call).state == "success"
    assert target.received[-1].json() == {"report": "daily"}
