"""The pause menu on the endpoint page: errors inline in the menu (htmx), the flash in plain
words, and the endpoint form's advanced settings folded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from endpoints.models import Endpoint
from tests.web_support import login

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def hourly(make_endpoint) -> Endpoint:
    return make_endpoint(name="ping-target", cron_expression="0 * * * *", timezone="Asia/Tokyo")


def pause_url(endpoint: Endpoint) -> str:
    return reverse("dashboard:endpoint_pause", args=[endpoint.pk])


def test_a_past_resume_time_is_an_error_inside_the_menu_not_another_page(operator, hourly):
    response = login(operator).post(
        pause_url(hourly), {"reason": "oops", "until": "2026-11-01T09:00"}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    # The menu's form alone, to swap in place of itself: no page around it.
    assert html.lstrip().startswith('<form method="post"') and "<html" not in html
    assert 'id="pause-menu-form"' in html and 'id="pause-until-errors"' in html
    assert "Choose a time in the future" in html and "2026-11-02 21:00 JST now" in html
    assert 'value="oops"' in html and 'value="2026-11-01T09:00"' in html
    hourly.refresh_from_db()
    assert hourly.enabled


def test_the_endpoint_page_menu_posts_through_htmx_and_falls_back_to_a_plain_post(operator, hourly):
    page = login(operator).get(reverse("dashboard:endpoint", args=[hourly.pk])).content.decode()
    menu = page[page.index('id="pause-menu"') :].split("</details>")[0]
    assert f'hx-post="{pause_url(hourly)}"' in menu and 'hx-target="this"' in menu
    assert f'action="{pause_url(hourly)}"' in menu


def test_a_pause_through_the_menu_reloads_the_endpoint_page_with_the_news(operator, hourly):
    client = login(operator)
    response = client.post(
        pause_url(hourly), {"reason": "maintenance", "until": "2026-11-03T09:00"}, **HTMX
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("dashboard:endpoint", args=[hourly.pk])
    page = client.get(response["HX-Redirect"]).content.decode()
    assert "Paused ping-target until 2026-11-03 09:00:00 JST: it resumes by itself then." in page


def test_the_flash_of_a_pause_reads_as_a_sentence(operator, hourly):
    response = login(operator).post(pause_url(hourly), {"reason": "x"}, follow=True)
    page = response.content.decode()
    assert "Paused ping-target: no scheduled runs until someone resumes it." in page
    assert "no scheduled runs it resumes" not in page


def test_the_form_folds_advanced_settings_under_a_summary(editor):
    page = login(editor).get(reverse("dashboard:endpoint_create")).content.decode()
    advanced = page[page.index('id="advanced-settings"') :].split("</details>\n\n")[0]
    assert advanced.startswith('id="advanced-settings">')  # closed
    for name in ("max_attempts", "overlap_policy", "signing_secret", "notify_emails"):
        assert f'name="{name}"' in advanced
        assert page.count(f'name="{name}"') == 1
    basic = page[: page.index('id="advanced-settings"')]
    for name in ("name", "url", "cron_expression", "timezone"):
        assert f'name="{name}"' in basic


def test_an_error_in_an_advanced_setting_opens_them(editor):
    from tests.test_dashboard_forms import form_data

    data = form_data(name="bad-retries", max_attempts="0")
    page = login(editor).post(reverse("dashboard:endpoint_create"), data).content.decode()
    assert 'id="advanced-settings" open>' in page


def test_the_test_request_result_is_marked_to_come_into_view(editor):
    page = login(editor).get(reverse("dashboard:endpoint_create")).content.decode()
    assert '<div id="test-result" aria-live="polite" data-scroll-into-view>' in page
    # Without JavaScript the answer to the POST opens at the result.
    assert 'formaction="/endpoints/new/#test-result"' in page
