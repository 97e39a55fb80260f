import json
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from calls.masking import MASK
from endpoints import registry
from endpoints.models import Endpoint
from runs.models import Log


@pytest.fixture
def renewals():
    calls = []

    @registry.handler("billing:check-renewals")
    def check_renewals(payload, *, dry_run, log):
        calls.append((payload, dry_run, log.run_id))
        if payload.get("explode"):
            raise RuntimeError("ledger unavailable")
        return {"renewals_checked": payload.get("accounts", 0), "dry_run": dry_run}

    yield calls
    registry.unregister("billing:check-renewals")


def test_webhook_send_is_registered_by_autodiscovery():
    assert "webhook:send" in registry.registered_names()


def test_a_handler_job_runs_end_to_end_and_its_return_is_the_summary(make_endpoint, renewals):
    make_endpoint(
        name="renewals",
        kind=Endpoint.Kind.HANDLER,
        url="",
        handler="billing:check-renewals",
        payload={"accounts": 87},
    )
    out = StringIO()
    call_command("runjob", "renewals", stdout=out)
    log = Log.objects.get()
    assert log.state == Log.State.SUCCESS
    assert log.result_summary == {"renewals_checked": 87, "dry_run": False}
    assert renewals == [({"accounts": 87}, False, log.run_id)]
    assert 'summary: {"renewals_checked":87' in out.getvalue()


def test_a_handler_sees_dry_run(make_endpoint, renewals):
    make_endpoint(name="renewals", kind="handler", url="", handler="billing:check-renewals")
    call_command("runjob", "renewals", "--dry-run", stdout=StringIO())
    assert renewals[0][1] is True


def test_a_handler_that_raises_fails_the_run_with_its_message(make_endpoint, renewals):
    make_endpoint(
        name="renewals",
        kind="handler",
        url="",
        handler="billing:check-renewals",
        payload={"explode": True},
    )
    with pytest.raises(CommandError):
        call_command("runjob", "renewals", stdout=StringIO())
    log = Log.objects.get()  # a handler bug is not retried
    assert log.state == Log.State.FAILED
    assert log.error_class == "handler"
    assert log.error_message == "RuntimeError: ledger unavailable"


def test_an_unknown_handler_is_refused_on_validation(db):
    endpoint = Endpoint(name="x", kind="handler", handler="nope:never", cron_expression="@daily")
    with pytest.raises(ValidationError) as caught:
        endpoint.full_clean()
    assert caught.value.message_dict["handler"] == ["No handler named 'nope:never' is registered."]


def test_webhook_send_posts_the_payload_as_json(make_endpoint, target):
    make_endpoint(
        name="notify",
        kind="handler",
        url="",
        handler="webhook:send",
        payload={
            "url": target.url("/ok"),
            "headers": {"X-Signature": "abc"},
            "eventType": "task:created",
            "entityId": "task-123",
            "data": {"title": "New Task"},
        },
    )
    call_command("runjob", "notify", stdout=StringIO())
    received = target.received[0]
    assert received.method == "POST"
    assert received.headers["X-Signature"] == "abc"
    assert received.json() == {
        "eventType": "task:created",
        "entityId": "task-123",
        "data": {"title": "New Task"},
    }
    log = Log.objects.get()
    assert log.state == Log.State.SUCCESS
    assert log.result_summary["status_code"] == 200


def test_webhook_send_failures_are_retried_like_http_jobs(make_endpoint, target):
    make_endpoint(
        name="notify",
        kind="handler",
        url="",
        handler="webhook:send",
        max_attempts=2,
        payload={"url": target.url("/status/503")},
    )
    with pytest.raises(CommandError):
        call_command("runjob", "notify", stdout=StringIO())
    assert [
        (log.attempt, log.error_class, log.status_code) for log in Log.objects.order_by("id")
    ] == [
        (1, "http_status", 503),
        (2, "http_status", 503),
    ]
    assert len(target.received) == 2


def test_secret_headers_of_a_webhook_payload_are_sent_but_not_recorded(make_endpoint, target):
    make_endpoint(
        name="notify",
        kind="handler",
        url="",
        handler="webhook:send",
        payload={"url": target.url("/ok"), "headers": {"Authorization": "Bearer s3cret-value"}},
    )
    call_command("runjob", "notify", stdout=StringIO())
    assert target.received[0].headers["Authorization"] == "Bearer s3cret-value"
    log = Log.objects.get()
    assert "s3cret-value" not in json.dumps(log.request)
    assert log.request["payload"]["headers"]["Authorization"] == MASK
