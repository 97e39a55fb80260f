"""The Django admin for endpoints and runs: lists, actions and permissions, secrets, the inline."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.forms import CheckboxInput, MultiWidget
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_q.models import OrmQ

from calls.masking import MASK
from endpoints.models import Endpoint
from runs.models import Log
from tests.web_support import login

pytestmark = pytest.mark.django_db

ENDPOINTS = reverse("admin:endpoints_endpoint_changelist")
LOGS = reverse("admin:runs_log_changelist")
SECRETS = {
    "Authorization": "Bearer auth-s3cret",
    "Cookie": "session=cookie-s3cret",
    "X-API-Key": "key-s3cret",
    "Proxy-Authorization": "Basic proxy-s3cret",
    "X-Signature": "sig-s3cret",
}


def staff(user: User) -> User:
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def admin_client(superuser) -> Client:
    return login(superuser)


def change_url(endpoint: Endpoint) -> str:
    return reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])


def act(client: Client, action: str, *endpoints: Endpoint) -> Any:
    selected = [str(endpoint.pk) for endpoint in endpoints]
    return client.post(
        ENDPOINTS, {"action": action, "_selected_action": selected, "index": 0}, follow=True
    )


def offered_actions(client: Client) -> set[str]:
    response = client.get(ENDPOINTS)
    assert response.status_code == 200
    action_form = response.context["action_form"]
    if action_form is None:
        return set()
    return {name for name, _ in action_form.fields["action"].choices if name}


def form_data(response: Any) -> dict[str, Any]:
    """The POST a browser would send for an admin change page as rendered (nothing edited)."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.extend([inline.formset.management_form, *inline.formset.forms])
    data: dict[str, Any] = {}
    for form in forms:
        for bound in form:
            value, widget = bound.value(), bound.field.widget
            if isinstance(widget, MultiWidget):
                parts = value if isinstance(value, list) else widget.decompress(value)
                for index, part in enumerate(parts):
                    data[f"{bound.html_name}_{index}"] = "" if part is None else part
            elif isinstance(widget, CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            else:
                data[bound.html_name] = "" if value is None else value
    return data


@pytest.fixture
def nightly(make_endpoint) -> Endpoint:
    return make_endpoint(
        name="nightly-report",
        description="Sends the nightly report",
        url="https://reports.example.com/run",
        cron_expression="0 2 * * *",
        timezone="Europe/Paris",
        headers={**SECRETS, "Accept": "text/csv"},
        secret_headers=["x-signature"],
    )


@pytest.fixture
def renewals(make_endpoint) -> Endpoint:
    endpoint = make_endpoint(
        name="billing-renewals",
        kind=Endpoint.Kind.HANDLER,
        url="",
        handler="webhook:send",
        payload={"url": "https://hooks.example.com/"},
    )
    Endpoint.objects.filter(pk=endpoint.pk).update(last_status="failed", enabled=False)
    return endpoint


def make_logs(endpoint: Endpoint, count: int) -> list[Log]:
    return Log.objects.bulk_create(
        Log(endpoint=endpoint, state=Log.State.SUCCESS, status_code=200, duration_ms=12)
        for _ in range(count)
    )


# --- the endpoint list -------------------------------------------------------------------------


def test_the_endpoint_list_shows_target_schedule_in_words_next_run_and_status(
    admin_client, nightly, renewals
):
    Endpoint.objects.filter(pk=nightly.pk).update(last_status="success")

    response = admin_client.get(ENDPOINTS)

    assert response.status_code == 200
    page = response.content.decode()
    assert "GET reports.example.com" in page
    assert "handler webhook:send" in page
    assert f"{nightly.schedule_description} (Europe/Paris)" in page
    assert "#1a7f37" in page and ">success</span>" in page
    assert "#cf222e" in page and ">failed</span>" in page


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("nightly", {"nightly-report"}),
        ("Sends the", {"nightly-report"}),
        ("reports.example.com", {"nightly-report"}),
        ("webhook:send", {"billing-renewals"}),
        ("nothing-like-it", set()),
    ],
)
def test_search_finds_endpoints_by_name_description_url_and_handler(
    admin_client, nightly, renewals, query, found
):
    response = admin_client.get(ENDPOINTS, {"q": query})

    assert {e.name for e in response.context["cl"].result_list} == found


@pytest.mark.parametrize(
    ("filters", "found"),
    [
        ({"enabled__exact": "0"}, {"billing-renewals"}),
        ({"kind__exact": "http"}, {"nightly-report"}),
        ({"schedule_type__exact": "cron"}, {"nightly-report", "billing-renewals"}),
        ({"last_status": "failed"}, {"billing-renewals"}),
        ({"timezone": "Europe/Paris"}, {"nightly-report"}),
    ],
)
def test_filters_narrow_the_endpoint_list(admin_client, nightly, renewals, filters, found):
    response = admin_client.get(ENDPOINTS, filters)

    assert response.status_code == 200
    assert {e.name for e in response.context["cl"].result_list} == found


