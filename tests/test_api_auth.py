"""Who may call what: tokens (Bearer or X-API-Key), sessions with CSRF, roles, rate limits."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from api.models import ApiToken
from endpoints.models import Endpoint
from runs import actions

pytest_plugins = ["tests.api_support"]

JOBS = "/api/v1/scheduler/jobs"
SCHEDULES = "/api/v1/schedules"
ACTIONS = "/api/v1/devtools/scheduled-actions"
RANK = {"outsider": 0, "viewer": 1, "operator": 2, "editor": 3}

# (method, path, body, the least role allowed); {job}, {schedule}, {action} are filled in.
ROUTES = [
    ("get", JOBS, None, "viewer"),
    ("post", JOBS, {"job_name": "new-job", "url": "https://example.com/"}, "editor"),
    ("delete", JOBS + "/{job}", None, "editor"),
    ("post", JOBS + "/{job}/trigger", {}, "operator"),
    ("get", JOBS + "/{job}/last-result", None, "viewer"),
    ("get", SCHEDULES, None, "viewer"),
    ("post", SCHEDULES, {"workflowId": "{unscheduled}", "cronExpression": "@daily"}, "editor"),
    ("get", SCHEDULES + "/{schedule}", None, "viewer"),
    ("put", SCHEDULES + "/{schedule}", {"timezone": "Europe/Paris"}, "editor"),
    ("delete", SCHEDULES + "/{schedule}", None, "editor"),
    ("post", SCHEDULES + "/{schedule}/enable", None, "operator"),
    ("post", SCHEDULES + "/{schedule}/disable", None, "operator"),
    ("get", SCHEDULES + "/{schedule}/history", None, "viewer"),
    ("get", ACTIONS, None, "viewer"),
    ("post", ACTIONS, {"actionType": "webhook:send", "payload": {}}, "editor"),
    ("get", ACTIONS + "/{action}", None, "viewer"),
    ("delete", ACTIONS + "/{action}", None, "operator"),
    ("post", ACTIONS + "/{action}/retry", None, "operator"),
    ("get", "/api/v1/schema/?format=json", None, "outsider"),
]


@pytest.fixture
def world(make_endpoint):
    job = make_endpoint(name="nightly")
    unscheduled = make_endpoint(name="manual", schedule_type="none", cron_expression="")
    action = actions.schedule_action("webhook:send", {})
    return {
        "job": job.name,
        "schedule": f"sched-{job.pk}",
        "action": action,
        "unscheduled": str(unscheduled.pk),
    }


def call(client: APIClient, method: str, path: str, body, world):
    path = path.format(**world)
    if isinstance(body, dict):
        body = {
            key: value.format(**world) if isinstance(value, str) else value
            for key, value in body.items()
        }
    return getattr(client, method)(path, body, format="json")


def callers(request, role: str) -> APIClient:
    if role == "anonymous":
        return APIClient()
    if role in ("bad token", "revoked token"):
        client = APIClient()
        raw = "cp_not-a-token"
        if role == "revoked token":
            token, raw = ApiToken.issue(request.getfixturevalue("editor"), "old")
            token.revoke()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client
    return request.getfixturevalue("token_client")(request.getfixturevalue(role))


@pytest.mark.parametrize("role", ["anonymous", "bad token", "revoked token", *RANK])
@pytest.mark.parametrize(("method", "path", "body", "least"), ROUTES)
def test_every_route_answers_each_role_by_its_permissions(
    request, world, role, method, path, body, least
):
    response = call(callers(request, role), method, path, body, world)

    if role not in RANK:
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHORIZED"
        assert response["WWW-Authenticate"].startswith("Bearer")
    elif RANK[role] < RANK[least]:
        assert response.status_code == 403
        assert response.json()["code"] == "FORBIDDEN"
        assert response.json()["error"] == "Forbidden"
    else:
        assert response.status_code not in (401, 403) and response.status_code < 500


def test_a_forbidden_write_changes_nothing(world, as_viewer):
    as_viewer.delete(f"{JOBS}/nightly")
    as_viewer.post(f"{JOBS}/nightly/trigger")
    assert Endpoint.objects.filter(name="nightly").exists()
    assert not Endpoint.objects.get(name="nightly").logs.exists()


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_a_token_works_as_bearer_or_x_api_key_and_records_its_use(token_client, viewer, header):
    client = token_client(viewer, header=header)
    assert client.get(JOBS).status_code == 200
    assert ApiToken.objects.get(user=viewer).last_used_at is not None


def test_the_authorization_scheme_is_case_insensitive(viewer):
    _, raw = ApiToken.issue(viewer, "t")
    assert APIClient().get(JOBS, HTTP_AUTHORIZATION=f"bearer {raw}").status_code == 200


def test_a_token_of_a_deactivated_user_stops_working(token_client, viewer):
    client = token_client(viewer)
    User.objects.filter(pk=viewer.pk).update(is_active=False)
    assert client.get(JOBS).status_code == 401


def test_basic_auth_is_not_a_way_in(viewer):
    response = APIClient().get(JOBS, HTTP_AUTHORIZATION="Basic dmVyYS12aWV3ZXI6cHc=")
    assert response.status_code == 401


def test_a_signed_in_session_reads_without_a_token(viewer, client):
    client.force_login(viewer)
    assert client.get(JOBS).status_code == 200


def test_a_session_write_without_the_csrf_token_is_refused(editor):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(editor)
    body = {"job_name": "via-session", "url": "https://example.com/"}

    refused = client.post(JOBS, body, format="json")
    client.get("/accounts/login/")  # any page with a form hands out the CSRF cookie
    allowed = client.post(
        JOBS, body, format="json", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )

    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    assert "CSRF" in refused.json()["message"]
    assert allowed.status_code == 201


def test_a_token_write_needs_no_csrf_token(token_client, editor):
    client = token_client(editor)
    client.handler.enforce_csrf_checks = True
    response = client.post(JOBS, {"job_name": "t", "url": "https://example.com/"}, format="json")
    assert response.status_code == 201


def set_rates(settings, **rates):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_too_many_calls_from_one_user_are_rate_limited_with_retry_after(
    settings, as_viewer, as_operator
):
    set_rates(settings, user="3/min")
    assert [as_viewer.get(JOBS).status_code for _ in range(3)] == [200, 200, 200]

    limited = as_viewer.get(JOBS)

    assert limited.status_code == 429
    assert limited.json() == {
        "error": "Too many requests",
        "code": "RATE_LIMITED",
        "message": limited.json()["message"],
    }
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert as_operator.get(JOBS).status_code == 200  # the limit is per user


def test_seed_003_routes_wrap_a_rate_limit_in_their_envelope(settings, as_viewer):
    set_rates(settings, user="1/min")
    as_viewer.get(ACTIONS)
    limited = as_viewer.get(ACTIONS)
    assert limited.status_code == 429
    assert limited.json()["success"] is False and limited.json()["code"] == "RATE_LIMITED"


def test_an_unsupported_method_is_a_405_in_the_error_shape(as_editor, db):
    response = as_editor.patch(JOBS, {}, format="json")
    assert response.status_code == 405
    assert response.json() == {
        "error": "Method not allowed",
        "code": "METHOD_NOT_ALLOWED",
        "message": 'Method "PATCH" not allowed.',
    }
