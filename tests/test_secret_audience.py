"""Issue 20.1 and 20.2: handler payload secrets are encrypted and masked at every door, and a
stored secret never changes audience silently (host change, un-marking)."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from calls.masking import MASK
from endpoints.models import Endpoint

pytest_plugins = ["tests.api_support"]

PAYLOAD_SECRET = "Bearer PAYLOADSECRET"
CUSTOM_SECRET = "custom-hunter2"
WEBHOOK = {
    "handler": "webhook:send",
    "payload": {
        "url": "https://example.com/x",
        "headers": {"Authorization": PAYLOAD_SECRET, "X-Custom": CUSTOM_SECRET, "X-Plain": "p"},
        "secret_headers": ["X-Custom"],
        "eventType": "ping",
    },
}


@pytest.fixture
def webhook_job(as_editor):
    job = {"job_name": "hook", "cron_expression": "0 * * * *", **WEBHOOK}
    response = as_editor.post("/api/v1/scheduler/jobs", job, format="json")
    assert response.status_code == 201, response.content
    return Endpoint.objects.get(name="hook")


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_payload_is_encrypted_at_rest(webhook_job):
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM endpoints_endpoint WHERE id = %s", [webhook_job.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith("fernet:") and "PAYLOADSECRET" not in stored
    webhook_job.refresh_from_db()
    assert webhook_job.payload["headers"]["Authorization"] == PAYLOAD_SECRET


def test_a_viewer_reads_no_payload_secret_at_any_door(webhook_job, as_viewer, viewer):
    shown = ""
    for path in (
        "/api/v1/scheduler/jobs",
        "/api/v1/schedules",
        f"/api/v1/schedules/sched-{webhook_job.uuid}",
        "/api/v1/devtools/scheduled-actions",
        f"/api/v1/devtools/scheduled-actions/{webhook_job.uuid}",
    ):
        response = as_viewer.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        shown += response.content.decode()
    browser = _login(viewer)
    shown += browser.get(f"/endpoints/{webhook_job.pk}/").content.decode()
    viewer.user_permissions.add(*_view_permissions())
    shown += browser.get(f"/admin/endpoints/endpoint/{webhook_job.pk}/change/").content.decode()
    out = StringIO()
    call_command("exportjobs", stdout=out)
    shown += out.getvalue()
    assert "PAYLOADSECRET" not in shown and CUSTOM_SECRET not in shown
    assert "X-Plain" in shown and MASK in shown


def _view_permissions():
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename="view_endpoint")


def _exported(name: str) -> dict:
    out = StringIO()
    call_command("exportjobs", stdout=out)
    return next(job for job in json.loads(out.getvalue()) if job["job_name"] == name)


def _apply(tmp_path, job) -> str:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([job]), encoding="utf-8")
    out, err = StringIO(), StringIO()
    try:
        call_command("applyjobs", str(path), stdout=out, stderr=err)
    except CommandError as exc:
        return f"refused: {exc} {err.getvalue()}"
    return out.getvalue()


def test_an_exported_payload_applies_back_keeping_its_secrets(webhook_job, tmp_path):
    job = _exported("hook")
    assert job["payload"]["headers"]["Authorization"] == MASK
    job["description"] = "edited"
    assert not _apply(tmp_path, job).startswith("refused")
    webhook_job.refresh_from_db()
    assert webhook_job.description == "edited"
    assert webhook_job.payload["headers"]["Authorization"] == PAYLOAD_SECRET
    assert webhook_job.payload["headers"]["X-Custom"] == CUSTOM_SECRET


def test_a_payload_secret_is_not_kept_for_another_host(webhook_job, tmp_path, as_editor):
    job = _exported("hook")
    job["payload"]["url"] = "https://attacker.example/x"
    assert "host changed" in _apply(tmp_path, job)
    shown = as_editor.get(f"/api/v1/schedules/sched-{webhook_job.uuid}").json()
    item = {**shown["inputData"][0]["json"], "url": "https://attacker.example/x"}
    response = as_editor.put(
        f"/api/v1/schedules/sched-{webhook_job.uuid}",
        {"inputData": [{"json": item}]},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "host changed" in json.dumps(response.json()["details"])
    webhook_job.refresh_from_db()
    assert webhook_job.payload["url"] == "https://example.com/x"


# --- 20.2: HTTP jobs ------------------------------------------------------------------------


@pytest.fixture
def http_job(make_endpoint):
    return make_endpoint(
        name="billing",
        url="https://api.example.com/charge",
        headers={"Authorization": "Bearer REALTOKEN", "X-Custom": CUSTOM_SECRET},
        secret_headers=["X-Custom"],
    )


def test_changing_the_host_in_a_job_file_drops_the_masked_secrets(http_job, tmp_path):
    job = _exported("billing")
    job["url"] = "https://attacker.example/charge"
    assert "host changed" in _apply(tmp_path, job)
    http_job.refresh_from_db()
    assert http_job.url == "https://api.example.com/charge"


def test_the_same_host_keeps_them_and_a_typed_secret_goes_to_a_new_host(http_job, tmp_path):
    job = _exported("billing")
    job["url"] = "https://api.example.com/v2"
    assert not _apply(tmp_path, job).startswith("refused")
    http_job.refresh_from_db()
    assert http_job.headers["Authorization"] == "Bearer REALTOKEN"
    job["url"] = "https://other.example/x"
    job["headers"] = {"Authorization": "Bearer NEW", "X-Custom": "new-custom"}
    assert not _apply(tmp_path, job).startswith("refused")
    http_job.refresh_from_db()
    assert http_job.headers == job["headers"]


def test_un_marking_a_secret_header_drops_its_stored_value(http_job, tmp_path, as_viewer):
    job = _exported("billing")
    del job["secret_headers"]
    assert "no longer marked secret" in _apply(tmp_path, job)
    assert CUSTOM_SECRET not in as_viewer.get("/api/v1/scheduler/jobs").content.decode()
    assert CUSTOM_SECRET not in json.dumps(_exported("billing"))


def test_the_dashboard_form_says_so_on_a_host_change(http_job, editor):
    from tests.test_dashboard_forms import _edit_data

    data = _edit_data(http_job, f"Authorization: {MASK}\nX-Custom: {MASK}")
    data["url"] = "https://attacker.example/charge"
    response = _login(editor).post(f"/endpoints/{http_job.pk}/edit/", data)
    assert response.status_code == 200
    assert "host changed" in response.content.decode()
    http_job.refresh_from_db()
    assert http_job.url == "https://api.example.com/charge"
    data["secret_headers"] = ""
    data["url"] = "https://api.example.com/charge"
    response = _login(editor).post(f"/endpoints/{http_job.pk}/edit/", data)
    assert "no longer marked secret" in response.content.decode()
    http_job.refresh_from_db()
    assert http_job.secret_headers == ["X-Custom"]


def test_the_admin_says_so_on_a_host_change(http_job, admin_client):
    from tests.test_admin import change_url, form_data

    data = form_data(admin_client.get(change_url(http_job)))
    data["url"] = "https://attacker.example/x"
    response = admin_client.post(change_url(http_job), data)
    assert response.status_code == 200
    assert "host changed" in str(response.context["adminform"].form.errors)
    http_job.refresh_from_db()
    assert http_job.url == "https://api.example.com/charge"


def test_the_run_record_of_a_handler_masks_its_payload_as_every_door_does(webhook_job):
    from runs import executor, services

    log = services.create_run(webhook_job, dry_run=True)
    finished = executor.execute(log.pk)

    shown = json.dumps(finished.request)
    assert "PAYLOADSECRET" not in shown and CUSTOM_SECRET not in shown
    assert finished.request["payload"]["headers"]["X-Plain"] == "p"
