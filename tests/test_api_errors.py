"""Every /api/ answer is JSON in the one error shape: unknown routes, oversize bodies, and
values too long to show."""

from __future__ import annotations

import json
import logging

import pytest

from endpoints.models import Endpoint

pytest_plugins = ["tests.api_support"]

JOBS = "/api/v1/scheduler/jobs"
ACTIONS = "/api/v1/devtools/scheduled-actions"
THREE_MB = 3 * 1024 * 1024


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v2/scheduler/jobs", "/api/", "/api/v1/schedules/sched-1/x"]
)
def test_an_unknown_route_under_api_is_a_json_404(as_viewer, path):
    response = as_viewer.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert (body["error"], body["code"]) == ("Not found", "NOT_FOUND")
    assert path in body["message"]


def test_an_unknown_route_is_a_json_404_without_credentials_and_for_any_method(anonymous):
    response = anonymous.post("/api/v1/nothing-here", {"a": 1}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_a_route_given_without_its_slash_still_redirects(as_viewer):
    response = as_viewer.get("/api/docs?x=1")
    assert (response.status_code, response["Location"]) == (301, "/api/docs/?x=1")


@pytest.mark.parametrize(
    ("path", "envelope"),
    [(JOBS, {}), ("/api/v1/schedules", {}), (ACTIONS, {"success": False})],
)
def test_an_oversize_body_is_a_json_413_and_logs_no_traceback(as_editor, caplog, path, envelope):
    body = json.dumps({"job_name": "big", "description": "x" * THREE_MB})

    with caplog.at_level(logging.INFO):
        response = as_editor.post(path, body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {
        **envelope,
        "error": "Payload too large",
        "code": "PAYLOAD_TOO_LARGE",
        "message": "The request body is larger than 2560 KB.",
    }
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= 40]
    assert not Endpoint.objects.exists()


def test_an_overlong_description_is_a_clear_400(as_editor):
    job = {"job_name": "described", "url": "http://127.0.0.1:9/ok", "description": "d" * 1_000_000}

    response = as_editor.post(JOBS, job, format="json")

    assert response.status_code == 400
    assert response.json()["details"] == {
        "description": "At most 1000 characters; this one has 1000000."
    }
    assert not Endpoint.objects.exists()


def test_a_description_at_the_limit_is_kept(as_editor):
    job = {"job_name": "described", "url": "http://127.0.0.1:9/ok", "description": "d" * 1000}
    assert as_editor.post(JOBS, job, format="json").status_code == 201
    assert len(Endpoint.objects.get().description) == 1000
