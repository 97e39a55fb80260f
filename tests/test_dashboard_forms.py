"""The endpoint form: create and edit with Endpoint.full_clean() validation shown inline, secrets
masked and kept, the live schedule preview and the "test request" dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from calls.masking import MASK
from endpoints.models import Endpoint
from runs.models import Log
from tests.web_support import login

pytestmark = pytest.mark.django_db

CREATE = reverse("dashboard:endpoint_create")
PREVIEW = reverse("dashboard:schedule_preview")
SECRET = "Bearer top-s3cret-value"
SIGNATURE = "sig-s3cret-value"


def form_data(**overrides: Any) -> dict[str, Any]:
    """What a browser posts for a new HTTP endpoint with the form's defaults."""
    data = {
        "name": "nightly-report",
        "description": "",
        "enabled": "on",
        "kind": "http",
        "method": "POST",
        "url": "http://127.0.0.1:8080/reports",
        "headers": "",
        "secret_headers": "",
        "body": "",
        "handler": "",
        "payload": "",
        "schedule_type": "cron",
        "cron_expression": "0 2 * * *",
        "interval_seconds": "",
        "run_at": "",
        "timezone": "Europe/Paris",
        "starts_at": "",
        "ends_at": "",
        "max_runs": "",
        "timeout_seconds": "30",
        "expected_status": "200-299",
        "response_must_contain": "",
        "max_attempts": "3",
        "retry_backoff_seconds": "10",
        "retry_backoff_max_seconds": "3600",
        "overlap_policy": "skip",
        "missed_policy": "run_once",
        "catch_up_window_seconds": "3600",
        "notify_emails": "",
        "notify_webhook_url": "",
        "notify_on_failure": "on",
        "notify_on_recovery": "on",
        "auto_disable_after": "0",
    }
    data.update(overrides)
    return data


def edit_url(endpoint: Endpoint) -> str:
    return reverse("dashboard:endpoint_edit", args=[endpoint.pk])


@pytest.fixture
def secret_endpoint(make_endpoint) -> Endpoint:
    return make_endpoint(
        name="billing",
        headers={"Authorization": SECRET, "X-Signature": SIGNATURE, "X-Source": "cronplane"},
        secret_headers=["X-Signature"],
    )


# --- create ------------------------------------------------------------------------------------


def test_an_editor_creates_an_endpoint(editor):
    response = login(editor).post(
        CREATE,
        form_data(headers="X-Source: cronplane\nAuthorization: Bearer abc", body='{"a": 1}'),
    )
    endpoint = Endpoint.objects.get(name="nightly-report")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:endpoint", args=[endpoint.pk])
    assert endpoint.headers == {"X-Source": "cronplane", "Authorization": "Bearer abc"}
    assert endpoint.cron_expression == "0 2 * * *" and endpoint.timezone == "Europe/Paris"
    assert endpoint.created_by == editor and endpoint.next_run_at is not None


def test_the_form_offers_every_group_and_a_live_preview(editor):
    html = login(editor).get(CREATE).content.decode()
    for legend in ("Endpoint", "Target", "Schedule", "Success and retries", "Overlap"):
        assert f"<legend>{legend}" in html
    assert f'hx-get="{PREVIEW}"' in html and 'id="schedule-preview"' in html
    assert 'hx-vals=\'{"_test": "1"}\'' in html
    assert '<option value="Europe/Paris">' in html  # the time-zone list


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_editor_may_create(request, role):
    client = login(request.getfixturevalue(role))
    assert client.get(CREATE).status_code == 403
    assert client.post(CREATE, form_data()).status_code == 403
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cron_expression", "61 * * * *", "Invalid cron expression"),
        ("cron_expression", "0 9 * *", "has 4"),
        ("timezone", "Mars/Olympus", "Unknown time zone &#x27;Mars/Olympus&#x27;"),
        ("url", "ftp://files.example.com/x", "http"),
        ("url", "not a url", "http"),
        ("name", "has spaces", "Use letters, digits"),
        ("expected_status", "2xx", "is not a status code"),
        ("headers", "no colon here", "Line 1: write each header as"),
        ("headers", "X-A: 1\nx-a: 2", "Line 2: &#x27;x-a&#x27; is given twice"),
        ("payload", "{not json", "Enter a valid JSON"),
    ],
)
def test_bad_input_is_shown_inline_and_nothing_is_saved(editor, field, value, message):
    response = login(editor).post(CREATE, form_data(**{field: value}))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Nothing was saved" in html
    block = html.split(f'id="field-{field}"')[1].split('<div class="field')[0]
    assert "has-error" in html.split(f'id="field-{field}"')[0].rsplit("<div", 1)[1]
    assert message in block
    assert not Endpoint.objects.exists()


