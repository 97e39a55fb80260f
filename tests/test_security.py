"""Deploy settings, login throttling, security headers, and hostile input refused or escaped."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from endpoints.models import Endpoint
from runs.models import Log
from tests.processes import manage
from tests.target import XSS_BODY

STRONG_KEY = "k" * 10 + "Z7!q" * 15


def test_check_deploy_is_clean_with_production_settings(db):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", DEBUG="false", HTTPS="true",
        SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="cron.example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_to_start_without_a_secret_key_in_production(db):
    result = manage("check", DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_pages_carry_security_headers(client):
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_sign_in_locks_after_repeated_failures_per_user_and_address(client, editor, settings):
    wrong = {"username": editor.username, "password": "x"}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/accounts/login/", wrong)
        assert response.status_code == 200  # the form again, with its error
    assert client.post("/accounts/login/", wrong).status_code == 429  # the last straw
    right = {"username": editor.username, "password": "pw-edith-editor-123!"}
    locked = client.post("/accounts/login/", right)
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert int(locked["Retry-After"]) == 15 * 60
    # Another address is not locked out for this user.
    other = client.post("/accounts/login/", right, REMOTE_ADDR="203.0.113.9")
    assert other.status_code == 302


def test_a_successful_sign_in_resets_the_count(client, editor, settings):
    right = {"username": editor.username, "password": "pw-edith-editor-123!"}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": editor.username, "password": "x"})
    assert client.post("/accounts/login/", right).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": editor.username, "password": "x"})
    assert client.post("/accounts/login/", right).status_code == 302


BASE = {"cron_expression": "@hourly", "url": "https://api.example.com/x"}
HOSTILE_JOBS = [
    ({"job_name": "<script>alert(1)</script>"}, "job_name"),
    ({"job_name": "a" * 101}, "job_name"),
    ({"job_name": "white space"}, "job_name"),
    ({"job_name": "crlf", "headers": {"X-A": "ok\r\nX-Injected: 1"}}, "headers"),
    ({"job_name": "lf", "headers": {"X-A": "ok\nSet-Cookie: a=b"}}, "headers"),
    ({"job_name": "nul", "headers": {"X-A": "ok\x00"}}, "headers"),
    ({"job_name": "badname", "headers": {"X A:": "v"}}, "headers"),
    ({"job_name": "bigheaders", "headers": {f"X-{i}": "v" * 100 for i in range(100)}}, "headers"),
    ({"job_name": "bigbody", "method": "POST", "body": "x" * (256 * 1024 + 1)}, "body"),
    ({"job_name": "longurl", "url": "https://example.com/" + "a" * 2100}, "url"),
    ({"job_name": "timeout", "timeout_seconds": 10_000}, "timeout_seconds"),
    ({"job_name": "attempts", "max_attempts": 1000}, "max_attempts"),
    ({"job_name": "status", "expected_status": "2xx; DROP TABLE"}, "expected_status"),
    ({"job_name": "tz", "timezone": "../../etc/passwd"}, "timezone"),
    ({"job_name": "cron", "cron_expression": "* * * * * * * *"}, "cron_expression"),
]


@pytest.mark.parametrize(("job", "field"), HOSTILE_JOBS)
def test_hostile_job_input_is_refused_and_nothing_is_saved(tmp_path, db, job, field):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{**BASE, **job}]))
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("applyjobs", str(path), stdout=StringIO(), stderr=err)
    assert f": {field}: " in err.getvalue()
    assert Endpoint.objects.count() == 0


def test_a_hostile_response_body_is_stored_capped_and_shown_escaped(
    admin_client, make_endpoint, target
):
    endpoint = make_endpoint(name="xss", url=target.url("/html"))
    call_command("runjob", "xss", stdout=StringIO())
    log = Log.objects.get(endpoint=endpoint)
    assert log.response_excerpt == XSS_BODY  # kept as data
    html = admin_client.get(f"/admin/runs/log/{log.pk}/change/").content.decode()
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"job_name": "nul", "description": "a\x00b"}, "description"),
        ({"job_name": "surrogate", "description": "\ud800"}, "description"),
        ({"job_name": "nulbody", "method": "POST", "body": "x\x00"}, "body"),
        (
            {"job_name": "farfuture", "cron_expression": None, "run_at": "9999-12-31T23:00:00Z"},
            "run_at",
        ),
    ],
)
def test_text_and_dates_no_database_can_keep_are_refused(tmp_path, db, job, field):
    job = {k: v for k, v in {**BASE, **job}.items() if v is not None}
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([job]))
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("applyjobs", str(path), stdout=StringIO(), stderr=err)
    assert f": {field}: " in err.getvalue()
    assert Endpoint.objects.count() == 0


def test_the_api_docs_page_runs_without_inline_scripts(client, viewer):
    client.force_login(viewer)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert (
        "'unsafe-inline'"
        not in response["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    )


def test_a_hostile_response_is_escaped_on_the_dashboard_and_in_the_api(
    client, viewer, make_endpoint, target
):
    from tests.api_support import client_for

    make_endpoint(name="xss-dash", url=target.url("/html"), description="<b>bold</b>")
    call_command("runjob", "xss-dash", stdout=StringIO())
    log = Log.objects.get()
    client.force_login(viewer)
    for page in ("/", f"/endpoints/{log.endpoint_id}/", f"/runs/{log.pk}/"):
        html = client.get(page).content.decode()
        assert "<script>alert(" not in html and "<b>bold</b>" not in html, page
    assert "&lt;script&gt;alert(" in client.get(f"/runs/{log.pk}/").content.decode()
    api = client_for(viewer).get("/api/v1/scheduler/jobs/xss-dash/last-result")
    assert api["Content-Type"] == "application/json"
