"""The example handlers (issue 14, item 13): what the README and the API contracts name runs as
written, and does something a reader can see."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from endpoints import registry
from endpoints.models import Endpoint
from examples import handlers as examples
from runs import executor, services
from runs.actions import schedule_recurring_action
from runs.models import Log
from tests.processes import manage

pytest_plugins = ["tests.api_support"]

README = Path(__file__).resolve().parent.parent / "README.md"
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
NAMES = ("billing:check-renewals", "generateWeeklyExpiryReport")
LIST_NAMES = "from endpoints.registry import registered_names; print(registered_names())"


@pytest.fixture
def examples_on():
    """As a server with CRONPLANE_EXAMPLES on has them (tests register stand-ins otherwise)."""
    examples.register()
    yield
    for name in examples.EXAMPLES:
        registry.unregister(name)


def test_a_server_registers_the_examples_by_default_and_not_when_turned_off(monkeypatch):
    monkeypatch.delenv("CRONPLANE_EXAMPLES", raising=False)
    on = manage("shell", "-c", LIST_NAMES)
    assert on.returncode == 0, on.stderr
    assert all(name in on.stdout for name in NAMES)
    off = manage("shell", "-c", LIST_NAMES, CRONPLANE_EXAMPLES="false")
    assert off.returncode == 0, off.stderr
    assert not any(name in off.stdout for name in NAMES)
    assert "webhook:send" in off.stdout


def test_the_readme_job_file_applies_as_written(db, examples_on, tmp_path):
    text = README.read_text(encoding="utf-8")
    section = text[text.index("A job file uses the API's job fields") :]
    job_file = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    (tmp_path / "jobs.json").write_text(job_file, encoding="utf-8")
    out = io.StringIO()
    call_command("applyjobs", str(tmp_path / "jobs.json"), stdout=out)
    assert out.getvalue().splitlines() == [
        "created nightly-report",
        "created renewals",
        "created db-backup",
    ]
    assert Endpoint.objects.get(name="renewals").handler == "billing:check-renewals"


def test_the_readme_recurring_action_is_scheduled(db, examples_on):
    renewals_id = schedule_recurring_action("billing:check-renewals", {}, "daily")
    endpoint = Endpoint.objects.get(pk=renewals_id)
    assert (endpoint.handler, endpoint.interval_seconds) == ("billing:check-renewals", 86400)


def test_the_nightly_scheduler_example_job_registers(examples_on, as_editor):
    answer = as_editor.post(
        "/api/v1/scheduler/jobs",
        {"job_name": "weekly-expiry-summary-report", "cron_expression": "0 8 * * 1",
         "handler": "generateWeeklyExpiryReport", "is_active": True},
        format="json",
    )  # fmt: skip
    assert answer.status_code == 201, answer.json()


def test_the_scheduled_actions_example_is_accepted(examples_on, as_editor):
    in_an_hour = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = as_editor.post(
        "/api/v1/devtools/scheduled-actions",
        {"actionType": "billing:check-renewals", "payload": {}, "scheduledAt": in_an_hour},
        format="json",
    )
    assert answer.status_code == 201, answer.json()


def _finished(endpoint: Endpoint, state: str, finished_at: datetime, **fields) -> Log:
    return Log.objects.create(
        endpoint=endpoint, state=state, trigger=Log.Trigger.SCHEDULE, scheduled_for=finished_at,
        due_at=finished_at, created_at=finished_at, started_at=finished_at,
        finished_at=finished_at, **fields,
    )  # fmt: skip


def _run(endpoint: Endpoint, as_of: datetime) -> Log:
    log = executor.execute(services.create_run(endpoint, as_of=as_of).pk)
    assert log is not None and log.state == Log.State.SUCCESS, log.error_message
    return log


# Handlers run in a thread of their own (runs/executor.py), on their own connection: the rows
# they read must be committed.
def test_the_weekly_report_summarises_the_week_of_runs_before_its_instant(
    transactional_db, make_endpoint, examples_on
):
    ping = make_endpoint(name="ping")
    flaky = make_endpoint(name="flaky", url="https://example.com/flaky")
    for days_ago in (1, 2, 3):
        _finished(ping, Log.State.SUCCESS, NOW - timedelta(days=days_ago))
    _finished(flaky, Log.State.FAILED, NOW - timedelta(days=1))
    _finished(flaky, Log.State.FAILED, NOW - timedelta(days=2))
    _finished(flaky, Log.State.SKIPPED, NOW - timedelta(days=6))
    _finished(ping, Log.State.FAILED, NOW - timedelta(days=8))  # the week before
    _finished(ping, Log.State.SUCCESS, NOW - timedelta(hours=1), dry_run=True)  # not a run
    Endpoint.objects.filter(pk=flaky.pk).update(tls_expires_at=NOW + timedelta(days=10))
    report = make_endpoint(
        name="weekly-expiry-summary-report", kind=Endpoint.Kind.HANDLER, url="",
        handler="generateWeeklyExpiryReport",
    )  # fmt: skip

    summary = _run(report, NOW).result_summary

    assert summary["period_from"] == "2026-11-23T08:00:00Z"
    assert summary["period_to"] == "2026-11-30T08:00:00Z"
    assert (summary["jobs_checked"], summary["runs"]) == (2, 6)
    assert (summary["succeeded"], summary["failed"]) == (3, 2)
    assert summary["by_state"] == {"failed": 2, "skipped": 1, "success": 3}
    assert summary["most_failing"] == [{"job_name": "flaky", "failed": 2}]
    assert summary["certificates_expiring"] == [
        {"job_name": "flaky", "expires_at": "2026-12-10T08:00:00Z", "expired": False}
    ]


def test_check_renewals_lists_what_ends_soon(transactional_db, make_endpoint, examples_on):
    make_endpoint(name="campaign", ends_at=NOW + timedelta(days=5), starts_at=NOW - timedelta(1))
    make_endpoint(name="long-campaign", ends_at=NOW + timedelta(days=90))
    make_endpoint(name="last-run", max_runs=3)
    Endpoint.objects.filter(name="last-run").update(run_count=2)
    make_endpoint(name="expired-cert", url="https://example.com/x")
    Endpoint.objects.filter(name="expired-cert").update(tls_expires_at=NOW - timedelta(days=1))
    renewals = make_endpoint(
        name="renewals", kind=Endpoint.Kind.HANDLER, url="", handler="billing:check-renewals",
        payload={"dry": False},
    )  # fmt: skip

    summary = _run(renewals, NOW).result_summary

    assert summary["renewals_checked"] == 4
    assert summary["within_days"] == 14
    assert summary["schedule_windows_ending"] == [
        {"job_name": "campaign", "ends_at": "2026-12-05T08:00:00Z"}
    ]
    assert summary["runs_running_out"] == [{"job_name": "last-run", "runs_left": 1}]
    assert summary["certificates_expiring"] == [
        {"job_name": "expired-cert", "expires_at": "2026-11-29T08:00:00Z", "expired": True}
    ]
    assert json.dumps(summary)  # a result_summary is JSON


def test_a_bad_days_payload_fails_the_run_with_a_message(make_endpoint, examples_on):
    renewals = make_endpoint(
        name="renewals", kind=Endpoint.Kind.HANDLER, url="", handler="billing:check-renewals",
        payload={"days": "soon"}, max_attempts=1,
    )  # fmt: skip
    log = executor.execute(services.create_run(renewals).pk)
    assert log.state == Log.State.FAILED
    assert "payload.days must be a whole number" in log.error_message
