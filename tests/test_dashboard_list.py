"""The endpoint list's columns and states: the target as host and path, finished one-time jobs
and cancelled actions as done (not paused), scheduled actions by their type and a label."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard import states
from dashboard.templatetags.dashboard import target
from endpoints.models import Endpoint
from runs import actions
from tests.web_support import login

pytestmark = pytest.mark.django_db

INDEX = reverse("dashboard:index")


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://127.0.0.1:8765/ok", "127.0.0.1:8765/ok"),
        ("http://127.0.0.1:8765/", "127.0.0.1:8765"),
        ("https://crm.example.com/api/sync?full=1", "crm.example.com/api/sync?…"),
        ("https://x.example.com/api/v1/tenants/acme/jobs/sync", "x.example.com/api/…/sync"),
        ("https://x.example.com/" + "a" * 60, "x.example.com/" + "a" * 12 + "…" + "a" * 13),
    ],
)
def test_the_target_is_the_host_and_a_shortened_path(url, shown):
    assert target(url) == shown


def test_the_list_tells_targets_on_one_host_apart(viewer, make_endpoint):
    for path in ("ok", "fail", "slow"):
        make_endpoint(name=f"t-{path}", url=f"http://127.0.0.1:8765/{path}")
    html = login(viewer).get(INDEX).content.decode()
    for path in ("ok", "fail", "slow"):
        assert f">127.0.0.1:8765/{path}</span>" in html


def finished_one_time(make_endpoint, name: str = "once-off") -> Endpoint:
    endpoint = make_endpoint(
        name=name,
        schedule_type=Endpoint.ScheduleType.ONCE,
        cron_expression="",
        run_at=timezone.now() + timedelta(hours=1),
    )
    # As the dispatcher leaves it once the slot is dispatched and the run recorded.
    Endpoint.objects.filter(pk=endpoint.pk).update(
        enabled=False,
        disabled_reason="One-time run dispatched.",
        next_run_at=None,
        last_run_at=timezone.now(),
        last_status="success",
    )
    endpoint.refresh_from_db()
    return endpoint


def test_a_finished_one_time_job_is_done_not_paused(viewer, make_endpoint):
    endpoint = finished_one_time(make_endpoint)
    paused = make_endpoint(name="held")
    paused.pause(now=timezone.now(), by="ada", reason="vendor maintenance")
    make_endpoint(name="busy")
    assert states.state_of(endpoint) == "done"
    assert list(Endpoint.objects.filter(states.DONE)) == [endpoint]

    client = login(viewer)
    response = client.get(INDEX)
    html = response.content.decode()
    assert response.context["totals"]["paused"] == 1
    assert response.context["totals"]["done"] == 1
    assert "3 endpoints · 1 paused · 1 done" in html
    row = html[html.index(f'id="endpoint-{endpoint.pk}"') :].split("</tr>")[0]
    assert 'class="is-done"' in row and "badge-done" in row and "badge-paused" not in row

    page = client.get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()
    assert '<span class="badge badge-done">done</span>' in page
    assert "ran its one time" in page and "Resume" not in page


def test_the_state_filter_keeps_done_apart_from_paused(viewer, make_endpoint):
    finished_one_time(make_endpoint)
    make_endpoint(name="held").pause(now=timezone.now(), by="ada")
    make_endpoint(name="busy")
    client = login(viewer)

    def names(state: str) -> list[str]:
        return [e.name for e in client.get(INDEX, {"enabled": state}).context["endpoints"]]

    assert names("done") == ["once-off"]
    assert names("no") == ["held"]
    assert names("yes") == ["busy"]


def test_a_cancelled_action_is_done_and_shown_by_its_type(viewer):
    action_id = actions.schedule_action(
        "webhook:send",
        {"url": "https://hooks.example.com/tasks/created"},
        scheduled_at=timezone.now() + timedelta(hours=1),
    )
    actions.cancel_scheduled_action(action_id)
    endpoint = actions.find_action(action_id)
    assert endpoint.name.startswith("webhook:send.")
    assert states.state_of(endpoint) == "done"

    html = login(viewer).get(INDEX).content.decode()
    row = html[html.index(f'id="endpoint-{endpoint.pk}"') :].split("</tr>")[0]
    assert ">webhook:send</a>" in row
    assert "one-time action · hooks.example.com/tasks/created" in row
    assert "badge-done" in row and "paused" not in row

    page = login(viewer).get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()
    assert "the action was cancelled" in page


def test_a_one_time_job_paused_before_it_ran_is_paused(make_endpoint):
    endpoint = make_endpoint(
        name="later",
        schedule_type=Endpoint.ScheduleType.ONCE,
        cron_expression="",
        run_at=timezone.now() + timedelta(days=1),
    )
    endpoint.pause(now=timezone.now(), by="ada", reason="not yet")
    assert states.state_of(endpoint) == "paused"
    assert not Endpoint.objects.filter(states.DONE).exists()
