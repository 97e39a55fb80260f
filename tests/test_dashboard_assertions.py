"""Response assertions in the endpoint form: rows in, rows out, errors inline naming the row,
and the live check of the rows as typed against the endpoint's last response."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from endpoints.models import Endpoint
from runs import services
from tests import hostile
from tests.test_dashboard_forms import CREATE, edit_url, form_data
from tests.web_support import login

pytestmark = pytest.mark.django_db
CHECK = reverse("dashboard:assertions_check")


def rows(*given: tuple[str, str, str, str], start: int = 0) -> dict[str, str]:
    data = {}
    for number, (source, prop, comparison, target) in enumerate(given, start=start):
        data |= {
            f"assertions-{number}-source": source,
            f"assertions-{number}-property": prop,
            f"assertions-{number}-comparison": comparison,
            f"assertions-{number}-target": target,
        }
    return data


def test_an_editor_adds_assertions_as_rows(editor):
    data = form_data(
        **rows(
            ("json", "$.data.state", "equals", "ok"),
            ("status_code", "", "less_than", "300"),
            ("header", "Content-Type", "exists", ""),
            ("json", "", "equals", ""),  # a spare row left empty
        )
    )

    response = login(editor).post(CREATE, data)

    assert response.status_code == 302
    assert Endpoint.objects.get(name="nightly-report").assertions == [
        {"source": "json", "property": "$.data.state", "comparison": "equals", "target": "ok"},
        {"source": "status_code", "property": "", "comparison": "less_than", "target": 300},
        {"source": "header", "property": "Content-Type", "comparison": "exists", "target": None},
    ]


def test_a_bad_jsonpath_is_refused_inline_naming_the_row_and_nothing_is_saved(editor):
    data = form_data(
        **rows(("status_code", "", "equals", "200"), ("json", "$.data[", "equals", "ok"))
    )

    response = login(editor).post(CREATE, data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was saved" in page
    assert "Assertion 2: &#x27;$.data[&#x27; is not a valid JSONPath" in page
    assert 'value="$.data["' in page  # the rows come back as typed
    assert not Endpoint.objects.filter(name="nightly-report").exists()


def test_the_edit_form_shows_the_stored_rows_and_removing_one_drops_it(editor, make_endpoint):
    endpoint = make_endpoint(
        assertions=[
            {"source": "json", "property": "$.a", "comparison": "equals", "target": 1},
            {"source": "text", "comparison": "contains", "target": "done"},
        ]
    )
    client = login(editor)

    page = client.get(edit_url(endpoint)).content.decode()
    data = form_data(
        name=endpoint.name,
        url=endpoint.url,
        **rows(("json", "$.a", "equals", "1"), ("text", "", "contains", "done")),
        **{"assertions-0-remove": "1"},
    )
    client.post(edit_url(endpoint), data)

    assert 'name="assertions-0-property" value="$.a"' in page
    assert 'name="assertions-1-target" value="done"' in page
    assert 'name="assertions-3-source"' in page  # two spare rows
    endpoint.refresh_from_db()
    assert endpoint.assertions == [
        {"source": "text", "property": "", "comparison": "contains", "target": "done"}
    ]


@pytest.fixture
def answered(serve, make_endpoint):
    """An endpoint whose last run got {"status": "running", "completedAt": null}."""
    body = json.dumps({"status": "running", "completedAt": None}).encode()
    server = serve(hostile.answer(body, headers={"Content-Type": "application/json"}))
    endpoint = make_endpoint(url=server.url())
    services.run_in_foreground(endpoint)
    return endpoint


def test_the_live_check_runs_each_row_against_the_last_response(editor, answered):
    given = rows(
        ("json", "$.status", "equals", "running"),
        ("json", "$.status", "equals", "completed"),
        ("text", "", "contains", "completed"),
        ("json", "$.data[", "exists", ""),
        ("header", "X-Trace", "exists", ""),
    )

    page = login(editor).get(CHECK, {"endpoint": answered.pk, **given}).content.decode()

    assert "Checked against the last response, run-" in page
    assert "1. ✓ holds" in page
    assert "2. ✗ $.status is &quot;running&quot;, expected equals &quot;completed&quot;" in page
    assert "3. ✓ holds" in page  # the substring check a JSON value corrects
    assert "4. ! &#x27;$.data[&#x27; is not a valid JSONPath" in page
    assert "5. ? Runs do not keep the X-Trace header" in page


def test_the_live_check_of_a_new_endpoint_says_there_is_no_response_yet(editor):
    page = login(editor).get(CHECK, rows(("status_code", "", "equals", "200"))).content.decode()

    assert "No response yet" in page


def test_the_live_check_without_rows_says_what_a_success_is(viewer):
    page = login(viewer).get(CHECK).content.decode()

    assert "No assertions" in page


# --- the admin: the same field, as JSON, validated by the same rules -----------------------------


def test_the_admin_edits_assertions_as_json_refusing_a_bad_jsonpath(editor, make_endpoint):
    from tests.test_admin import change_url, staff
    from tests.test_admin import form_data as admin_form_data

    endpoint = make_endpoint()
    client = login(staff(editor))
    data = admin_form_data(client.get(change_url(endpoint)))

    data["assertions"] = '[{"source": "json", "property": "$.x[", "comparison": "exists"}]'
    refused = client.post(change_url(endpoint), data)
    data["assertions"] = '[{"source": "json", "property": "$.x", "comparison": "exists"}]'
    saved = client.post(change_url(endpoint), data)

    assert "is not a valid JSONPath" in str(refused.context["adminform"].form.errors["assertions"])
    assert saved.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.assertions == [
        {"source": "json", "property": "$.x", "comparison": "exists", "target": None}
    ]


def test_the_endpoint_page_lists_its_assertions(viewer, make_endpoint):
    endpoint = make_endpoint(
        assertions=[
            {"source": "json", "property": "$.data.state", "comparison": "equals", "target": "ok"},
            {"source": "header", "property": "X-Id", "comparison": "exists"},
        ]
    )

    page = login(viewer).get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()

    assert "<code>$.data.state</code> equals &quot;ok&quot;" in page
    assert "<code>header X-Id</code> exists" in page


def test_rows_left_in_the_form_of_a_handler_job_are_dropped_not_refused(editor):
    data = form_data(
        kind="handler", url="", handler="webhook:send", payload='{"url": "https://x.io"}',
        **rows(("json", "$.a", "exists", "")),
    )  # fmt: skip

    response = login(editor).post(CREATE, data)

    assert response.status_code == 302
    assert Endpoint.objects.get(name="nightly-report").assertions == []
