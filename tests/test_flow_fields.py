"""flow_key, flow_parallelism and flow_rate at every door: job files, the Nightly Scheduler API
(snake_case), the Schedules API (camelCase, seed 002), the dashboard form and the admin — the
same validation, the same errors (the behaviour: tests/test_flow.py)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from endpoints.models import Endpoint
from tests.test_dashboard_forms import form_data
from tests.web_support import login

pytest_plugins = ["tests.api_support"]
pytestmark = pytest.mark.django_db
JOBS = "/api/v1/scheduler/jobs"
SCHEDULES = "/api/v1/schedules"
FLOW = {"flow_key": "vendor-api", "flow_parallelism": 2, "flow_rate": "600/minute"}


def job(**fields) -> dict:
    values = {
        "job_name": "sync-orders",
        "cron_expression": "0 * * * *",
        "timezone": "UTC",
        "url": "https://api.vendor.example/orders",
    }
    return values | fields


def test_a_job_file_sets_the_flow_fields_and_exportjobs_writes_them_back(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([job(**FLOW), job(job_name="plain")]))
    call_command("applyjobs", str(path), stdout=io.StringIO())
    endpoint = Endpoint.objects.get(name="sync-orders")
    assert (endpoint.flow_key, endpoint.flow_parallelism, endpoint.flow_rate) == (
        "vendor-api", 2, "600/min",
    )  # fmt: skip
    out = io.StringIO()
    call_command("exportjobs", stdout=out)
    exported = {item["job_name"]: item for item in json.loads(out.getvalue())}
    assert {k: exported["sync-orders"][k] for k in FLOW} == FLOW | {"flow_rate": "600/min"}
    assert not {"flow_key", "flow_parallelism", "flow_rate"} & set(exported["plain"])


def test_a_job_file_with_a_bad_rate_is_refused_with_one_line_and_changes_nothing(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([job(flow_key="vendor-api", flow_rate="lots")]))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("applyjobs", str(path), stdout=io.StringIO(), stderr=err)
    assert "flow_rate" in err.getvalue() and "10/s" in err.getvalue()
    assert not Endpoint.objects.exists()


def test_the_job_api_takes_and_shows_the_flow_fields(as_editor):
    response = as_editor.post(JOBS, job(**FLOW), format="json")
    assert response.status_code == 201, response.json()
    shown = as_editor.get(JOBS).json()["data"][0]
    assert (shown["flow_key"], shown["flow_parallelism"], shown["flow_rate"]) == (
        "vendor-api", 2, "600/min",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"flow_key": "vendor-api", "flow_rate": "10/fortnight"}, "flow_rate"),
        ({"flow_key": "vendor-api", "flow_parallelism": 0}, "flow_parallelism"),
        ({"flow_key": "vendor api"}, "flow_key"),
        ({"flow_parallelism": 3}, "flow_parallelism"),
    ],
)
def test_bad_flow_fields_are_a_400_naming_the_field_and_save_nothing(as_editor, fields, field):
    response = as_editor.post(JOBS, job(**fields), format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert field in response.json()["details"]
    assert not Endpoint.objects.exists()


def test_the_schedules_api_shows_and_changes_the_flow_fields_in_camel_case(
    as_editor, make_endpoint
):
    endpoint = make_endpoint(name="daily", cron_expression="0 9 * * *")
    url = f"{SCHEDULES}/sched-{endpoint.pk}"
    response = as_editor.put(
        url, {"flowKey": "vendor-api", "flowParallelism": 3, "flowRate": "10/s"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["flowKey"], body["flowParallelism"], body["flowRate"]) == ("vendor-api", 3, "10/s")
    bad = as_editor.put(url, {"flowRate": "quickly"}, format="json")
    assert bad.status_code == 400 and list(bad.json()["details"]) == ["flowRate"]
    endpoint.refresh_from_db()
    assert endpoint.flow_rate == "10/s"


def test_the_form_sets_the_flow_fields_and_shows_a_bad_rate_inline(editor):
    client = login(editor)
    response = client.post(
        reverse("dashboard:endpoint_create"),
        form_data(flow_key="vendor-api", flow_parallelism="2", flow_rate="fast"),
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Nothing was saved" in html
    block = html.split('id="field-flow_rate"')[1].split('<div class="field')[0]
    assert "10/s" in block
    assert '<details class="card advanced" id="advanced-settings" open>' in html
    response = client.post(
        reverse("dashboard:endpoint_create"),
        form_data(flow_key="vendor-api", flow_parallelism="2", flow_rate="10/s"),
    )
    assert response.status_code == 302
    endpoint = Endpoint.objects.get()
    assert (endpoint.flow_key, endpoint.flow_parallelism, endpoint.flow_rate) == (
        "vendor-api", 2, "10/s",
    )  # fmt: skip
    page = client.get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()
    assert "<code>vendor-api</code>" in page and "2 at once, 10/s for this job" in page


def test_the_admin_edits_the_flow_fields(superuser, make_endpoint):
    endpoint = make_endpoint(flow_key="vendor-api", flow_rate="10/s")
    html = (
        login(superuser)
        .get(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]))
        .content.decode()
    )
    assert "Flow control" in html and 'name="flow_rate" value="10/s"' in html
