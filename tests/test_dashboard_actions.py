"""Dashboard actions (run now, dry run, pause, resume, delete, retry, cancel, API tokens), each
with every role: POST only, redirect after, 403 for a role without the permission."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from api.models import ApiToken
from endpoints.models import Endpoint
from runs.models import Log
from tests.web_support import login

pytestmark = pytest.mark.django_db


def url(name: str, obj) -> str:
    return reverse(f"dashboard:{name}", args=[obj.pk])


# --- run now -----------------------------------------------------------------------------------


def test_an_operator_runs_an_endpoint_now_on_the_cluster(
    operator, make_endpoint, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint()
    with django_capture_on_commit_callbacks(execute=True):
        response = login(operator).post(url("endpoint_run", endpoint), {"next": "/?q=ping"})
    assert response.status_code == 302 and response["Location"] == "/?q=ping"
    log = Log.objects.get(endpoint=endpoint)
    assert (log.state, log.trigger, log.triggered_by) == ("queued", "manual", "otto-operator")
    assert not log.dry_run
    assert OrmQ.objects.count() == 1  # handed to the broker once committed
    follow = login(operator).get(url("endpoint", endpoint))
    assert follow.status_code == 200


def test_run_now_says_what_it_queued(operator, make_endpoint):
    endpoint = make_endpoint()
    response = login(operator).post(url("endpoint_run", endpoint), follow=True)
    log = Log.objects.get()
    assert response.redirect_chain[-1][0] == url("endpoint", endpoint)
    assert f"Run {log.run_id} of ping queued." in response.content.decode()


def test_a_dry_run_is_recorded_as_one(operator, make_endpoint):
    endpoint = make_endpoint()
    login(operator).post(url("endpoint_run", endpoint), {"dry_run": "1"})
    assert Log.objects.get(endpoint=endpoint).dry_run


@pytest.mark.parametrize("action", ["endpoint_run", "endpoint_pause", "endpoint_resume"])
def test_a_viewer_gets_403_on_operator_actions_and_nothing_changes(viewer, make_endpoint, action):
    endpoint = make_endpoint()
    assert login(viewer).post(url(action, endpoint)).status_code == 403
    assert not Log.objects.exists()
    endpoint.refresh_from_db()
    assert endpoint.enabled


@pytest.mark.parametrize("action", ["endpoint_run", "endpoint_pause", "endpoint_delete"])
def test_anonymous_actions_go_to_the_login_page(client, make_endpoint, action):
    endpoint = make_endpoint()
    response = client.post(url(action, endpoint))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert Endpoint.objects.filter(pk=endpoint.pk, enabled=True).exists()
    assert not Log.objects.exists()


@pytest.mark.parametrize("action", ["endpoint_run", "endpoint_resume"])
def test_actions_refuse_get(operator, make_endpoint, action):
    endpoint = make_endpoint()
    assert login(operator).get(url(action, endpoint)).status_code == 405
    assert not Log.objects.exists()


def test_an_action_never_redirects_to_another_site(operator, make_endpoint):
    endpoint = make_endpoint()
    response = login(operator).post(url("endpoint_run", endpoint), {"next": "https://evil.test/"})
    assert response["Location"] == url("endpoint", endpoint)


# --- pause and resume --------------------------------------------------------------------------


def test_an_operator_pauses_and_resumes(operator, make_endpoint):
    endpoint = make_endpoint()
    Endpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=4)
    client = login(operator)
    response = client.post(url("endpoint_pause", endpoint), follow=True)
    assert "Paused ping" in response.content.decode()
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.next_run_at is None
    assert endpoint.pause_description == "Paused by otto-operator"
    client.post(url("endpoint_resume", endpoint))
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.next_run_at is not None
    assert endpoint.consecutive_failures == 0 and endpoint.disabled_reason == ""


def test_resuming_an_active_endpoint_leaves_its_next_slot_alone(operator, make_endpoint):
    endpoint = make_endpoint(schedule_type="interval", interval_seconds=3600, cron_expression="")
    before = endpoint.next_run_at
    login(operator).post(url("endpoint_resume", endpoint))
    endpoint.refresh_from_db()
    assert endpoint.next_run_at == before


# --- delete ------------------------------------------------------------------------------------


def test_an_editor_deletes_after_confirming(editor, make_endpoint):
    endpoint = make_endpoint()
    Log.objects.create(endpoint=endpoint, state="success")
    client = login(editor)
    confirm = client.get(url("endpoint_delete", endpoint))
    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Delete ping?" in html and "1 recorded run" in html
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()  # asking deletes nothing
    response = client.post(url("endpoint_delete", endpoint), follow=True)
    assert response.redirect_chain[-1][0] == reverse("dashboard:index")
    assert "Deleted ping" in response.content.decode()
    assert not Endpoint.objects.exists() and not Log.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_editor_may_delete(request, make_endpoint, role):
    endpoint = make_endpoint()
    client = login(request.getfixturevalue(role))
    assert client.get(url("endpoint_delete", endpoint)).status_code == 403
    assert client.post(url("endpoint_delete", endpoint)).status_code == 403
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


# --- retry and cancel --------------------------------------------------------------------------


def test_an_operator_retries_a_failed_run(operator, make_endpoint):
    failed = Log.objects.create(endpoint=make_endpoint(), state="failed", attempt=1)
    response = login(operator).post(url("log_retry", failed))
    attempt = Log.objects.get(retry_of=failed)
    assert response["Location"] == url("log", attempt)
    assert (attempt.attempt, attempt.state, attempt.trigger) == (2, "queued", "retry")
    assert attempt.triggered_by == "otto-operator"


def test_a_run_that_did_not_fail_is_not_retried(operator, make_endpoint):
    done = Log.objects.create(endpoint=make_endpoint(), state="success")
    response = login(operator).post(url("log_retry", done), follow=True)
    assert "only a failed run can be retried" in response.content.decode()
    assert Log.objects.count() == 1


def test_a_viewer_may_not_retry(viewer, make_endpoint):
    failed = Log.objects.create(endpoint=make_endpoint(), state="failed")
    assert login(viewer).post(url("log_retry", failed)).status_code == 403
    assert Log.objects.count() == 1


def test_an_operator_cancels_a_queued_run_but_not_a_finished_one(operator, viewer, make_endpoint):
    endpoint = make_endpoint()
    queued = Log.objects.create(endpoint=endpoint, state="queued")
    assert login(viewer).post(url("log_cancel", queued)).status_code == 403
    client = login(operator)
    client.post(url("log_cancel", queued))
    queued.refresh_from_db()
    assert queued.state == "cancelled" and "otto-operator" in queued.reason
    done = Log.objects.create(endpoint=endpoint, state="success")
    response = client.post(url("log_cancel", done), follow=True)
    assert "can no longer be cancelled" in response.content.decode()
    done.refresh_from_db()
    assert done.state == "success"


# --- API tokens --------------------------------------------------------------------------------


def test_a_new_token_is_shown_once(viewer):
    client = login(viewer)
    response = client.post(reverse("dashboard:tokens"), {"name": "deploy script"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:tokens")
    token = ApiToken.objects.get(user=viewer)
    shown = client.get(reverse("dashboard:tokens")).content.decode()
    raw = shown.split('class="token-value" readonly value="')[1].split('"')[0]
    assert raw.startswith(token.prefix) and ApiToken.authenticate(raw) == token
    again = client.get(reverse("dashboard:tokens")).content.decode()
    assert raw not in again
    assert "deploy script" in again and f"{token.prefix}…" in again


def test_a_token_needs_a_name(viewer):
    response = login(viewer).post(reverse("dashboard:tokens"), {"name": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_asks_first_then_revokes(viewer):
    token, raw = ApiToken.issue(viewer, "ci")
    client = login(viewer)
    confirm = client.get(url("token_revoke", token)).content.decode()
    assert "Revoke “ci”?" in confirm
    token.refresh_from_db()
    assert token.is_active
    client.post(url("token_revoke", token))
    token.refresh_from_db()
    assert not token.is_active and ApiToken.authenticate(raw) is None
    assert "revoked" in client.get(reverse("dashboard:tokens")).content.decode()


def test_nobody_sees_or_revokes_another_users_tokens(viewer, operator):
    token, _ = ApiToken.issue(operator, "otto's token")
    client = login(viewer)
    assert "otto&#x27;s token" not in client.get(reverse("dashboard:tokens")).content.decode()
    assert client.post(url("token_revoke", token)).status_code == 404
    token.refresh_from_db()
    assert token.is_active


def test_tokens_need_a_signed_in_user(client):
    response = client.post(reverse("dashboard:tokens"), {"name": "x"})
    assert response.status_code == 302 and not ApiToken.objects.exists()


def test_pausing_from_the_list_returns_to_the_same_filtered_page(operator, make_endpoint):
    endpoint = make_endpoint()
    response = login(operator).post(
        url("endpoint_pause", endpoint), {"next": "/?enabled=yes&page=1"}
    )
    assert response["Location"] == "/?enabled=yes&page=1"
    assert Endpoint.objects.get(pk=endpoint.pk).enabled is False