def test_the_endpoint_list_does_not_query_per_row(admin_client, make_endpoint):
    make_endpoint(name="first")
    with CaptureQueriesContext(connection) as one_row:
        admin_client.get(ENDPOINTS)
    for number in range(30):
        make_endpoint(name=f"more-{number}")

    with CaptureQueriesContext(connection) as many_rows:
        admin_client.get(ENDPOINTS)

    assert len(many_rows) == len(one_row)


# --- actions and who may use them --------------------------------------------------------------


def test_run_now_queues_a_manual_run_for_each_selected_endpoint(
    operator, nightly, renewals, django_capture_on_commit_callbacks
):
    client = login(staff(operator))

    with django_capture_on_commit_callbacks(execute=True):
        response = act(client, "run_now", nightly, renewals)

    logs = list(Log.objects.all())
    assert {(log.endpoint.name, log.state, log.trigger) for log in logs} == {
        ("nightly-report", Log.State.QUEUED, Log.Trigger.MANUAL),
        ("billing-renewals", Log.State.QUEUED, Log.Trigger.MANUAL),
    }
    assert {log.triggered_by for log in logs} == {"otto-operator"}
    assert OrmQ.objects.count() == 2
    message = str(list(response.context["messages"])[0])
    assert all(log.run_id in message for log in logs)


def test_disable_and_enable_go_through_the_verbs(operator, nightly, renewals):
    client = login(staff(operator))

    act(client, "disable", nightly, renewals)
    nightly.refresh_from_db()
    assert (nightly.enabled, nightly.disabled_reason, nightly.next_run_at) == (
        False,
        "Disabled by otto-operator.",
        None,
    )

    response = act(client, "enable", nightly, renewals)
    nightly.refresh_from_db()
    renewals.refresh_from_db()
    assert nightly.enabled and renewals.enabled
    assert nightly.disabled_reason == ""
    assert nightly.next_run_at is not None
    assert "Enabled 2 endpoint(s)." in str(list(response.context["messages"])[0])


def test_an_operator_is_offered_run_now_enable_and_disable_but_not_delete(operator, nightly):
    assert offered_actions(login(staff(operator))) == {"run_now", "enable", "disable"}


def test_an_editor_is_offered_every_action(editor, nightly):
    assert offered_actions(login(staff(editor))) == {
        "run_now",
        "enable",
        "disable",
        "delete_selected",
    }


def test_a_viewer_sees_the_list_but_cannot_run_any_action(viewer, nightly):
    client = login(staff(viewer))

    assert offered_actions(client) == set()
    for action in ("run_now", "disable"):
        act(client, action, nightly)

    nightly.refresh_from_db()
    assert nightly.enabled
    assert not Log.objects.exists()


# --- the change page and secrets ---------------------------------------------------------------


def _assert_no_secret_in(page: str) -> None:
    assert "s3cret" not in page


def test_the_change_page_never_contains_a_secret_header_value(admin_client, nightly):
    page = admin_client.get(change_url(nightly)).content.decode()

    _assert_no_secret_in(page)
    assert MASK in page
    assert "text/csv" in page


def test_a_view_only_user_sees_masked_headers_too(viewer, nightly):
    response = login(staff(viewer)).get(change_url(nightly))

    assert response.status_code == 200
    page = response.content.decode()
    _assert_no_secret_in(page)
    assert f"Authorization: {MASK}" in page


