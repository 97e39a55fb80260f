"""Job files: endpoints.jobs (job object ↔ Endpoint) and the applyjobs / exportjobs commands."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from calls.masking import MASK
from endpoints.jobs import apply_job
from endpoints.models import Endpoint

pytestmark = pytest.mark.django_db

NIGHTLY = {
    "job_name": "nightly-report",
    "description": "Sends the nightly report",
    "cron_expression": "0 2 * * *",
    "timezone": "Europe/Paris",
    "is_active": True,
    "url": "https://reports.example.com/run",
    "method": "POST",
    "headers": {"Authorization": "Bearer s3cret-token", "X-Trace": "on"},
    "body": {"full": True},
    "expected_status": "200-299,304",
    "timeout_seconds": 10,
    "max_attempts": 2,
}
RENEWALS = {
    "job_name": "billing:check-renewals",
    "cron_expression": "@hourly",
    "handler": "webhook:send",
    "payload": {"url": "https://hooks.example.com/renewals"},
    "is_active": True,
}


def write(tmp_path: Path, jobs: Any) -> str:
    path = tmp_path / "jobs.json"
    path.write_text(jobs if isinstance(jobs, str) else json.dumps(jobs), encoding="utf-8")
    return str(path)


def apply(tmp_path: Path, jobs: Any, *args: str) -> list[str]:
    out = io.StringIO()
    call_command("applyjobs", write(tmp_path, jobs), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().splitlines()


def refuse(tmp_path: Path, jobs: Any) -> list[str]:
    err = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("applyjobs", write(tmp_path, jobs), stdout=io.StringIO(), stderr=err)
    assert raised.value.returncode == 1
    return err.getvalue().splitlines()


def export(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("exportjobs", *args, stdout=out)
    return json.loads(out.getvalue())


# --- applying --------------------------------------------------------------------------------


def test_it_creates_every_job_in_the_file_and_prints_one_line_each(tmp_path):
    lines = apply(tmp_path, [NIGHTLY, RENEWALS])

    assert lines == ["created nightly-report", "created billing:check-renewals"]
    nightly = Endpoint.objects.get(name="nightly-report")
    assert nightly.kind == Endpoint.Kind.HTTP
    assert nightly.schedule_type == Endpoint.ScheduleType.CRON
    assert nightly.timezone == "Europe/Paris"
    assert nightly.headers["Authorization"] == "Bearer s3cret-token"
    assert nightly.body == '{"full":true}'
    assert nightly.timeout_seconds == 10
    assert nightly.next_run_at is not None


def test_it_infers_a_handler_job_from_the_handler_field(tmp_path):
    apply(tmp_path, [RENEWALS])

    renewals = Endpoint.objects.get(name="billing:check-renewals")
    assert renewals.kind == Endpoint.Kind.HANDLER
    assert renewals.handler == "webhook:send"
    assert renewals.payload == {"url": "https://hooks.example.com/renewals"}
    assert renewals.cron_expression == "0 * * * *"


def test_it_names_the_fields_an_update_changes(tmp_path):
    apply(tmp_path, [NIGHTLY, RENEWALS])

    changed = {**NIGHTLY, "cron_expression": "30 3 * * *", "max_attempts": 5}
    lines = apply(tmp_path, [changed, RENEWALS])

    assert lines == [
        "updated nightly-report: cron_expression, max_attempts",
        "unchanged billing:check-renewals",
    ]
    nightly = Endpoint.objects.get(name="nightly-report")
    assert (nightly.cron_expression, nightly.max_attempts) == ("30 3 * * *", 5)


def test_applying_the_same_file_twice_changes_nothing_the_second_time(tmp_path):
    apply(tmp_path, [NIGHTLY, RENEWALS])
    updated_at = Endpoint.objects.get(name="nightly-report").updated_at

    lines = apply(tmp_path, [NIGHTLY, RENEWALS])

    assert lines == ["unchanged nightly-report", "unchanged billing:check-renewals"]
    assert Endpoint.objects.get(name="nightly-report").updated_at == updated_at


def test_a_job_without_a_schedule_is_manual_only_and_interval_seconds_makes_an_interval(tmp_path):
    manual = {"job_name": "manual", "url": "https://example.com/"}
    every_five = {"job_name": "every-five", "url": "https://example.com/", "interval_seconds": 300}

    apply(tmp_path, [manual, every_five])

    manual_job = Endpoint.objects.get(name="manual")
    assert manual_job.schedule_type == Endpoint.ScheduleType.NONE
    assert manual_job.next_run_at is None
    every = Endpoint.objects.get(name="every-five")
    assert (every.schedule_type, every.interval_seconds) == (Endpoint.ScheduleType.INTERVAL, 300)
    assert every.next_run_at is not None


@pytest.mark.parametrize(
    ("given", "stored"),
    [(204, "204"), ([200, 201], "200,201"), ("200-299,304", "200-299,304")],
)
def test_expected_status_takes_a_spec_a_code_or_a_list(given, stored):
    job = {"job_name": "status", "url": "https://example.com/", "expected_status": given}

    endpoint, _ = apply_job(job, None)

    assert endpoint.expected_status == stored


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"cron_expression": "61 * * * *"}, "cron_expression", "Invalid cron expression"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Unknown time zone"),
        ({"url": "ftp://reports.example.com/"}, "url", "http:// or https://"),
        ({"colour": "blue"}, "colour", "Unknown field"),
        ({"is_active": "yes"}, "is_active", "true or false"),
        ({"job_name": "has spaces"}, "job_name", "no spaces"),
        ({"max_attempts": 99}, "max_attempts", "less than or equal to 20"),
        ({"interval_seconds": 60}, "interval_seconds", "only one of"),
        ({"body": 42}, "body", "Must be a string"),
        ({"headers": {"Bad Name": "x"}}, "headers", "not a valid header name"),
        ({"payload": {"a": 1}}, "payload", "Only handler jobs"),
    ],
)
def test_it_refuses_the_whole_file_when_one_job_is_invalid(tmp_path, change, field, words):
    problems = refuse(tmp_path, [RENEWALS, {**NIGHTLY, **change}])

    assert len(problems) == 1
    assert problems[0].startswith("job 2 (")
    assert f": {field}: " in problems[0]
    assert words in problems[0]
    assert not Endpoint.objects.exists()


def test_it_refuses_an_unknown_handler_and_keeps_the_stored_jobs_as_they_were(
    tmp_path, make_endpoint
):
    make_endpoint(name="nightly-report", cron_expression="0 1 * * *")
    unknown = {**RENEWALS, "handler": "billing:no-such-thing"}

    problems = refuse(tmp_path, [{**NIGHTLY, "cron_expression": "0 4 * * *"}, unknown])

    assert problems == [
        "job 2 (billing:check-renewals): handler: "
        "No handler named 'billing:no-such-thing' is registered."
    ]
    assert Endpoint.objects.get().cron_expression == "0 1 * * *"


def test_it_reports_every_problem_of_every_job_at_once(tmp_path):
    bad = {**NIGHTLY, "cron_expression": "nope", "timezone": "Nowhere/Land"}

    problems = refuse(tmp_path, [bad, {"job_name": "x", "url": "file:///etc/passwd"}])

    assert sorted(problems) == sorted(
        [
            f"job 1 (nightly-report): cron_expression: {_cron_problem('nope')}",
            "job 1 (nightly-report): timezone: Unknown time zone 'Nowhere/Land'; "
            "use an IANA name such as 'Europe/Paris'.",
            "job 2 (x): url: Only http:// or https:// URLs can be called.",
        ]
    )


def _cron_problem(expression: str) -> str:
    with pytest.raises(ValidationError) as raised:
        apply_job({"job_name": "probe", "url": "https://x.test/", "cron_expression": expression})
    return raised.value.message_dict["cron_expression"][0]


def test_it_refuses_a_file_that_names_a_job_twice(tmp_path):
    problems = refuse(tmp_path, [NIGHTLY, RENEWALS, {**NIGHTLY, "max_attempts": 1}])

    assert problems == ["job 3 (nightly-report): job_name: 'nightly-report' is already job 1."]
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize("text", ['[{"job_name": "a",}]', "", "[1, 2"])
def test_it_refuses_malformed_json(tmp_path, text):
    problems = refuse(tmp_path, text)

    assert len(problems) == 1
    assert "invalid JSON at line 1" in problems[0]
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize("jobs", [NIGHTLY, ["nightly-report"]])
def test_it_refuses_anything_but_a_list_of_job_objects(tmp_path, jobs):
    with pytest.raises(CommandError):
        call_command("applyjobs", write(tmp_path, jobs), stdout=io.StringIO(), stderr=io.StringIO())

    assert not Endpoint.objects.exists()


def test_dry_run_prints_what_would_change_and_changes_nothing(tmp_path, make_endpoint):
    make_endpoint(name="nightly-report", url="https://reports.example.com/run")

    lines = apply(tmp_path, [NIGHTLY, RENEWALS], "--dry-run")

    assert lines[0].startswith("updated nightly-report: ")
    assert lines[1:] == ["created billing:check-renewals", "Dry run: nothing was changed."]
    assert list(Endpoint.objects.values_list("name", "cron_expression")) == [
        ("nightly-report", "*/5 * * * *")
    ]


def test_jobs_missing_from_the_file_are_kept_unless_pruned(tmp_path, make_endpoint):
    make_endpoint(name="old-job")

    apply(tmp_path, [NIGHTLY])
    assert Endpoint.objects.filter(name="old-job").exists()

    lines = apply(tmp_path, [NIGHTLY], "--prune")
    assert lines == ["unchanged nightly-report", "deleted old-job"]
    assert list(Endpoint.objects.values_list("name", flat=True)) == ["nightly-report"]


def test_it_reads_the_jobs_from_stdin(monkeypatch):
    out = io.StringIO()

    call_command("applyjobs", "-", stdin=io.StringIO(json.dumps([RENEWALS])), stdout=out)

    assert out.getvalue() == "created billing:check-renewals\n"


def test_turning_a_job_off_and_on_records_why_and_forgives_past_failures(tmp_path):
    apply(tmp_path, [NIGHTLY])
    Endpoint.objects.filter(name="nightly-report").update(consecutive_failures=5)

    assert apply(tmp_path, [{**NIGHTLY, "is_active": False}]) == [
        "updated nightly-report: is_active"
    ]
    off = Endpoint.objects.get(name="nightly-report")
    assert (off.enabled, off.disabled_reason, off.next_run_at) == (
        False,
        "Disabled by applyjobs.",
        None,
    )

    apply(tmp_path, [NIGHTLY])
    on = Endpoint.objects.get(name="nightly-report")
    assert (on.enabled, on.disabled_reason, on.consecutive_failures) == (True, "", 0)
    assert on.next_run_at is not None


def test_apply_job_leaves_the_stored_endpoint_untouched_when_the_job_is_invalid(make_endpoint):
    stored = make_endpoint(name="nightly-report")

    with pytest.raises(ValidationError) as raised:
        apply_job({**NIGHTLY, "timezone": "Nowhere/Land", "is_active": None}, stored)

    assert set(raised.value.message_dict) == {"timezone"}
    assert stored.timezone == "UTC"


# --- exporting, and secrets --------------------------------------------------------------------


def test_export_lists_jobs_sorted_by_name_with_secret_header_values_masked(make_endpoint):
    make_endpoint(
        name="zeta",
        headers={"Authorization": "Bearer s3cret-token", "X-Token": "t0ken", "Accept": "text/csv"},
        secret_headers=["x-token"],
    )
    make_endpoint(name="alpha", kind=Endpoint.Kind.HANDLER, url="", handler="webhook:send")

    jobs = export()

    assert [job["job_name"] for job in jobs] == ["alpha", "zeta"]
    assert jobs[1]["headers"] == {"Authorization": MASK, "X-Token": MASK, "Accept": "text/csv"}
    assert jobs[1]["secret_headers"] == ["x-token"]
    assert "url" not in jobs[0] and jobs[0]["handler"] == "webhook:send"


def test_export_then_apply_round_trips_and_keeps_secret_header_values(tmp_path, make_endpoint):
    apply(tmp_path, [NIGHTLY, RENEWALS, {"job_name": "manual", "url": "https://example.com/"}])
    make_endpoint(
        name="once",
        schedule_type=Endpoint.ScheduleType.ONCE,
        run_at=timezone.now() + timezone.timedelta(days=1),
        headers={"Cookie": "session=abc"},
    )
    exported = tmp_path / "export.json"
    call_command("exportjobs", "--output", str(exported), stdout=io.StringIO())
    assert "s3cret-token" not in exported.read_text(encoding="utf-8")

    out = io.StringIO()
    call_command("applyjobs", str(exported), stdout=out)

    assert out.getvalue().splitlines() == [
        "unchanged billing:check-renewals",
        "unchanged manual",
        "unchanged nightly-report",
        "unchanged once",
    ]
    assert Endpoint.objects.get(name="nightly-report").headers == NIGHTLY["headers"]
    assert Endpoint.objects.get(name="once").headers == {"Cookie": "session=abc"}


def test_a_changed_secret_value_is_applied_but_never_printed(tmp_path):
    apply(tmp_path, [NIGHTLY])
    rotated = {**NIGHTLY, "headers": {**NIGHTLY["headers"], "Authorization": "Bearer n3w"}}

    endpoint, changes = apply_job(rotated, Endpoint.objects.get(name="nightly-report"))

    assert changes == {"headers": (
        {"Authorization": MASK, "X-Trace": "on"}, {"Authorization": MASK, "X-Trace": "on"}
    )}  # fmt: skip
    assert endpoint.headers["Authorization"] == "Bearer n3w"


def test_a_masked_header_with_no_stored_value_is_refused(tmp_path):
    masked = {**NIGHTLY, "headers": {"Authorization": MASK}}

    problems = refuse(tmp_path, [masked])

    assert problems == [
        f"job 1 (nightly-report): headers: 'Authorization' is masked ({MASK}) but has no stored "
        "value to keep; give its value."
    ]


def test_a_description_longer_than_the_cap_is_refused_by_every_door(db):
    from endpoints.jobs import apply_job
    from endpoints.models import MAX_DESCRIPTION_LENGTH

    job = {"job_name": "wordy", "url": "https://example.com/x", "cron_expression": "@daily"}
    job["description"] = "x" * (MAX_DESCRIPTION_LENGTH + 1)

    with pytest.raises(ValidationError) as refused:
        apply_job(job)

    assert refused.value.message_dict["description"] == [
        f"At most {MAX_DESCRIPTION_LENGTH} characters; this one has {MAX_DESCRIPTION_LENGTH + 1}."
    ]
