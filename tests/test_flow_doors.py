"""Flow control at the doors: the Limits page, a run's wait on its page, and `runjob` of a keyed
job (the fields in forms, job files, the APIs and the admin: tests/test_flow_fields.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from endpoints.models import Endpoint
from runs import dispatcher, services
from runs.models import Log
from tests.web_support import login

pytestmark = pytest.mark.django_db
LIMITS = reverse("dashboard:limits")


def saturate(make_endpoint, count: int = 3) -> list[Endpoint]:
    now = timezone.now()
    made = [
        make_endpoint(
            name=f"sync-{n}",
            flow_key="vendor-api",
            flow_parallelism=1,
            flow_rate="10/s",
            cron_expression="0 * * * *",
        )
        for n in range(count)
    ]
    Endpoint.objects.update(next_run_at=now)
    dispatcher.dispatch_due(now)
    return made


def test_the_limits_page_shows_each_key_its_limits_and_runs_now(viewer, make_endpoint):
    saturate(make_endpoint)
    page = login(viewer).get(LIMITS)
    assert page.status_code == 200
    html = page.content.decode()
    assert "<code>vendor-api</code>" in html
    assert "1 at once, 10/s" in html
    assert 'data-label="In flight">1 <span class="muted small">of 1</span>' in html
    assert '<span class="badge badge-pending">2</span>' in html
    assert 'aria-current="page"' in html and ">Limits</a>" in html  # in the main navigation


def test_the_limits_page_says_what_a_flow_key_is_for_when_there_is_none(viewer):
    html = login(viewer).get(LIMITS).content.decode()
    assert "No job has a flow key" in html


def test_the_limits_page_refreshes_its_table_alone(viewer, make_endpoint):
    saturate(make_endpoint)
    fragment = login(viewer).get(LIMITS, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<section id="limits"')


def test_an_outsider_may_not_see_the_limits(outsider, client):
    assert login(outsider).get(LIMITS).status_code == 403
    assert client.get(LIMITS).status_code == 302


def test_a_run_waiting_for_its_key_says_so_on_its_page_and_then_how_long_it_waited(
    viewer, make_endpoint
):
    saturate(make_endpoint, 2)
    waiting = Log.objects.get(state="pending")
    html = login(viewer).get(reverse("dashboard:log", args=[waiting.pk])).content.decode()
    assert "Waiting for flow key vendor-api: 1 of 1 runs in flight." in html
    Log.objects.filter(pk=waiting.pk).update(
        state="success", started_at=waiting.held_since + timedelta(seconds=4.2),
        reason="Waited 4.2 s for flow key vendor-api.",
    )  # fmt: skip
    html = login(viewer).get(reverse("dashboard:log", args=[waiting.pk])).content.decode()
    assert "Why success" not in html
    assert "waited 4.20 s for it" in html and "<code>vendor-api</code>" in html


def test_runjob_of_a_keyed_job_counts_against_its_key(make_endpoint, target):
    endpoint = make_endpoint(name="sync", url=target.url("/ok"), flow_key="vendor-api")
    log = services.run_in_foreground(endpoint, by="ada")
    assert (log.state, log.flow_key) == ("success", "vendor-api")


def test_a_key_on_the_limits_page_links_to_its_jobs(viewer, make_endpoint):
    saturate(make_endpoint, 2)
    make_endpoint(name="unrelated")
    html = login(viewer).get(reverse("dashboard:index"), {"q": "vendor-api"}).content.decode()
    assert "sync-0" in html and "sync-1" in html and "unrelated" not in html
