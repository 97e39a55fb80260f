"""The dashboard's replay page: a preview of the failed runs chosen (nothing written), then one
POST that replays them, each once."""

from __future__ import annotations

from django.urls import reverse

from endpoints.models import Endpoint
from runs.models import Log
from tests.test_replay import calls_to, fixed_failures, run_replays
from tests.web_support import login

URL = reverse("dashboard:runs_replay")
__all__ = ["fixed_failures"]  # the fixture, shared


def test_the_page_previews_every_failed_run_and_writes_nothing(operator, fixed_failures):
    logs = Log.objects.count()

    page = login(operator).get(URL)

    assert page.status_code == 200
    assert "4 failed runs, 2 endpoints" in page.content.decode()
    assert "Replay 4 runs" in page.content.decode()
    assert "They failed between " in page.content.decode()
    assert Log.objects.count() == logs


def test_a_selection_narrows_the_preview(operator, fixed_failures):
    page = login(operator).get(URL, {"endpoints": "billing", "error_class": ["http_status"]})

    assert "2 failed runs, 1 endpoint" in page.content.decode()


def test_replaying_runs_each_selected_run_once_and_says_so(operator, fixed_failures, target):
    client = login(operator)

    done = client.post(URL, {"endpoints": "billing"}, follow=True)
    run_replays()
    again = client.post(URL, {"endpoints": "billing"}, follow=True)
    run_replays()

    assert "Replaying 2 failed runs" in done.content.decode()
    assert "Replaying 0 failed runs" in again.content.decode()
    assert "No failed run matches" in again.content.decode()
    assert calls_to(target, "/ok") == 2


def test_bad_input_is_shown_inline_and_nothing_is_replayed(operator, fixed_failures):
    page = login(operator).post(
        URL, {"endpoints": "nope", "start": "2026-12-02T10:00", "end": "2026-12-01T10:00"}
    )

    assert page.status_code == 200
    assert "No endpoint named &#x27;nope&#x27;." in page.content.decode()
    assert not Log.objects.filter(trigger=Log.Trigger.REPLAY).exists()


def test_a_reversed_range_is_an_inline_error(operator, fixed_failures):
    page = login(operator).get(URL, {"start": "2026-12-02T10:00", "end": "2026-12-01T10:00"})

    assert "The end of the range must be after its start." in page.content.decode()
    assert "failed runs," not in page.content.decode()


def test_a_viewer_may_not_replay(viewer, fixed_failures):
    assert login(viewer).get(URL).status_code == 403
    assert login(viewer).post(URL, {}).status_code == 403
    assert not Log.objects.filter(trigger=Log.Trigger.REPLAY).exists()


def test_the_endpoint_page_links_to_its_replay(operator, fixed_failures):
    endpoint = Endpoint.objects.get(name="billing")

    page = login(operator).get(reverse("dashboard:endpoint", args=[endpoint.pk]))

    assert f"{URL}?endpoints=billing" in page.content.decode()


def test_a_replayed_run_is_labelled_on_its_page_and_in_the_run_table(operator, fixed_failures):
    client = login(operator)
    client.post(URL, {"endpoints": "billing"})
    replayed = Log.objects.filter(trigger=Log.Trigger.REPLAY).first()

    run_page = client.get(reverse("dashboard:log", args=[replayed.pk])).content.decode()
    endpoint_page = client.get(reverse("dashboard:endpoint", args=[replayed.endpoint_id]))

    assert '<span class="badge badge-dry">replay</span>' in run_page
    assert '<span class="badge badge-dry">replay</span>' in endpoint_page.content.decode()