def test_an_interval_is_typed_in_words(editor):
    client = login(editor)
    client.post(CREATE, form_data(schedule_type="interval", interval_seconds="5m"))
    assert Endpoint.objects.get().interval_seconds == 300
    response = client.post(
        CREATE, form_data(name="other", schedule_type="interval", interval_seconds="5 parsecs")
    )
    assert "Invalid interval" in response.content.decode()
    assert Endpoint.objects.count() == 1


def test_a_handler_endpoint_needs_a_registered_handler(editor):
    client = login(editor)
    response = client.post(CREATE, form_data(kind="handler", url="", handler=""))
    assert "Choose a registered handler." in response.content.decode()
    client.post(
        CREATE, form_data(kind="handler", url="", handler="webhook:send", payload='{"a": 1}')
    )
    endpoint = Endpoint.objects.get()
    assert (endpoint.handler, endpoint.payload) == ("webhook:send", {"a": 1})


def test_dates_are_read_on_the_schedule_wall_clock(editor):
    login(editor).post(
        CREATE,
        form_data(schedule_type="once", run_at="2031-07-01T09:30", timezone="Europe/Paris"),
    )
    endpoint = Endpoint.objects.get()
    assert endpoint.run_at == datetime(2031, 7, 1, 7, 30, tzinfo=UTC)  # 09:30 CEST
    html = login(editor).get(edit_url(endpoint)).content.decode()
    assert 'value="2031-07-01T09:30:00"' in html


# --- edit and secrets --------------------------------------------------------------------------


def test_the_edit_form_masks_secret_headers(editor, secret_endpoint):
    html = login(editor).get(edit_url(secret_endpoint)).content.decode()
    assert f"Authorization: {MASK}" in html and f"X-Signature: {MASK}" in html
    assert "X-Source: cronplane" in html
    assert SECRET not in html and SIGNATURE not in html


def _edit_data(endpoint: Endpoint, headers: str, **overrides: Any) -> dict[str, Any]:
    values = {
        "name": endpoint.name,
        "url": endpoint.url,
        "method": endpoint.method,
        "cron_expression": endpoint.cron_expression,
        "timezone": endpoint.timezone,
        "headers": headers,
        "secret_headers": "X-Signature",
    }
    return form_data(**{**values, **overrides})


def test_secrets_left_masked_or_blank_are_kept(editor, secret_endpoint):
    headers = f"Authorization: {MASK}\nX-Signature:\nX-Source: changed"
    response = login(editor).post(edit_url(secret_endpoint), _edit_data(secret_endpoint, headers))
    assert response.status_code == 302
    secret_endpoint.refresh_from_db()
    assert secret_endpoint.headers == {
        "Authorization": SECRET,
        "X-Signature": SIGNATURE,
        "X-Source": "changed",
    }


def test_a_secret_is_replaced_or_removed_when_asked(editor, secret_endpoint):
    headers = "Authorization: Bearer new-one"
    login(editor).post(edit_url(secret_endpoint), _edit_data(secret_endpoint, headers))
    secret_endpoint.refresh_from_db()
    assert secret_endpoint.headers == {"Authorization": "Bearer new-one"}


def test_a_new_secret_header_needs_a_value(editor):
    response = login(editor).post(CREATE, form_data(headers=f"Authorization: {MASK}"))
    assert "&#x27;Authorization&#x27; is masked (••••••) but has no stored value to keep" in (
        response.content.decode()
    )
    assert not Endpoint.objects.exists()


