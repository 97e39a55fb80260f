"""Notification URLs through every door: refused when unknown, masked when shown, kept when a
mask comes back."""

import json

from django.urls import reverse

from endpoints.models import Endpoint
from tests.test_admin import form_data as admin_form_data
from tests.test_dashboard_forms import form_data
from tests.test_jobfile import apply, export, refuse
from tests.web_support import login

pytest_plugins = ["tests.api_support"]

TOKEN = "AAHbottokensecret"
URL = f"tgram://123456789:{TOKEN}/4567"
BAD = "telegraph://123/456"


def test_the_dashboard_form_refuses_an_unknown_service_inline(editor):
    response = login(editor).post(
        reverse("dashboard:endpoint_create"), form_data(notify_urls=f"{URL}\n{BAD}")
    )
    assert response.status_code == 200
    assert "is not a notification service Apprise knows" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_the_dashboard_form_masks_urls_and_keeps_them_when_left_masked(editor, make_endpoint):
    endpoint = make_endpoint(name="nightly-report", notify_urls=[URL])
    client = login(editor)
    edit = reverse("dashboard:endpoint_edit", args=[endpoint.pk])
    page = client.get(edit).content.decode()
    assert TOKEN not in page
    [masked] = endpoint.masked_notify_urls
    assert masked in page
    client.post(
        edit,
        form_data(notify_urls=f"{masked}\nntfy://ntfy.sh/reports", notify_after_failures="3"),
    )
    endpoint.refresh_from_db()
    assert endpoint.notify_urls == [URL, "ntfy://ntfy.sh/reports"]
    assert endpoint.notify_after_failures == 3
    detail = client.get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()
    assert TOKEN not in detail and "3 failed runs in a row" in detail


def test_the_admin_refuses_an_unknown_service_and_masks_urls(superuser, make_endpoint):
    endpoint = make_endpoint(name="billing", notify_urls=[URL])
    client = login(superuser)
    change = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    page = client.get(change)
    assert TOKEN not in page.content.decode()
    data = admin_form_data(page)
    assert client.post(change, data).status_code == 302  # the mask keeps the stored URL
    endpoint.refresh_from_db()
    assert endpoint.notify_urls == [URL]
    response = client.post(change, {**data, "notify_urls": BAD})
    assert response.status_code == 200
    assert "is not a notification service" in str(response.context["adminform"].form.errors)
    endpoint.refresh_from_db()
    assert endpoint.notify_urls == [URL]


def test_the_jobs_api_refuses_an_unknown_service_with_a_field_error(as_editor):
    job = {"job_name": "nightly", "cron_expression": "0 2 * * *", "url": "http://127.0.0.1:9/"}
    response = as_editor.post(
        "/api/v1/scheduler/jobs", {**job, "notify_urls": [BAD]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "notify_urls" in response.json()["details"]
    assert not Endpoint.objects.exists()

    created = as_editor.post(
        "/api/v1/scheduler/jobs",
        {**job, "notify_urls": [URL], "notify_after_failures": 2},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert TOKEN not in json.dumps(created.json())
    assert created.json()["notify_after_failures"] == 2
    assert Endpoint.objects.get().notify_urls == [URL]


def test_the_schedules_api_refuses_an_unknown_service_and_keeps_a_masked_url(
    as_editor, make_endpoint
):
    endpoint = make_endpoint(name="wf", schedule_type="none", cron_expression="")
    base = "/api/v1/schedules"
    body = {"workflowId": str(endpoint.uuid), "cronExpression": "0 * * * *"}
    refused = as_editor.post(base, {**body, "notifyUrls": [BAD]}, format="json")
    assert refused.status_code == 400
    assert "notifyUrls" in refused.json()["details"]
    created = as_editor.post(base, {**body, "notifyUrls": [URL]}, format="json")
    assert created.status_code == 201, created.json()
    shown = created.json()["notifyUrls"]
    assert TOKEN not in json.dumps(shown)
    again = as_editor.put(f"{base}/{created.json()['id']}", {"notifyUrls": shown}, format="json")
    assert again.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.notify_urls == [URL]


def test_job_files_refuse_an_unknown_service_and_export_masks(tmp_path, make_endpoint):
    job = {"job_name": "nightly", "cron_expression": "0 2 * * *", "url": "http://127.0.0.1:9/"}
    lines = refuse(tmp_path, [{**job, "notify_urls": [BAD]}])
    assert any("notify_urls" in line for line in lines)
    apply(tmp_path, [{**job, "notify_urls": [URL], "notify_after_failures": 4}])
    exported = export()
    assert TOKEN not in json.dumps(exported)
    apply(tmp_path, exported)  # the masks keep the stored URLs
    endpoint = Endpoint.objects.get(name="nightly")
    assert endpoint.notify_urls == [URL] and endpoint.notify_after_failures == 4


def test_the_endpoint_page_sends_a_test_notification_and_says_how_it_went(
    operator, viewer, make_endpoint, target
):
    endpoint = make_endpoint(
        name="tested",
        notify_urls=[
            f"json://127.0.0.1:{target.port}/hook",
            f"json://127.0.0.1:{target.port}/status/500",
        ],
    )
    page = reverse("dashboard:endpoint", args=[endpoint.pk])
    send = reverse("dashboard:endpoint_test_notification", args=[endpoint.pk])
    assert 'id="test-notification"' in login(operator).get(page).content.decode()
    assert 'id="test-notification"' not in login(viewer).get(page).content.decode()
    assert login(viewer).post(send).status_code == 403

    response = login(operator).post(send, follow=True)
    said = [str(message) for message in response.context["messages"]]
    assert said[0].startswith("Test notification sent to json://127.0.0.1")
    assert said[1].startswith("Test notification to json://127.0.0.1") and "failed" in said[1]
    assert [r.json()["title"] for r in target.received if r.path == "/hook"] == [
        "[cronplane] test notification for tested"
    ]


def test_testing_an_endpoint_without_channels_says_so(operator, make_endpoint, settings):
    settings.NOTIFY_EMAILS, settings.NOTIFY_WEBHOOK_URL, settings.NOTIFY_URLS = [], "", []
    endpoint = make_endpoint(name="silent")
    response = login(operator).post(
        reverse("dashboard:endpoint_test_notification", args=[endpoint.pk]), follow=True
    )
    [said] = [str(message) for message in response.context["messages"]]
    assert said == "No notification channel to test: add one in Edit first."
