"""Heartbeats at every door: job files, the Nightly Scheduler job API, the Schedules API."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from endpoints.models import Endpoint

pytest_plugins = ["tests.api_support"]

BACKUP = {
    "job_name": "db-backup",
    "kind": "heartbeat",
    "cron_expression": "30 2 * * *",
    "timezone": "Europe/Paris",
    "grace_seconds": 900,
}


def applyjobs(tmp_path, jobs) -> str:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs))
    out = io.StringIO()
    call_command("applyjobs", str(path), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_job_file_makes_a_heartbeat_and_exports_it_back_the_same(db, tmp_path):
    applyjobs(tmp_path, [BACKUP])
    backup = Endpoint.objects.get(name="db-backup")
    assert (backup.kind, backup.grace_seconds, backup.next_run_at) == ("heartbeat", 900, None)
    assert backup.expected_at is not None
    out = io.StringIO()
    call_command("exportjobs", stdout=out)
    (exported,) = json.loads(out.getvalue())
    assert {key: exported[key] for key in BACKUP} == BACKUP
    assert "url" not in exported and "handler" not in exported
    assert applyjobs(tmp_path, [exported]).strip() == "unchanged db-backup"


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"url": "https://example.com/"}, "url", "it takes no 'url'"),
        ({"handler": "billing:check-renewals"}, "handler", "it takes no 'handler'"),
        ({"kind": "robot"}, "kind", "Must be one of http, handler, heartbeat"),
        ({"cron_expression": None}, "cron_expression", "cron expression or an interval"),
        ({"grace_seconds": 0}, "grace_seconds", "greater than or equal to 1"),
    ],
)
def test_a_heartbeat_job_file_with_a_wrong_field_is_refused(db, tmp_path, extra, field, message):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{**BACKUP, **extra}]))
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("applyjobs", str(path), stdout=io.StringIO(), stderr=err)
    assert field in err.getvalue() and message in err.getvalue()
    assert not Endpoint.objects.exists()


def test_only_a_heartbeat_takes_grace_seconds(db, tmp_path):
    path = tmp_path / "jobs.json"
    job = {"job_name": "hook", "url": "https://example.com/", "grace_seconds": 60}
    path.write_text(json.dumps([job]))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("applyjobs", str(path), stdout=io.StringIO(), stderr=err)
    assert "Only heartbeats take 'grace_seconds'" in err.getvalue()


def test_the_job_api_creates_a_heartbeat_and_shows_where_to_ping_it(editor, token_client):
    api = token_client(editor)
    created = api.post("/api/v1/scheduler/jobs", BACKUP, format="json")
    assert created.status_code == 201, created.json()
    job = api.get("/api/v1/scheduler/jobs").json()["data"][0]
    backup = Endpoint.objects.get(name="db-backup")
    assert job["kind"] == "heartbeat"
    assert job["grace_seconds"] == 900
    assert job["ping_url"] == f"http://127.0.0.1:8000/ping/{backup.uuid}"
    assert job["next_run_at"] == backup.expected_at.isoformat().replace("+00:00", "Z")
    assert (job["last_ping_at"], job["late"]) == (None, False)
    refused = api.post(f"/api/v1/scheduler/jobs/{backup.name}/trigger", {}, format="json")
    assert refused.status_code == 400
    assert "not run by cronplane" in refused.json()["details"]["kind"]


def test_the_schedules_api_lists_a_heartbeat_as_a_schedule(editor, token_client, make_endpoint):
    backup = make_endpoint(
        name="db-backup", kind="heartbeat", url="", cron_expression="30 2 * * *", timezone="UTC"
    )
    api = token_client(editor)
    (schedule,) = api.get("/api/v1/schedules").json()["data"]
    assert schedule["workflowId"] == str(backup.uuid)
    assert (schedule["kind"], schedule["cronExpression"]) == ("heartbeat", "30 2 * * *")
    assert schedule["nextRun"] is not None
    assert schedule["pingUrl"].endswith(f"/ping/{backup.uuid}")
    assert schedule["graceSeconds"] == 3600


def test_the_admin_shows_a_heartbeat_with_its_ping_url(client, admin_user, make_endpoint):
    backup = make_endpoint(name="db-backup", kind="heartbeat", url="", cron_expression="@daily")
    client.force_login(admin_user)
    page = client.get(f"/admin/endpoints/endpoint/{backup.pk}/change/").content.decode()
    assert f"/ping/{backup.uuid}" in page
    assert 'name="grace_seconds"' in page
