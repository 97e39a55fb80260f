"""The audit log: every door records who changed an endpoint and what, and never a secret."""

import io
import json

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from calls.masking import MASK
from endpoints import audit
from endpoints.models import Endpoint
from tests.test_admin import form_data as admin_form_data
from tests.test_dashboard_forms import form_data
from tests.web_support import login

pytest_plugins = ["tests.api_support"]

SECRET = "Bearer top-s3cret-value"
SIGNING = "whsec_s3cretsigningkeys3cretsigningkey"  # base64 of 24 bytes
BOT_TOKEN = "AAHs3cretbottoken"
SECRETS = (SECRET, SIGNING, BOT_TOKEN, "top-s3cret", "s3cret")


@pytest.fixture
def billing(make_endpoint) -> Endpoint:
    endpoint = make_endpoint(
        name="billing",
        description="before",
        headers={"Authorization": SECRET, "X-Source": "cronplane"},
        signing_secret=SIGNING,
        notify_urls=[f"tgram://123456789:{BOT_TOKEN}/4567"],
    )
    LogEntry.objects.all().delete()  # made by the fixture, not a door
    return endpoint


def entries(endpoint: Endpoint) -> list[LogEntry]:
    return list(audit.history(endpoint))


def assert_no_secret_stored() -> None:
    """Nothing in any audit row, read straight from the table, holds a secret."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {LogEntry._meta.db_table}")  # noqa: S608
        stored = json.dumps([list(map(str, row)) for row in cursor.fetchall()])
    for secret in SECRETS:
        assert secret not in stored


def test_a_dashboard_edit_records_the_user_and_each_field_old_to_new(editor, billing):
    data = form_data(
        name="billing",
        url=billing.url,
        description="after",
        headers=f"Authorization: {MASK}\nX-Source: edited",
        cron_expression="0 3 * * *",
        timezone="UTC",
    )
    response = login(editor).post(reverse("dashboard:endpoint_edit", args=[billing.pk]), data)
    assert response.status_code == 302

    [entry] = entries(billing)
    assert audit.who(entry) == "edith-editor (dashboard)"
    assert entry.action == LogEntry.Action.UPDATE
    changes = entry.changes_dict
    assert changes["description"] == ["before", "after"]
    assert changes["cron_expression"] == ["*/5 * * * *", "0 3 * * *"]
    old, new = (json.loads(value) for value in changes["headers"])
    assert old == {"Authorization": MASK, "X-Source": "cronplane"}
    assert new == {"Authorization": MASK, "X-Source": "edited"}
    assert "next_run_at" not in changes and "updated_at" not in changes
    assert_no_secret_stored()


def test_a_changed_secret_is_recorded_as_changed_and_never_stored(editor, billing):
    data = form_data(
        name="billing", url=billing.url, description="before",
        headers="Authorization: Bearer another-s3cret-value\nX-Source: cronplane",
        cron_expression="*/5 * * * *", timezone="UTC",
    )  # fmt: skip
    login(editor).post(reverse("dashboard:endpoint_edit", args=[billing.pk]), data)
    [entry] = entries(billing)
    old, new = entry.changes_dict["headers"]
    assert json.loads(old)["Authorization"] == MASK
    assert new.endswith(audit.SECRET_CHANGED)
    assert "another-s3cret-value" not in json.dumps(entry.changes)
    assert_no_secret_stored()


def test_an_admin_change_records_the_admin_user(superuser, billing):
    client = login(superuser)
    change = reverse("admin:endpoints_endpoint_change", args=[billing.pk])
    data = admin_form_data(client.get(change))
    response = client.post(change, {**data, "description": "from the admin", "max_attempts": 5})
    assert response.status_code == 302

    [entry] = entries(billing)
    assert audit.who(entry) == "ada-admin (admin)"
    assert entry.changes_dict["description"] == ["before", "from the admin"]
    assert entry.changes_dict["max_attempts"] == ["3", "5"]
    assert set(entry.changes_dict) == {"description", "max_attempts"}  # masks kept the secrets
    history = client.get(reverse("admin:endpoints_endpoint_auditlog", args=[billing.pk]))
    assert history.status_code == 200
    assert "from the admin" in history.content.decode()
    assert_no_secret_stored()


def test_the_jobs_api_records_the_token_and_its_user(token_client, editor):
    client = token_client(editor)
    job = {
        "job_name": "nightly",
        "cron_expression": "0 2 * * *",
        "url": "http://127.0.0.1:9/",
        "headers": {"Authorization": SECRET},
        "signing_secret": SIGNING,
    }
    assert client.post("/api/v1/scheduler/jobs", job, format="json").status_code == 201
    endpoint = Endpoint.objects.get(name="nightly")
    [created] = entries(endpoint)
    assert created.action == LogEntry.Action.CREATE
    assert audit.who(created) == "edith-editor (API token “tests”)"
    assert created.changes_dict["name"] == ["None", "nightly"]
    assert "id" not in created.changes_dict and "created_at" not in created.changes_dict
    assert created.changes_dict["signing_secret"] == ["", MASK]
    assert json.loads(created.changes_dict["headers"][1]) == {"Authorization": MASK}

    assert client.delete("/api/v1/scheduler/jobs/nightly").status_code == 200
    deleted = LogEntry.objects.get(action=LogEntry.Action.DELETE)
    assert audit.who(deleted) == "edith-editor (API token “tests”)"
    assert_no_secret_stored()


def test_the_schedules_api_records_the_token(token_client, editor, billing):
    client = token_client(editor)
    response = client.put(
        f"/api/v1/schedules/sched-{billing.pk}", {"cronExpression": "0 9 * * *"}, format="json"
    )
    assert response.status_code == 200
    [entry] = entries(billing)
    assert audit.who(entry) == "edith-editor (API token “tests”)"
    assert entry.changes_dict["cron_expression"] == ["*/5 * * * *", "0 9 * * *"]
    assert_no_secret_stored()


def test_the_scheduled_actions_api_records_the_token(token_client, editor):
    response = token_client(editor).post(
        "/api/v1/devtools/scheduled-actions",
        {"actionType": "webhook:send", "payload": {"eventType": "task:created"}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    [entry] = entries(Endpoint.objects.get())
    assert entry.action == LogEntry.Action.CREATE
    assert audit.who(entry) == "edith-editor (API token “tests”)"


def test_applyjobs_records_the_command_and_who_ran_it(tmp_path, billing):
    job = {
        "job_name": "billing",
        "description": "from a job file",
        "cron_expression": "*/5 * * * *",
        "timezone": "UTC",
        "url": billing.url,
        "headers": {"Authorization": MASK, "X-Source": "cronplane"},
        "signing_secret": MASK,
    }
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([job]))
    call_command("applyjobs", str(path), stdout=io.StringIO())

    [entry] = entries(billing)
    who = audit.who(entry)
    assert who.startswith("applyjobs (") and "@" in who
    assert entry.changes_dict["description"] == ["before", "from a job file"]
    assert "headers" not in entry.changes_dict and "signing_secret" not in entry.changes_dict
    assert_no_secret_stored()


def test_a_dashboard_delete_is_recorded_with_every_secret_masked(editor, billing):
    login(editor).post(reverse("dashboard:endpoint_delete", args=[billing.pk]))
    deleted = LogEntry.objects.get(action=LogEntry.Action.DELETE)
    assert audit.who(deleted) == "edith-editor (dashboard)"
    assert deleted.changes_dict["signing_secret"] == [MASK, ""]
    assert deleted.object_repr == "billing"
    assert_no_secret_stored()


def test_runs_do_not_write_history_but_a_resume_by_the_scheduler_does(billing):
    Endpoint.objects.filter(pk=billing.pk).update(run_count=5, consecutive_failures=2)
    billing.refresh_from_db()
    billing.pause(now=timezone.now(), by="", reason="maintenance")
    billing.set_enabled(True, now=timezone.now())
    assert [audit.who(entry) for entry in entries(billing)] == [
        "cronplane (the scheduler itself)"
    ] * 2
    assert all("run_count" not in entry.changes_dict for entry in entries(billing))


def test_the_endpoint_page_shows_its_history_paginated_and_an_empty_state(editor, billing):
    client = login(editor)
    page = reverse("dashboard:endpoint", args=[billing.pk])
    assert 'id="history-empty"' in client.get(page).content.decode()

    edit = reverse("dashboard:endpoint_edit", args=[billing.pk])
    for number in range(12):
        client.post(
            edit,
            form_data(
                name="billing",
                url=billing.url,
                description=f"edit {number}",
                headers=f"Authorization: {MASK}\nX-Source: cronplane",
                cron_expression="*/5 * * * *",
                timezone="UTC",
            ),  # fmt: skip
        )
    first = client.get(page).content.decode()
    assert first.count('class="change"') == 10
    assert "edith-editor (dashboard)" in first and "edit 11" in first
    assert "Page 1 of 2 · 12 changes" in first
    second = client.get(page, {"history_page": 2}).content.decode()
    assert second.count('class="change"') == 2 and "edit 0" in second
    assert SECRET not in first + second and BOT_TOKEN not in first + second


def test_importcrontab_records_the_command_and_who_ran_it(tmp_path, db):
    crontab = tmp_path / "crontab"
    crontab.write_text("0 3 * * * /usr/local/bin/backup\n")
    call_command("importcrontab", str(crontab), stdout=io.StringIO(), stderr=io.StringIO())
    [entry] = LogEntry.objects.all()
    assert entry.action == LogEntry.Action.CREATE
    assert audit.who(entry).startswith("importcrontab (")


def test_the_jobs_api_serves_a_jobs_history_newest_first(token_client, editor, viewer, billing):
    login(editor).post(
        reverse("dashboard:endpoint_edit", args=[billing.pk]),
        form_data(
            name="billing",
            url=billing.url,
            description="after",
            headers=f"Authorization: {MASK}\nX-Source: cronplane",
            cron_expression="*/5 * * * *",
            timezone="UTC",
        ),  # fmt: skip
    )
    token_client(editor).put(
        f"/api/v1/schedules/sched-{billing.pk}", {"cronExpression": "0 9 * * *"}, format="json"
    )
    response = token_client(viewer).get("/api/v1/scheduler/jobs/billing/history?limit=1")
    assert response.status_code == 200
    body = response.json()
    assert body["pagination"] == {"page": 1, "limit": 1, "total": 2}
    [latest] = body["data"]
    assert latest["action"] == "update" and latest["token"] == "tests"
    assert latest["who"] == "edith-editor (API token “tests”)" and latest["via"] == "api"
    assert latest["changes"]["cron_expression"] == {"old": "*/5 * * * *", "new": "0 9 * * *"}
    earlier = token_client(viewer).get("/api/v1/scheduler/jobs/billing/history?page=2&limit=1")
    [first] = earlier.json()["data"]
    assert first["who"] == "edith-editor (dashboard)"
    assert first["changes"]["description"] == {"old": "before", "new": "after"}
    assert token_client(viewer).get("/api/v1/scheduler/jobs/nope/history").status_code == 404
    for secret in SECRETS:
        assert secret not in json.dumps(body) + json.dumps(earlier.json())
