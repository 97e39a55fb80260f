"""Response assertions (calls/assertions.py): each source and comparison against real responses
from loopback servers, the verdict a run records, and what is refused on save."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from calls import assertions
from calls.client import call
from calls.spec import CallSpec
from endpoints.models import Endpoint
from runs import services
from runs.models import Log
from tests import hostile

DOCUMENT = {
    "data": {"state": "failed", "count": 3, "ratio": 0.25, "tags": ["a", "b"], "ok": True},
    "completedAt": None,
    "status": "running",
}
HEADERS = {"Content-Type": "application/json", "X-Request-Id": "req-42", "Set-Cookie": "s=1"}


@pytest.fixture
def json_server(serve):
    return serve(hostile.answer(json.dumps(DOCUMENT).encode(), headers=HEADERS, keep_alive=True))


def verdict(url: str, *rows: dict, **fields):
    spec = CallSpec(method="GET", url=url, timeout=5, assertions=assertions.parse(list(rows)))
    for name, value in fields.items():
        setattr(spec, name, value)
    return call(spec)


def row(source, prop, comparison, target=None):
    found = {"source": source, "property": prop, "comparison": comparison}
    return found if comparison in assertions.UNARY else found | {"target": target}


HOLDING = [
    row("status_code", "", "equals", 200),
    row("status_code", "", "equals", "200"),
    row("status_code", "", "not_equals", 500),
    row("status_code", "", "less_than", 300),
    row("status_code", "", "greater_than", 199),
    row("json", "$.data.state", "equals", "failed"),
    row("json", "$.data.count", "equals", 3),
    row("json", "$.data.count", "equals", "3"),
    row("json", "$.data.ok", "equals", "true"),
    row("json", "$.completedAt", "equals", None),
    row("json", "$.data.state", "not_equals", "ok"),
    row("json", "$.data.state", "contains", "fail"),
    row("json", "$.data.tags", "contains", "b"),
    row("json", "$.data", "contains", "count"),
    row("json", "$.data.state", "not_contains", "ok"),
    row("json", "$.data.count", "less_than", 4),
    row("json", "$.data.ratio", "greater_than", "0.2"),
    row("json", "$.completedAt", "exists"),
    row("json", "$.data.missing", "not_exists"),
    row("json", "$.data.missing", "not_equals", "x"),
    row("json", "$.data.state", "matches", "^fail(ed)?$"),
    row("json", "$.data.tags[?@ == 'a']", "exists"),
    row("header", "content-type", "equals", "application/json"),
    row("header", "X-Request-Id", "contains", "42"),
    row("header", "X-Request-Id", "not_contains", "43"),
    row("header", "Set-Cookie", "exists"),
    row("header", "X-Missing", "not_exists"),
    row("header", "X-Request-Id", "matches", r"req-\d+"),
    row("header", "X-Request-Id", "not_equals", "req-43"),
    row("header", "Content-Length", "greater_than", 10),
    row("header", "Content-Length", "less_than", "100000"),
    row("text", "", "contains", '"status": "running"'),
    row("text", "", "not_contains", 'completed":'),
    row("text", "", "matches", r'"count": \d'),
    row("text", "", "not_equals", "ok"),
    row("duration_ms", "", "less_than", 60_000),
]


@pytest.mark.parametrize("assertion", HOLDING, ids=lambda r: f"{r['source']}-{r['comparison']}")
def test_an_assertion_that_holds_leaves_the_call_a_success(json_server, assertion):
    outcome = verdict(json_server.url(), assertion)

    assert outcome.ok, outcome.error_message
    assert outcome.error_class == ""


FAILING = [
    (row("status_code", "", "equals", 201), "status code is 200, expected equals 201"),
    (row("status_code", "", "greater_than", 200), "status code is 200, expected greater_than 200"),
    (row("json", "$.data.state", "equals", "ok"), '$.data.state is "failed", expected equals "ok"'),
    (row("json", "$.data.nope", "equals", "ok"), '$.data.nope is missing, expected equals "ok"'),
    (row("json", "$.data.count", "not_equals", 3), "$.data.count is 3, expected not_equals 3"),
    (row("json", "$.data.tags", "contains", "c"), '$.data.tags is ["a", "b"], expected '
     'contains "c"'),
    (row("json", "$.data.state", "not_contains", "fail"), '$.data.state is "failed", expected '
     'not_contains "fail"'),
    (row("json", "$.data.count", "greater_than", 3), "$.data.count is 3, expected greater_than 3"),
    (row("json", "$.data.state", "less_than", 3), '$.data.state is "failed", expected less_than 3'),
    (row("json", "$.data.nope", "exists"), "$.data.nope is missing, expected exists"),
    (row("json", "$.completedAt", "not_exists"), "$.completedAt is null, expected not_exists"),
    (row("json", "$.data.state", "matches", "^ok$"), '$.data.state is "failed", expected matches '
     '"^ok$"'),
    (row("header", "Content-Type", "equals", "text/html"), 'header Content-Type is '
     '"application/json", expected equals "text/html"'),
    (row("header", "X-Trace", "exists"), "header X-Trace is missing, expected exists"),
    (row("header", "X-Request-Id", "not_exists"), 'header X-Request-Id is "req-42", expected '
     "not_exists"),
    (row("text", "", "contains", "completed\""), "the body is "),
    (row("text", "", "equals", "ok"), "expected equals \"ok\""),
    (row("duration_ms", "", "greater_than", 60_000), "expected greater_than 60000"),
]  # fmt: skip


@pytest.mark.parametrize(
    "assertion,message", FAILING, ids=lambda r: f"{r['source']}-{r['comparison']}"
    if isinstance(r, dict) else "")  # fmt: skip
def test_an_assertion_that_fails_says_what_it_found(json_server, assertion, message):
    outcome = verdict(json_server.url(), assertion)

    assert not outcome.ok
    assert outcome.error_class == "assertion"
    assert message in outcome.error_message


def test_a_slow_answer_fails_a_duration_limit_with_the_time_it_took(serve):
    slow = serve(hostile.answer(b"{}", delay=0.3))

    outcome = verdict(slow.url(), row("duration_ms", "", "less_than", 100))
    passed = verdict(slow.url(), row("duration_ms", "", "greater_than", 250))

    assert outcome.error_class == "assertion"
    assert outcome.error_message.startswith("duration is ")
    assert outcome.error_message.endswith(" ms, expected less_than 100")
    assert passed.ok, passed.error_message


def test_the_first_assertion_that_does_not_hold_is_the_one_reported(json_server):
    outcome = verdict(
        json_server.url(),
        row("status_code", "", "equals", 200),
        row("json", "$.status", "equals", "done"),
        row("json", "$.data.state", "equals", "ok"),
    )

    assert outcome.error_message == '$.status is "running", expected equals "done"'


def test_a_failed_status_is_reported_before_any_assertion(serve):
    server = serve(hostile.answer(b'{"state": "ok"}', status="503 Service Unavailable"))

    outcome = verdict(server.url(), row("json", "$.state", "equals", "nope"))

    assert outcome.error_class == "http_status"


def test_a_body_that_is_not_json_fails_a_json_assertion(serve):
    server = serve(hostile.answer(b"<html>fine</html>", headers={"Content-Type": "text/html"}))

    outcome = verdict(server.url(), row("json", "$.state", "exists"))

    assert outcome.error_message == "$.state: the body is not JSON, expected exists"


def test_a_document_longer_than_the_kept_excerpt_says_so(serve, settings):
    settings.SCHEDULER_RESPONSE_EXCERPT_BYTES = 32
    server = serve(hostile.answer(json.dumps({"pad": "x" * 100, "state": "ok"}).encode()))

    outcome = verdict(server.url(), row("json", "$.state", "equals", "ok"))

    assert outcome.error_message == (
        '$.state: the body is not JSON (only its first part was kept), expected equals "ok"'
    )


# --- through a run -----------------------------------------------------------------------------


def completed_at_null(serve):
    body = json.dumps({"status": "running", "completedAt": None}).encode()
    return serve(hostile.answer(body, headers={"Content-Type": "application/json"}))


def test_a_substring_check_passes_completed_at_null_and_an_assertion_does_not(serve, make_endpoint):
    """The false success of a substring check: 'completed' is in '"completedAt": null'."""
    server = completed_at_null(serve)
    substring = make_endpoint(name="substring", url=server.url(), response_must_contain="completed")
    checked = make_endpoint(
        name="checked",
        url=server.url(),
        assertions=[row("json", "$.status", "equals", "completed")],
    )

    wrong = services.run_in_foreground(substring)
    right = services.run_in_foreground(checked)

    assert wrong.state == Log.State.SUCCESS
    assert right.state == Log.State.FAILED
    assert right.error_class == Log.ErrorClass.ASSERTION
    assert right.error_message == '$.status is "running", expected equals "completed"'


def test_a_run_whose_assertions_hold_succeeds(serve, make_endpoint):
    server = completed_at_null(serve)
    endpoint = make_endpoint(
        url=server.url(),
        assertions=[
            row("json", "$.status", "equals", "running"),
            row("json", "$.completedAt", "equals", None),
            row("header", "Content-Type", "contains", "json"),
        ],
    )

    log = services.run_in_foreground(endpoint)

    assert log.state == Log.State.SUCCESS, log.error_message


def test_must_contain_is_the_text_contains_shorthand(serve, make_endpoint):
    server = completed_at_null(serve)
    shorthand = make_endpoint(name="short", url=server.url(), response_must_contain="finished")
    spelled = make_endpoint(
        name="spelled", url=server.url(), assertions=[row("text", "", "contains", "finished")]
    )

    assert services.run_in_foreground(shorthand).error_class == Log.ErrorClass.ASSERTION
    assert services.run_in_foreground(spelled).error_class == Log.ErrorClass.ASSERTION


# --- refused on save ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,message",
    [
        ([row("json", "$.data[", "equals", "ok")], "Assertion 1: '$.data[' is not a valid"),
        ([row("json", "data.state", "equals", "ok")], "it must start with $"),
        ([row("json", "", "exists")], "needs a JSONPath"),
        ([{"source": "body", "comparison": "equals", "target": 1}], "source must be one of"),
        ([row("json", "$.a", "roughly", 1)], "comparison must be one of"),
        ([row("status_code", "", "contains", 2)], "status_code can be compared by"),
        ([row("json", "$.a", "less_than", "many")], "less_than needs a number"),
        ([row("json", "$.a", "matches", "(")], "is not a regular expression"),
        ([{"source": "json", "property": "$.a", "comparison": "equals"}], "equals needs a target"),
        ([{**row("json", "$.a", "exists"), "target": "x"}], "exists takes no target"),
        ([row("header", "Bad Name", "exists")], "must be a header name"),
        ([row("text", "$.a", "contains", "x")], "a text assertion takes no property"),
        ([{**row("json", "$.a", "exists"), "extra": 1}], "unknown field 'extra'"),
        ([row("json", "$.a", "equals", {"a": 1})], "the target must be text, a number"),
        ([row("status_code", "", "equals", 200), "x"], "Assertion 2: an object"),
        ({"source": "json"}, "A list of assertions"),
        ([row("status_code", "", "equals", 200)] * 21, "At most 20 assertions"),
    ],
)
def test_an_assertion_that_cannot_be_checked_is_refused_on_save(make_endpoint, given, message):
    with pytest.raises(ValidationError) as refused:
        make_endpoint(assertions=given)

    assert message in refused.value.message_dict["assertions"][0]


def test_assertions_are_stored_with_every_field(make_endpoint):
    endpoint = make_endpoint(
        assertions=[{"source": "json", "property": " $.a ", "comparison": "exists"}]
    )

    endpoint.refresh_from_db()
    assert endpoint.assertions == [
        {"source": "json", "property": "$.a", "comparison": "exists", "target": None}
    ]


def test_a_batch_of_runs_is_judged_run_by_run_on_the_workers_path(serve, make_endpoint):
    """execute_many is what a worker's batch task does: claim, send on one loop, record."""
    from runs import executor
    from tests.runs_support import queued

    server = completed_at_null(serve)
    logs = queued(
        make_endpoint,
        {"holds": server.url("/a"), "fails": server.url("/b"), "plain": server.url("/c")},
    )
    Endpoint.objects.filter(name="holds").update(
        assertions=[row("json", "$.status", "equals", "running")]
    )
    Endpoint.objects.filter(name="fails").update(
        assertions=[row("json", "$.completedAt", "not_equals", None)]
    )

    executor.execute_many([log.pk for log in logs])

    states = {log.endpoint.name: log for log in Log.objects.select_related("endpoint")}
    assert states["holds"].state == states["plain"].state == Log.State.SUCCESS
    assert states["fails"].state == Log.State.FAILED
    assert states["fails"].error_message == "$.completedAt is null, expected not_equals null"
