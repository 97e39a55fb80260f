"""Issue 20.8: a trigger's free-text triggered_by is shown beside who really asked."""

from django.test import Client
from rest_framework.test import APIClient

from api.models import ApiToken
from runs.models import Log

pytest_plugins = ["tests.api_support"]


def test_a_spoofed_triggered_by_is_shown_with_the_real_caller(operator, make_endpoint, viewer):
    endpoint = make_endpoint(name="nightly")
    _, raw = ApiToken.issue(operator, "deploy script")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.post(
        "/api/v1/scheduler/jobs/nightly/trigger", {"triggered_by": "admin"}, format="json"
    )
    assert response.status_code == 200

    log = Log.objects.get()
    assert log.triggered_by == "admin"  # the contract's field keeps what the caller wrote
    assert (log.actor, log.actor_token) == (operator.username, "deploy script")
    shown = f"admin, via {operator.username}&#x27;s token"
    browser = Client()
    browser.force_login(viewer)
    assert shown in browser.get(f"/runs/{log.pk}/").content.decode()
    assert shown in browser.get(f"/endpoints/{endpoint.pk}/").content.decode()
    Log.objects.filter(pk=log.pk).update(state="success", started_at=log.created_at)
    api = APIClient()
    api.force_authenticate(viewer)
    result = api.get("/api/v1/scheduler/jobs/nightly/last-result").json()
    assert result["triggered_by"] == "admin"
    assert result["requested_by"] == f"admin, via {operator.username}'s token"


def test_a_dashboard_run_is_by_its_signed_in_user(operator, make_endpoint):
    endpoint = make_endpoint(name="nightly")
    browser = Client()
    browser.force_login(operator)
    browser.post(f"/endpoints/{endpoint.pk}/run/")

    log = Log.objects.get()
    assert (log.actor, log.actor_token, log.requested_by) == (
        operator.username, "", operator.username,
    )  # fmt: skip


def test_a_trigger_without_triggered_by_names_the_token_once(as_operator, operator, make_endpoint):
    make_endpoint(name="nightly")
    as_operator.post("/api/v1/scheduler/jobs/nightly/trigger", {}, format="json")

    assert Log.objects.get().requested_by == f"{operator.username}'s token"
