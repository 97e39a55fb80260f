"""The OpenAPI 3 document at /api/v1/schema/ and the Swagger UI at /api/docs/ (offline)."""

from __future__ import annotations

import json
import re

import pytest
from drf_spectacular.generators import SchemaGenerator

pytest_plugins = ["tests.api_support"]

OPERATIONS = {
    ("/api/v1/scheduler/jobs", "get"),
    ("/api/v1/scheduler/jobs", "post"),
    ("/api/v1/scheduler/jobs/{job_name}", "delete"),
    ("/api/v1/scheduler/jobs/{job_name}/trigger", "post"),
    ("/api/v1/scheduler/jobs/{job_name}/last-result", "get"),
    ("/api/v1/scheduler/jobs/{job_name}/history", "get"),  # ours: the audit log
    ("/api/v1/scheduler/replay", "post"),  # ours: bulk replay of failed runs
    ("/api/v1/schedules", "get"),
    ("/api/v1/schedules", "post"),
    ("/api/v1/schedules/{schedule_id}", "get"),
    ("/api/v1/schedules/{schedule_id}", "put"),
    ("/api/v1/schedules/{schedule_id}", "delete"),
    ("/api/v1/schedules/{schedule_id}/enable", "post"),
    ("/api/v1/schedules/{schedule_id}/disable", "post"),
    ("/api/v1/schedules/{schedule_id}/history", "get"),
    ("/api/v1/schedules/{schedule_id}/backfill", "post"),  # ours, beyond the seed
    ("/api/v1/cron/process", "get"),
    ("/api/v1/devtools/scheduled-actions", "get"),
    ("/api/v1/devtools/scheduled-actions", "post"),
    ("/api/v1/devtools/scheduled-actions/{action_id}", "get"),
    ("/api/v1/devtools/scheduled-actions/{action_id}", "delete"),
    ("/api/v1/devtools/scheduled-actions/{action_id}/retry", "post"),
}


@pytest.fixture
def document(as_viewer) -> dict:
    response = as_viewer.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_openapi_3_with_every_route_of_the_three_contracts(document):
    assert document["openapi"].startswith("3.")
    served = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == OPERATIONS


def test_the_served_schema_is_the_one_the_fuzz_test_runs_against(document):
    generated = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))
    assert document == generated


def test_it_documents_the_seed_001_http_extensions(document):
    request = document["components"]["schemas"]["JobRequest"]["properties"]
    extensions = {
        "url",
        "method",
        "headers",
        "body",
        "timeout_seconds",
        "expected_status",
        "timezone",
        "payload",
        "max_attempts",
        "overlap_policy",
        "missed_policy",
    }
    assert extensions <= set(request)
    assert extensions - {"body", "expected_status"} <= set(
        document["components"]["schemas"]["Job"]["properties"]
    )


def test_it_documents_how_to_authenticate(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (schemes["apiKeyAuth"]["in"], schemes["apiKeyAuth"]["name"]) == ("header", "X-API-Key")
    assert schemes["cronSecret"]["name"] == "x-cron-secret"
    jobs = document["paths"]["/api/v1/scheduler/jobs"]["get"]
    assert {"bearerAuth": []} in jobs["security"] and {"apiKeyAuth": []} in jobs["security"]
    assert document["paths"]["/api/v1/cron/process"]["get"]["security"] == [{"cronSecret": []}]


def test_every_error_answer_has_the_one_error_shape(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith(("/Error", "/ActionError")), (path, method, status)


def test_the_schema_needs_a_signed_in_user_or_a_token(anonymous):
    assert anonymous.get("/api/v1/schema/", {"format": "json"}).status_code == 401


def test_the_docs_page_works_offline_from_the_sidecar_assets(client, viewer):
    client.force_login(viewer)

    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("drf_spectacular_sidecar/swagger-ui-dist" in asset for asset in assets)
    assert not [asset for asset in assets if asset.startswith(("http:", "https:", "//"))]
    bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
    assert client.get(bundle).status_code == 200
    # The page's own script is a separate file, so a CSP without 'unsafe-inline' allows it.
    assert not re.search(r"<script>\s*\S", html)
    assert client.get("/api/docs/", {"script": ""}).status_code == 200


def test_the_docs_page_sends_a_stranger_to_the_login(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
