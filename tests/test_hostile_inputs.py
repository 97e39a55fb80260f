"""Issue 20.6, 20.7 and the hostile-input matrix: every API write route and every dashboard form
gets deep nesting, Unicode digits, long numbers, line separators, NUL, lone surrogates and
oversize values in each field they reach; none answers 500 and none saves anything."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest
from django.test import Client

from api.models import ApiToken
from endpoints.models import Endpoint
from runs.models import Log
from tests.api_support import client_for
from tests.test_dashboard_forms import form_data

pytest_plugins = ["tests.api_support"]


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels):
        value = {"a": value}
    return value


DEEP = nested(400)  # about 2 KB of JSON
UNICODE_DIGITS = ["²", "①", "12³", "٣"]
LONG = "9" * 5000
SEPARATORS = ["a\u2028X-Evil: 1", "a\u2029b", "a\x85b", "a\x0bb", "€"]
NUL, SURROGATE, OVERSIZE = "a\x00b", "a\ud800b", "x" * 300_000
TEXT = [NUL, SURROGATE, OVERSIZE]
NUMBER = [*UNICODE_DIGITS, LONG, "inf", 10**30]
CRON = [f"*/{digit} * * * *" for digit in UNICODE_DIGITS] + [f"{LONG} * * * *", NUL, SURROGATE]
INSTANT = [*UNICODE_DIGITS, LONG, NUL, SURROGATE, "2026-13-99T00:00:00Z"]
HEADERS = [{"X-T": value} for value in [*SEPARATORS, NUL, SURROGATE]] + [{"X-²": "v"}]
WEBHOOK = {"url": "https://example.com/x"}
PAYLOADS = [
    {**WEBHOOK, "deep": DEEP},
    *({**WEBHOOK, "headers": headers} for headers in HEADERS),
    {**WEBHOOK, "timeout_seconds": "inf"},
    {**WEBHOOK, "timeout_seconds": 1e300},
    {**WEBHOOK, "a": NUL},
    {**WEBHOOK, "a": SURROGATE},
]


def state() -> tuple:
    """Everything a request could have saved."""
    endpoints = [
        {key: str(value) for key, value in row.items()}
        for row in Endpoint.objects.order_by("pk").values()
    ]
    return endpoints, Log.objects.count(), ApiToken.objects.count()


@pytest.fixture
def world(make_endpoint):
    http = make_endpoint(name="existing", url="https://example.com/x")
    handler = make_endpoint(
        name="hook", kind="handler", handler="webhook:send", url="", payload=dict(WEBHOOK)
    )
    manual = make_endpoint(name="manual", schedule_type="none", cron_expression="")
    return {"http": http, "handler": handler, "manual": manual}


def cases(world) -> list[tuple[str, str, dict, str, list]]:
    """(method, path, valid body, field, hostile values for that field)."""
    http, handler, manual = world["http"], world["handler"], world["manual"]
    job = {"job_name": "new-job", "cron_expression": "0 * * * *", "url": "https://example.com/y"}
    handler_job = {"job_name": "new-hook", "cron_expression": "0 * * * *",
                   "handler": "webhook:send", "payload": WEBHOOK}  # fmt: skip
    jobs = "/api/v1/scheduler/jobs"
    schedule = f"/api/v1/schedules/sched-{http.uuid}"
    action = {"actionType": "webhook:send", "payload": WEBHOOK}
    return [
        ("post", jobs, job, "job_name", TEXT),
        ("post", jobs, job, "description", TEXT),
        ("post", jobs, job, "cron_expression", CRON),
        ("post", jobs, {**job, "cron_expression": None}, "interval_seconds", NUMBER),
        ("post", jobs, job, "timezone", [*TEXT, "²"]),
        ("post", jobs, job, "url", [*TEXT, "https://exa\u2028mple.com/"]),
        ("post", jobs, job, "headers", HEADERS),
        ("post", jobs, job, "body", TEXT),
        ("post", jobs, job, "timeout_seconds", NUMBER),
        ("post", jobs, job, "max_attempts", NUMBER),
        ("post", jobs, job, "expected_status", [*UNICODE_DIGITS, "²00", LONG]),
        ("post", jobs, job, "max_runs", NUMBER),
        ("post", jobs, handler_job, "payload", PAYLOADS),
        ("post", f"{jobs}/existing/trigger", {}, "triggered_by", TEXT),
        ("post", f"{jobs}/existing/trigger", {}, "as_of", INSTANT),
        ("post", f"{jobs}/existing/trigger", {}, "dry_run", UNICODE_DIGITS),
        (
            "post",
            "/api/v1/schedules",
            {"workflowId": str(manual.uuid), "cronExpression": "0 * * * *"},
            "cronExpression",
            CRON,
        ),  # fmt: skip
        (
            "post",
            "/api/v1/schedules",
            {"workflowId": str(manual.uuid), "cronExpression": "0 * * * *"},
            "workflowId",
            [*UNICODE_DIGITS, LONG, NUL],
        ),  # fmt: skip
        ("put", schedule, {}, "cronExpression", CRON),
        ("put", schedule, {}, "timezone", [*TEXT, "²"]),
        ("put", schedule, {}, "jitterSeconds", NUMBER),
        (
            "put",
            f"/api/v1/schedules/sched-{handler.uuid}",
            {},
            "inputData",
            [[{"json": payload}] for payload in PAYLOADS],
        ),  # fmt: skip
        ("post", f"{schedule}/disable", {}, "reason", TEXT),
        ("post", f"{schedule}/disable", {}, "until", INSTANT),
        (
            "post",
            f"{schedule}/backfill",
            {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"},
            "start",
            INSTANT,
        ),  # fmt: skip
        ("post", "/api/v1/devtools/scheduled-actions", action, "payload", PAYLOADS),
        ("post", "/api/v1/devtools/scheduled-actions", action, "scheduledAt", INSTANT),
        (
            "post",
            "/api/v1/devtools/scheduled-actions",
            action,
            "recurringInterval",
            [*NUMBER, f"{LONG}m", "every ² hours"],
        ),  # fmt: skip
        ("post", "/api/v1/devtools/scheduled-actions", action, "teamId", TEXT),
        ("post", "/api/v1/devtools/scheduled-actions", action, "actionType", TEXT),
    ]


def test_no_api_write_route_answers_500_or_saves_hostile_input(world, editor, settings, caplog):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "100000/min"
        },
    }  # fmt: skip
    client = client_for(editor)
    before = state()
    failures = []
    for method, path, body, field, values in cases(world):
        for value in values:
            sent = {**body, field: value}
            # json.dumps writes a lone surrogate as the escape "\ud800", as a client would.
            response = client.generic(
                method.upper(), path, json.dumps(sent), content_type="application/json"
            )
            if response.status_code not in (400, 404, 409, 413):
                failures.append((method, path, field, repr(value)[:60], response.status_code))
            elif response.status_code == 400:
                assert response.json()["code"] == "VALIDATION_ERROR", (path, field)
    assert failures == []
    assert state() == before
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 5000 + "]" * 5000,  # nested too deeply for any parser
        '{"job_name": "n", "url": "https://example.com/", "interval_seconds": ' + LONG + "}",
        '{"job_name": "n", "url": "https://example.com/", "timeout_seconds": 1e999}',
        '{"job_name": "n", "url": "https://example.com/", "timeout_seconds": NaN}',
    ],
)
def test_raw_json_no_parser_can_take_is_a_400(world, as_editor, raw):
    before = state()
    response = as_editor.post("/api/v1/scheduler/jobs", raw, content_type="application/json")
    assert response.status_code == 400
    assert state() == before


# --- the dashboard's forms ------------------------------------------------------------------


def _form_cases(world) -> list[tuple[str, dict, str, list]]:
    http = world["http"]
    create = form_data(name="new-one")
    interval = {**create, "schedule_type": "interval", "cron_expression": ""}
    handler = {**create, "kind": "handler", "url": "", "handler": "webhook:send"}
    edit = f"/endpoints/{http.pk}/edit/"
    header_lines = [f"X-T: {value}" for value in [*SEPARATORS, NUL, SURROGATE]]
    payload_texts = [json.dumps(payload) for payload in PAYLOADS[:1] + PAYLOADS[-4:]]
    # Django's number fields read "٣" as 3 (a digit, in Arabic script): not hostile there.
    number_texts = ["²", "①", "12³", LONG, "inf", "1e999"]
    # A browser cannot send a lone surrogate: its bytes arrive as U+FFFD, which is text.
    text = [NUL, OVERSIZE]
    return [
        ("/endpoints/new/", create, "name", text),
        ("/endpoints/new/", create, "description", text),
        ("/endpoints/new/", create, "cron_expression", CRON),
        ("/endpoints/new/", interval, "interval_seconds", [*UNICODE_DIGITS, LONG, f"{LONG}m"]),
        ("/endpoints/new/", create, "headers", header_lines),
        ("/endpoints/new/", create, "timeout_seconds", number_texts),
        ("/endpoints/new/", create, "max_runs", number_texts),
        ("/endpoints/new/", create, "max_attempts", number_texts),
        ("/endpoints/new/", create, "jitter_seconds", number_texts),
        ("/endpoints/new/", handler, "payload", payload_texts),
        (edit, {**interval, "name": "existing"}, "interval_seconds", [*UNICODE_DIGITS, LONG]),
        (edit, {**create, "name": "existing"}, "headers", header_lines),
        (f"/endpoints/{http.pk}/pause/", {"reason": "x"}, "reason", text),
        (f"/endpoints/{http.pk}/pause/", {"reason": "x"}, "until", INSTANT),
        (
            f"/endpoints/{http.pk}/backfill/",
            {"start": "2026-11-01T00:00", "end": "2026-11-02T00:00"},
            "start",
            INSTANT,
        ),  # fmt: skip
        (f"/endpoints/{http.pk}/run/", {"dry_run": "on"}, "as_of", INSTANT),
        ("/tokens/", {"name": "x"}, "name", text),
    ]


FORM = "application/x-www-form-urlencoded"


def _form_body(data: dict) -> str:
    """What a browser sends; a lone surrogate as the bytes it would percent-encode."""
    return urlencode(data, encoding="utf-8", errors="surrogatepass")


def test_no_dashboard_form_answers_500_or_saves_hostile_input(world, editor, caplog):
    caplog.set_level(logging.WARNING)
    browser = Client(raise_request_exception=False)
    browser.force_login(editor)
    before = state()
    failures = []
    for path, data, field, values in _form_cases(world):
        for value in values:
            response = browser.post(path, _form_body({**data, field: value}), content_type=FORM)
            if response.status_code >= 500 or state() != before:
                failures.append((path, field, repr(value)[:60], response.status_code))
                before = state()
    assert failures == []
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    "query",
    [
        *({"schedule_type": "interval", "interval_seconds": digit} for digit in UNICODE_DIGITS),
        {"schedule_type": "interval", "interval_seconds": LONG},
        *({"schedule_type": "cron", "cron_expression": f"*/{d} * * * *"} for d in UNICODE_DIGITS),
        {"schedule_type": "cron", "cron_expression": f"{LONG} * * * *"},
        {"schedule_type": "once", "run_at": "²"},
        *({"endpoint": digit} for digit in UNICODE_DIGITS),
        {"endpoint": LONG},
    ],
)
def test_the_schedule_preview_tells_a_viewer_what_is_wrong(viewer, world, query):
    browser = Client(raise_request_exception=False)
    browser.force_login(viewer)
    response = browser.get("/endpoints/schedule-preview/", query)
    assert response.status_code == 200


def test_a_line_separator_never_splits_a_header_on_an_unchanged_resave(world, editor):
    endpoint = world["http"]
    # A value stored before the rule (straight into the database) is shown, not split.
    Endpoint.objects.filter(pk=endpoint.pk).update(headers={"X-Old": "a\u2028X-Evil: 1"})
    browser = Client()
    browser.force_login(editor)
    form = browser.get(f"/endpoints/{endpoint.pk}/edit/").context["form"]
    data = {name: form[name].value() for name in form.fields}
    data = {
        key: ("" if value is None else value) for key, value in data.items() if value is not False
    }
    response = browser.post(f"/endpoints/{endpoint.pk}/edit/", data)
    endpoint.refresh_from_db()
    assert "X-Evil" not in endpoint.headers
    assert response.status_code == 200 and "U+2028" in response.content.decode()


def test_the_job_api_refuses_separators_in_header_names_and_values(as_editor):
    for headers in HEADERS:
        job = {"job_name": "sep", "url": "https://example.com/", "headers": headers}
        response = as_editor.post(
            "/api/v1/scheduler/jobs", json.dumps(job), content_type="application/json"
        )
        assert response.status_code == 400, headers
        assert any(key.startswith("headers") for key in response.json()["details"])
    assert not Endpoint.objects.filter(name="sep").exists()