def test_a_secret_typed_into_a_form_with_errors_is_not_sent_back(editor, secret_endpoint):
    typed = "Bearer just-typed-s3cret"
    headers = f"Authorization: {typed}\nX-Signature: {MASK}"
    response = login(editor).post(
        edit_url(secret_endpoint),
        _edit_data(secret_endpoint, headers, cron_expression="nope"),
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert typed not in html and SECRET not in html and SIGNATURE not in html
    assert "type the value of Authorization again" in html
    secret_endpoint.refresh_from_db()
    assert secret_endpoint.headers["Authorization"] == SECRET


def test_unchecking_enabled_pauses_through_set_enabled(editor, make_endpoint):
    endpoint = make_endpoint()
    data = form_data(name="ping", url=endpoint.url, cron_expression=endpoint.cron_expression)
    del data["enabled"]
    login(editor).post(edit_url(endpoint), data)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.next_run_at is None
    assert endpoint.disabled_reason == "Disabled by edith-editor."


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_editor_may_edit(request, make_endpoint, role):
    endpoint = make_endpoint()
    client = login(request.getfixturevalue(role))
    assert client.get(edit_url(endpoint)).status_code == 403
    assert client.post(edit_url(endpoint), form_data(name="renamed")).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.name == "ping"


def test_saving_an_edit_keeps_the_run_statistics(editor, make_endpoint):
    endpoint = make_endpoint()
    Endpoint.objects.filter(pk=endpoint.pk).update(run_count=7, last_status="failed")
    login(editor).post(
        edit_url(endpoint), form_data(name="ping", url=endpoint.url, description="new words")
    )
    endpoint.refresh_from_db()
    assert endpoint.description == "new words"
    assert (endpoint.run_count, endpoint.last_status) == (7, "failed")


# --- the live schedule preview -------------------------------------------------------------------


def test_the_preview_describes_a_cron_and_lists_five_runs_in_its_zone(viewer):
    response = login(viewer).get(
        PREVIEW,
        {"schedule_type": "cron", "cron_expression": "0 9 * * MON-FRI", "timezone": "Asia/Tokyo"},
    )
    html = response.content.decode()
    assert "At 09:00, Monday through Friday" in html and "(Asia/Tokyo)" in html
    assert html.count("09:00:00 JST") == 5
    assert "<html" not in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"cron_expression": "*/5 * * *"}, "has 4"),
        ({"cron_expression": "* * * * *", "timezone": "Nowhere/City"}, "Unknown time zone"),
        ({"schedule_type": "interval", "interval_seconds": "90s"}, "Every 90 seconds"),
        ({"schedule_type": "interval", "interval_seconds": "soon"}, "Invalid interval"),
        ({"schedule_type": "once", "run_at": "2040-01-01T00:00"}, "Once, at 2040-01-01 00:00:00"),
        ({"schedule_type": "once", "run_at": ""}, "Choose when"),
        ({"cron_expression": "  "}, "Type a cron expression"),
        ({"schedule_type": "interval"}, "Type an interval"),
        ({"cron_expression": "0 9 * * *", "timezone": ""}, "Unknown time zone"),
        ({"schedule_type": "none"}, "Manual only"),
        ({"cron_expression": "@hourly"}, "Every hour"),
    ],
)
def test_the_preview_follows_what_is_typed(viewer, params, expected):
    query = {"schedule_type": "cron", "timezone": "UTC", **params}
    assert expected in login(viewer).get(PREVIEW, query).content.decode()


def test_the_form_page_already_shows_the_preview_of_the_stored_schedule(editor, make_endpoint):
    endpoint = make_endpoint(cron_expression="30 6 * * *", timezone="Europe/Berlin")
    html = login(editor).get(edit_url(endpoint)).content.decode()
    assert "At 06:30" in html and html.count(":30:00 CE") == 5


# --- "test request": a dry run of the form as typed ---------------------------------------------


