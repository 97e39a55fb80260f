"""What surrounds the dashboard's pages: the favicon, the admin's titles and what it offers,
the API tokens page's markup under the CSP, and the charts' axis labels."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard import charts
from runs.models import Log
from tests.web_support import login

pytestmark = pytest.mark.django_db

# Any on…= attribute in markup: an inline handler, which `script-src 'self'` refuses to run.
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"


def test_every_page_links_an_icon(viewer):
    html = login(viewer).get(reverse("dashboard:index")).content.decode()
    assert '<link rel="icon"' in html


def test_the_admin_is_titled_cronplane_not_django(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Django administration" not in html and "Django site admin" not in html
    assert "cronplane administration" in html


def test_the_admin_offers_no_add_for_django_q_schedules(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_q_schedule_add") not in html
    assert admin_client.get(reverse("admin:django_q_schedule_add")).status_code == 403
    # The list stays: it shows the retention task qcluster schedules.
    assert admin_client.get(reverse("admin:django_q_schedule_changelist")).status_code == 200


def test_the_new_token_has_a_copy_button_and_no_inline_handler(viewer):
    client = login(viewer)
    client.post(reverse("dashboard:tokens"), {"name": "ci"})
    response = client.get(reverse("dashboard:tokens"))
    html = response.content.decode()
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert not INLINE_HANDLER.search(html), INLINE_HANDLER.search(html).group(0)
    assert 'data-copy="new-token-value"' in html and 'id="new-token-value"' in html


def test_no_template_has_an_inline_handler():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "templates"
    for path in root.rglob("*.html"):
        assert not INLINE_HANDLER.search(path.read_text()), path


@pytest.mark.parametrize(
    "peak, labels",
    [
        (5, ["2.5 ms", "5 ms"]),
        (4.2, ["2.5 ms", "5 ms"]),
        (0.8, ["0.4 ms", "0.8 ms"]),
        (15, ["7.5 ms", "15 ms"]),
        (1200, ["0.75 s", "1.5 s"]),
        (420, ["250 ms", "500 ms"]),
        (900, ["0.5 s", "1 s"]),
        (2600, ["1.5 s", "3 s"]),
    ],
)
def test_the_mid_gridline_is_half_the_top_in_the_same_unit(peak, labels):
    top = charts.axis_top(peak)
    assert top >= peak
    assert [label for _, label in charts.axis_gridlines(top)] == labels


def test_the_duration_chart_labels_its_gridlines_consistently(make_endpoint):
    endpoint = make_endpoint()
    now = timezone.now()
    logs = [
        Log.objects.create(
            endpoint=endpoint,
            state="success",
            duration_ms=ms,
            started_at=now - timedelta(s),
            finished_at=now,
        )  # fmt: skip
        for s, ms in enumerate((1, 3, 5))
    ]
    chart = charts.run_chart(logs)
    assert [label for _, label in chart.gridlines] == ["2.5 ms", "5 ms"]
    # The tallest bar reaches the top line: the bars are drawn on the labelled scale.
    assert min(bar.y for bar in chart.bars) <= 1
