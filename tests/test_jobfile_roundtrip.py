"""Export → wipe → apply → export gives the same file, every setting included (issue 14, item 6)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from endpoints.models import Endpoint

pytestmark = pytest.mark.django_db

# What a user sets on an endpoint, beside the fields every job object has always carried. A new
# setting belongs here and in the job format (endpoints/jobs.py).
SETTINGS = (
    "name", "description", "kind", "url", "method", "headers", "secret_headers", "body",
    "timeout_seconds", "expected_status", "response_must_contain", "handler", "payload",
    "schedule_type", "cron_expression", "interval_seconds", "run_at", "timezone", "starts_at",
    "ends_at", "max_runs", "jitter_seconds", "enabled", "max_attempts", "retry_backoff_seconds",
    "retry_backoff_max_seconds", "overlap_policy", "missed_policy", "catch_up_window_seconds",
    "auto_disable_after", "notify_emails", "notify_webhook_url", "notify_on_failure",
    "notify_on_recovery",
)  # fmt: skip
WINDOW_START = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


@pytest.fixture
def every_setting(make_endpoint):
    """Three jobs (cron HTTP, interval handler, one-time HTTP), every setting off its default."""
    make_endpoint(
        name="nightly-report", description="The nightly report", url="https://example.com/r",
        method="POST", body='{"full":true}', headers={"X-Trace": "on"}, timeout_seconds=12.5,
        expected_status="200-299,304", response_must_contain="ok", cron_expression="0 2 * * 1-5",
        timezone="Europe/Paris", starts_at=WINDOW_START, ends_at=WINDOW_START + timedelta(days=365),
        max_runs=40, jitter_seconds=30, max_attempts=5, retry_backoff_seconds=2.5,
        retry_backoff_max_seconds=600, overlap_policy="queue_one", missed_policy="run_all",
        catch_up_window_seconds=7200, auto_disable_after=4, notify_emails="ops@example.com",
        notify_webhook_url="https://hooks.example.com/ops", notify_on_failure=False,
        notify_on_recovery=False,
    )  # fmt: skip
    make_endpoint(
        name="renewals", kind=Endpoint.Kind.HANDLER, url="", handler="webhook:send",
        payload={"url": "https://hooks.example.com/renewals", "n": 3},
        schedule_type=Endpoint.ScheduleType.INTERVAL, cron_expression="", interval_seconds=900,
        starts_at=WINDOW_START, overlap_policy="allow", missed_policy="skip", max_attempts=1,
        enabled=False,
    )  # fmt: skip
    make_endpoint(
        name="launch-mail", url="https://example.com/launch", cron_expression="",
        schedule_type=Endpoint.ScheduleType.ONCE,
        run_at=(timezone.now() + timedelta(days=3)).replace(microsecond=0),
        auto_disable_after=1, retry_backoff_seconds=0,
    )  # fmt: skip


def export(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    call_command("exportjobs", "--output", str(path), stdout=io.StringIO())
    return path.read_text(encoding="utf-8")


def settings_of(name: str) -> dict:
    endpoint = Endpoint.objects.get(name=name)
    return {field: getattr(endpoint, field) for field in SETTINGS}


def test_export_wipe_apply_export_gives_the_same_file_and_the_same_settings(
    tmp_path, every_setting
):
    before = {name: settings_of(name) for name in ("nightly-report", "renewals", "launch-mail")}
    first = export(tmp_path, "first.json")

    Endpoint.objects.all().delete()
    call_command("applyjobs", str(tmp_path / "first.json"), stdout=io.StringIO())

    assert export(tmp_path, "second.json") == first
    assert {name: settings_of(name) for name in before} == before


def test_the_export_names_every_setting(tmp_path, every_setting):
    jobs = {job["job_name"]: job for job in json.loads(export(tmp_path, "jobs.json"))}
    nightly = jobs["nightly-report"]
    assert nightly["retry_backoff_seconds"] == 2.5
    assert nightly["retry_backoff_max_seconds"] == 600
    assert (nightly["overlap_policy"], nightly["missed_policy"]) == ("queue_one", "run_all")
    assert nightly["catch_up_window_seconds"] == 7200
    assert (nightly["jitter_seconds"], nightly["auto_disable_after"]) == (30, 4)
    assert nightly["notify_emails"] == "ops@example.com"
    assert nightly["notify_webhook_url"] == "https://hooks.example.com/ops"
    assert (nightly["notify_on_failure"], nightly["notify_on_recovery"]) == (False, False)
    assert (nightly["starts_at"], nightly["max_runs"]) == ("2026-01-05T08:30:00Z", 40)
    assert nightly["ends_at"] == "2027-01-05T08:30:00Z"
    assert jobs["launch-mail"]["max_runs"] is None and jobs["launch-mail"]["starts_at"] is None


def test_applying_an_export_again_changes_nothing(tmp_path, every_setting):
    export(tmp_path, "jobs.json")
    out = io.StringIO()
    call_command("applyjobs", str(tmp_path / "jobs.json"), stdout=out)
    assert out.getvalue().splitlines() == [
        "unchanged launch-mail",
        "unchanged nightly-report",
        "unchanged renewals",
    ]


def test_an_export_restores_settings_changed_since(tmp_path, every_setting):
    export(tmp_path, "jobs.json")
    Endpoint.objects.filter(name="nightly-report").update(
        overlap_policy="skip", max_runs=None, notify_on_failure=True, retry_backoff_seconds=10
    )
    out = io.StringIO()
    call_command("applyjobs", str(tmp_path / "jobs.json"), stdout=out)
    assert "updated nightly-report: " in out.getvalue()
    restored = Endpoint.objects.get(name="nightly-report")
    assert (restored.overlap_policy, restored.max_runs) == ("queue_one", 40)
    assert (restored.notify_on_failure, restored.retry_backoff_seconds) == (False, 2.5)


def test_a_hand_written_job_without_settings_keeps_an_existing_jobs_settings(
    tmp_path, every_setting
):
    (tmp_path / "jobs.json").write_text(
        json.dumps([{"job_name": "nightly-report", "url": "https://example.com/r2"}])
    )
    call_command("applyjobs", str(tmp_path / "jobs.json"), stdout=io.StringIO())
    endpoint = Endpoint.objects.get(name="nightly-report")
    assert endpoint.url == "https://example.com/r2"
    assert (endpoint.overlap_policy, endpoint.max_runs) == ("queue_one", 40)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("overlap_policy", "sometimes", "not a valid choice"),
        ("missed_policy", 3, "Must be a string"),
        ("retry_backoff_seconds", "10", "Must be a number"),
        ("max_runs", 1.5, "Must be a whole number"),
        ("starts_at", "tomorrow", "ISO 8601"),
        ("notify_on_failure", "no", "true or false"),
        ("notify_on_recovery", None, "true or false"),
        ("notify_emails", "not an address", "is not an email address"),
    ],
)
def test_a_bad_setting_is_refused_by_name(tmp_path, setting, value, words):
    job = {"job_name": "j", "url": "https://example.com/", setting: value}
    (tmp_path / "jobs.json").write_text(json.dumps([job]))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("applyjobs", str(tmp_path / "jobs.json"), stdout=io.StringIO(), stderr=err)
    assert f"job 1 (j): {setting}: " in err.getvalue()
    assert words in err.getvalue()
    assert not Endpoint.objects.exists()
