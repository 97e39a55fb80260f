"""Schemathesis against /api/v1/schema/: valid and invalid requests to every operation, through
the real WSGI application and database. No answer may be a 5xx, and every answer must be one the
schema documents (status, content type, body)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from api.models import ApiToken
from runs import actions

pytest_plugins = ["tests.api_support"]

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture
def known(make_endpoint):
    """Real resources, so that some generated requests reach them instead of a 404."""
    job = make_endpoint(name="nightly")
    manual = make_endpoint(name="manual", schedule_type="none", cron_expression="")
    return {
        "job_name": job.name,
        "schedule_id": f"sched-{job.pk}",
        "action_id": actions.schedule_action("webhook:send", {}),
        "workflow_id": str(manual.pk),
    }


@pytest.fixture
def token(editor) -> str:
    return ApiToken.issue(editor, "fuzz")[1]


@pytest.fixture(autouse=True)
def wsgi_in_the_test_transaction(db, settings_with_room):
    # Django's test client does this too: the per-request connection cleanup would close the
    # connection that holds the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def settings_with_room(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **rates,
            "user": "100000/min",
            "cron": "100000/min",
            "cron_failures": "100000/min",
        },
    }
    settings.CRON_SECRET = ""  # the cron route answers 404: it would call out to targets


def served_schema() -> dict:
    """The document /api/v1/schema/ serves (test_api_schema checks that they are the same)."""
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(served_schema())
schema.app = WSGIHandler()


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_5xx_or_an_undocumented_answer(case, token, known):
    steer_towards_known_things(case, known)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


def steer_towards_known_things(case, known: dict[str, str]) -> None:
    """Swap about half the generated ids, handler names and credentials for real ones: random
    text almost never names an existing job or a registered handler, and a random X-API-Key
    would make nearly every request a 401 (test_api_auth covers those)."""

    def half(value) -> bool:
        return len(str(value)) % 2 == 0

    for name, value in (case.path_parameters or {}).items():
        if name in known and half(value):
            case.path_parameters[name] = known[name]
    if isinstance(case.body, dict):
        for field in ("actionType", "handler"):
            if isinstance(case.body.get(field), str) and half(case.body[field]):
                case.body[field] = "webhook:send"
        if "workflowId" in case.body and half(case.body["workflowId"]):
            case.body["workflowId"] = known["workflow_id"]
    if case.headers:
        for name in [n for n in case.headers if n.lower() in ("x-api-key", "cookie")]:
            if half(case.headers[name]) or len(str(case.headers[name])) % 3:
                del case.headers[name]