def test_the_test_button_shows_the_request_without_sending_or_saving(editor, secret_endpoint):
    headers = f"Authorization: {MASK}\nX-Signature: {MASK}\nX-Source: cronplane"
    data = _edit_data(secret_endpoint, headers, body='{"full":true}', description="unsaved")
    data["_test"] = "1"
    response = login(editor).post(edit_url(secret_endpoint), data, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<html" not in html and "nothing was sent, nothing saved" in html
    assert "GET http://127.0.0.1:9/ok" in html
    assert f"Authorization: {MASK}" in html and f"X-Signature: {MASK}" in html
    assert "Content-Type: application/json" in html and "&quot;full&quot;: true" in html
    assert SECRET not in html and SIGNATURE not in html
    secret_endpoint.refresh_from_db()
    assert secret_endpoint.description == "" and not Log.objects.exists()


def test_the_test_button_works_without_javascript(editor):
    data = form_data(_test="1")
    response = login(editor).post(CREATE, data)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert "POST http://127.0.0.1:8080/reports" in html
    assert not Endpoint.objects.exists()


def test_the_test_button_lists_what_to_fix_first(editor):
    data = form_data(_test="1", url="gopher://x", cron_expression="bad")
    html = login(editor).post(CREATE, data, HTTP_HX_REQUEST="true").content.decode()
    assert "Fix these first" in html and "<strong>url</strong>" in html
    assert "<strong>cron_expression</strong>" in html


def test_no_page_ever_contains_a_stored_secret(editor, secret_endpoint):
    log = Log.objects.create(
        endpoint=secret_endpoint,
        state="failed",
        finished_at=timezone.now(),
        request={
            "method": "GET",
            "url": secret_endpoint.url,
            "headers": {"Authorization": SECRET, "X-Signature": SIGNATURE},
        },
    )  # fmt: skip  (a snapshot is masked when written; the page masks again regardless)
    client = login(editor)
    pages = [
        reverse("dashboard:index"),
        reverse("dashboard:endpoint", args=[secret_endpoint.pk]),
        edit_url(secret_endpoint),
        reverse("dashboard:endpoint_delete", args=[secret_endpoint.pk]),
        reverse("dashboard:log", args=[log.pk]),
        reverse("dashboard:status"),
    ]
    for page in pages:
        html = client.get(page).content.decode()
        assert SECRET not in html and SIGNATURE not in html, page
        assert "s3cret" not in html, page


def test_notification_settings_are_saved_and_validated(client, editor):
    client.force_login(editor)
    bad = client.post(
        reverse("dashboard:endpoint_create"),
        form_data(notify_emails="ops@example.com, nope", auto_disable_after="5"),
    )
    assert "&#x27;nope&#x27; is not an email address." in bad.content.decode()
    assert not Endpoint.objects.exists()
    client.post(
        reverse("dashboard:endpoint_create"),
        form_data(notify_emails="ops@example.com", auto_disable_after="5"),
    )
    endpoint = Endpoint.objects.get()
    assert endpoint.notification_emails == ["ops@example.com"]
    assert endpoint.auto_disable_after == 5


def test_the_form_refuses_a_past_one_time_instant_inline_and_saves_nothing(editor):
    client = login(editor)
    data = form_data(schedule_type="once", cron_expression="", run_at="2020-01-01T01:00")

    response = client.post(reverse("dashboard:endpoint_create"), data)

    assert response.status_code == 200
    errors = response.context["form"].errors["run_at"]
    assert errors == [
        "2020-01-01T00:00:00Z is in the past: a one-time run must be in the future "
        "(to run the job now, trigger it)."
    ]
    assert not Endpoint.objects.exists()


def test_the_form_accepts_a_future_one_time_instant(editor):
    client = login(editor)
    later = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    data = form_data(schedule_type="once", cron_expression="", run_at=later)

    response = client.post(reverse("dashboard:endpoint_create"), data)

    assert response.status_code == 302, response.context["form"].errors
    assert Endpoint.objects.get().run_at is not None