def test_saving_the_form_as_rendered_keeps_the_stored_secret_values(editor, nightly):
    client = login(staff(editor))
    data = form_data(client.get(change_url(nightly)))
    data["description"] = "Edited in the admin"

    response = client.post(change_url(nightly), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    nightly.refresh_from_db()
    assert nightly.description == "Edited in the admin"
    assert nightly.headers == {**SECRETS, "Accept": "text/csv"}


def test_a_secret_typed_into_the_form_replaces_the_stored_one(editor, nightly):
    client = login(staff(editor))
    data = form_data(client.get(change_url(nightly)))
    data["headers"] = f'{{"Authorization": "Bearer rotated", "Cookie": "{MASK}"}}'

    client.post(change_url(nightly), data)

    nightly.refresh_from_db()
    assert nightly.headers == {"Authorization": "Bearer rotated", "Cookie": SECRETS["Cookie"]}


def test_a_masked_header_with_nothing_stored_is_a_form_error(editor, nightly):
    client = login(staff(editor))
    data = form_data(client.get(change_url(nightly)))
    data["headers"] = f'{{"X-New": "{MASK}"}}'

    response = client.post(change_url(nightly), data)

    assert response.status_code == 200
    assert "has no stored value to keep" in str(response.context["adminform"].form.errors)


def test_an_editor_can_add_an_endpoint_and_it_records_who(editor):
    client = login(staff(editor))
    data = form_data(client.get(reverse("admin:endpoints_endpoint_add")))
    data.update(name="added", url="https://example.com/", cron_expression="@daily", timezone="UTC")

    response = client.post(reverse("admin:endpoints_endpoint_add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    added = Endpoint.objects.get(name="added")
    assert (added.cron_expression, added.created_by) == ("0 0 * * *", editor)
    assert added.next_run_at is not None


def test_an_invalid_cron_is_an_inline_field_error(editor, nightly):
    client = login(staff(editor))
    data = form_data(client.get(change_url(nightly)))
    data["cron_expression"] = "61 * * * *"

    response = client.post(change_url(nightly), data)

    assert response.status_code == 200
    assert "cron_expression" in response.context["adminform"].form.errors
    nightly.refresh_from_db()
    assert nightly.cron_expression == "0 2 * * *"


# --- the latest runs inline, and runs --------------------------------------------------------


def test_the_inline_shows_only_the_latest_20_runs(admin_client, nightly, make_endpoint):
    logs = make_logs(nightly, 25)
    make_logs(make_endpoint(name="other"), 3)

    response = admin_client.get(change_url(nightly))

    formset = response.context["inline_admin_formsets"][0].formset
    shown = [form.instance.pk for form in formset.forms]
    assert shown == sorted((log.pk for log in logs), reverse=True)[:20]
    page = response.content.decode()
    assert logs[-1].run_id in page
    assert logs[0].run_id not in page


def test_the_form_saves_when_new_runs_arrive_between_render_and_save(editor, nightly):
    make_logs(nightly, 20)
    client = login(staff(editor))
    data = form_data(client.get(change_url(nightly)))
    make_logs(nightly, 5)
    data["max_attempts"] = 5

    response = client.post(change_url(nightly), data)

    assert response.status_code == 302
    nightly.refresh_from_db()
    assert nightly.max_attempts == 5
    assert Log.objects.filter(endpoint=nightly).count() == 25


def test_the_all_runs_link_lists_that_endpoints_runs(admin_client, nightly, make_endpoint):
    make_logs(nightly, 2)
    make_logs(make_endpoint(name="other"), 3)

    response = admin_client.get(LOGS, {"endpoint__id__exact": nightly.pk})

    assert response.status_code == 200
    assert {log.endpoint_id for log in response.context["cl"].result_list} == {nightly.pk}


def test_deleting_an_endpoint_in_the_admin_deletes_its_runs(editor, nightly):
    make_logs(nightly, 3)
    client = login(staff(editor))
    url = reverse("admin:endpoints_endpoint_delete", args=[nightly.pk])

    response = client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Endpoint.objects.exists()
    assert not Log.objects.exists()


def test_the_log_list_filters_searches_and_does_not_query_per_row(
    admin_client, nightly, make_endpoint, django_assert_max_num_queries
):
    make_logs(nightly, 1)
    with CaptureQueriesContext(connection) as one_row:
        admin_client.get(LOGS)
    for number in range(20):
        make_logs(make_endpoint(name=f"more-{number}"), 3)
    Log.objects.filter(pk=Log.objects.first().pk).update(
        state=Log.State.FAILED, error_class="timeout", error_message="Read timed out"
    )

    with django_assert_max_num_queries(len(one_row)):
        response = admin_client.get(LOGS)

    assert len(response.context["cl"].result_list) == 61
    failed = admin_client.get(LOGS, {"state__exact": "failed", "error_class__exact": "timeout"})
    assert len(failed.context["cl"].result_list) == 1
    assert len(admin_client.get(LOGS, {"q": "timed out"}).context["cl"].result_list) == 1
    assert len(admin_client.get(LOGS, {"q": "more-7"}).context["cl"].result_list) == 3


def test_a_run_is_read_only_and_its_request_never_shows_a_secret(admin_client, nightly):
    # An old row stored before masking: the page masks it anyway.
    log = Log.objects.create(
        endpoint=nightly,
        state=Log.State.SUCCESS,
        request={"method": "GET", "url": nightly.url, "headers": dict(SECRETS)},
        response_excerpt="<script>alert(1)</script>",
    )
    url = reverse("admin:runs_log_change", args=[log.pk])

    page = admin_client.get(url).content.decode()

    _assert_no_secret_in(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert admin_client.post(url, {"state": "failed"}).status_code == 403
    assert admin_client.get(reverse("admin:runs_log_add")).status_code == 403
    log.refresh_from_db()
    assert log.state == Log.State.SUCCESS
