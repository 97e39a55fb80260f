"""The endpoint page in a real browser: its notification channels, the test button, its
change history."""

import os

import pytest
from playwright.sync_api import expect

from endpoints.models import Endpoint
from tests.test_dashboard_browser import CHROMIUM, browser, page, sign_in, user_in_role  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]


def test_an_editor_tests_the_channels_and_reads_the_history(page, live_server, target):  # noqa: F811
    user, password = user_in_role("edith-browser", "Editor")
    sign_in(page, live_server, "edith-browser", password)
    page.goto(live_server.url + "/endpoints/new/")
    page.fill("#id_name", "nightly-sync")
    page.fill("#id_url", target.url("/ok"))
    page.fill("#id_cron_expression", "0 2 * * *")
    page.click("summary:has-text('Advanced settings')")
    page.fill("#id_notify_urls", f"json://127.0.0.1:{target.port}/hook\nnope://x")
    page.click("button.primary[type=submit]")
    expect(page.get_by_text("is not a notification service Apprise knows")).to_be_visible()

    page.fill("#id_notify_urls", f"json://127.0.0.1:{target.port}/hook")
    page.fill("#id_notify_after_failures", "3")
    page.click("button.primary[type=submit]")
    endpoint = Endpoint.objects.get(name="nightly-sync")
    expect(page).to_have_url(f"{live_server.url}/endpoints/{endpoint.pk}/")
    expect(page.locator("#notification-channels")).to_contain_text("3 failed runs in a row")

    page.click("#test-notification")
    expect(page.locator(".messages")).to_contain_text("Test notification sent")
    assert [r.json()["title"] for r in target.received if r.path == "/hook"] == [
        "[cronplane] test notification for nightly-sync"
    ]
    expect(page.locator("#notifications")).to_contain_text("Test notification")
    expect(page.locator("#notifications")).to_contain_text("sent")
    history = page.locator("#history")
    history.scroll_into_view_if_needed()
    expect(history).to_contain_text("edith-browser (dashboard)")
    expect(history).to_contain_text("created it")
    page.click("#history summary")
    expect(history).to_contain_text("nightly-sync")
    expect(history).not_to_contain_text("a secret value changed")  # empty secrets stay out
    page.screenshot(path="/tmp/notify-endpoint-page.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path="/tmp/notify-endpoint-page-390.png", full_page=True)
