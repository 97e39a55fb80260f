"""Seed 003, GET /api/v1/cron/process: the external-cron door to the dispatcher and executor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from endpoints.models import Endpoint
from runs import actions
from runs.models import Log

pytest_plugins = ["tests.api_support"]

CRON = "/api/v1/cron/process"
SECRET = "s" * 16 + "-cron-secret-of-32+chars"
NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cron_secret(settings):
    settings.CRON_SECRET = SECRET


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def process(client, secret: str | None = SECRET):
    headers = {"x-cron-secret": secret} if secret is not None else {}
    return client.get(CRON, headers=headers)


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET[:-1], SECRET + "x"])
def test_a_missing_or_wrong_secret_is_the_seed_401(anonymous, secret):
    response = process(anonymous, secret)

    assert response.status_code == 401
    body = response.json()
    assert {key: body[key] for key in ("error", "message")} == {
        "error": "Unauthorized",
        "message": "Invalid or missing cron secret",
    }
    assert body["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("configured", ["", "too-short-a-secret"])
def test_the_route_is_off_without_a_strong_cron_secret(anonymous, settings, configured):
    settings.CRON_SECRET = configured
    response = process(anonymous, configured)
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_with_nothing_due_it_answers_as_the_seed_does(anonymous, clock):
    body = process(anonymous).json()
    assert body == {"success": True, "processed": 0, "results": [], "duration": body["duration"]}
    assert isinstance(body["duration"], int)


def test_it_runs_due_actions_and_reports_each_as_the_seed_does(
    anonymous, clock, target, renewals_handler
):
    webhook = actions.schedule_action("webhook:send", {"url": target.url("/ok"), "x": 1})
    renewals = actions.schedule_action("billing:check-renewals", {})
    failing = actions.schedule_action("billing:check-renewals", {"explode": True})
    later = actions.schedule_action("webhook:send", {}, NOW + timedelta(hours=1))
    clock.shift(timedelta(seconds=5))

    response = process(anonymous)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["processed"] == 3
    results = {
        str(Endpoint.objects.get(uuid=result["actionId"]).pk): result for result in body["results"]
    }
    assert set(results) == {webhook, renewals, failing}
    assert {k: results[webhook][k] for k in ("actionType", "success")} == {
        "actionType": "webhook:send",
        "success": True,
    }
    assert isinstance(results[webhook]["duration"], int)
    assert results[renewals]["success"] is True
    assert results[failing]["success"] is False
    assert results[failing]["error"] == "RuntimeError: ledger unavailable"
    assert target.received[0].json() == {"x": 1}
    # The two handler runs are performed at once, each in a thread of its own: any order.
    assert sorted(renewals_handler, key=len) == [{}, {"explode": True}]
    assert Endpoint.objects.get(pk=later).next_run_at == NOW + timedelta(hours=1)


def test_it_also_runs_due_cron_jobs_and_queued_runs(anonymous, clock, make_endpoint, target):
    job = make_endpoint(name="every-minute", url=target.url("/ok"), cron_expression="* * * * *")
    clock.move_to(job.next_run_at + timedelta(seconds=1))

    body = process(anonymous).json()

    assert body["processed"] == 1
    (result,) = body["results"]
    assert (result["actionId"], result["actionType"], result["success"]) == (
        str(job.uuid),
        "http",
        True,
    )
    log = Log.objects.get()
    assert (log.state, log.trigger) == ("success", "cron_endpoint")
    assert len(target.received) == 1


def test_a_slot_is_run_once_however_often_cron_calls(anonymous, clock, renewals_handler):
    actions.schedule_action("billing:check-renewals", {})
    first = process(anonymous).json()
    second = process(anonymous).json()
    assert (first["processed"], second["processed"]) == (1, 0)
    assert len(renewals_handler) == 1


def test_work_left_over_by_a_spent_budget_runs_on_the_next_call(
    anonymous, clock, settings, renewals_handler
):
    for _ in range(3):
        actions.schedule_action("billing:check-renewals", {})
    settings.SCHEDULER_CRON_BUDGET_SECONDS = 0

    starved = process(anonymous).json()
    assert starved["processed"] == 0 and Log.objects.filter(state="queued").count() == 3

    settings.SCHEDULER_CRON_BUDGET_SECONDS = 25
    caught_up = process(anonymous).json()
    assert caught_up["processed"] == 3 and len(renewals_handler) == 3


def test_the_cron_route_has_its_own_rate_limit(anonymous, settings, clock):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "cron": "2/min",
        },
    }
    assert [process(anonymous).status_code for _ in range(2)] == [200, 200]

    limited = process(anonymous)

    assert limited.status_code == 429
    assert limited.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(limited["Retry-After"]) <= 60
