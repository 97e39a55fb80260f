"""The list, endpoint, run and form pages at a phone's width (390 px) and a laptop's (1280 px),
in a real browser: nothing wider than the screen, the menu folded on a phone, the name column in
view, a long description kept inside its card. Screenshots of each go to docs/ with

    UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/test_mobile_layout.py
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from endpoints.models import Endpoint
from runs.models import Log
from tests.test_dashboard_browser import (
    CHROMIUM,
    DOCS,
    browser,
    make_catalog,
    sign_in,
    user_in_role,
)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]
__all__ = ["browser"]  # the module-scoped fixture, shared

WIDTHS = {"phone": 390, "laptop": 1280}
LONG_WORD = "x" * 400
SCREENSHOTS = ("list", "endpoint", "run", "form")  # a description with no space to break at


def catalog() -> dict[str, str]:
    """The catalog of the dashboard's screenshots, plus the rows that broke the layout: a long
    description without spaces, a finished one-time job. Returns the four pages' paths."""
    endpoints = make_catalog()
    Endpoint.objects.create(
        name="import-" + "very-long-name-" * 3, url="https://imports.example.com/" + "a/" * 30,
        cron_expression="30 1 * * *", description="Imports " + LONG_WORD,
    )  # fmt: skip
    once = Endpoint.objects.create(
        name="launch-mail", url="https://mail.example.com/campaigns/launch", method="POST",
        schedule_type=Endpoint.ScheduleType.ONCE, cron_expression="",
        run_at=timezone.now() + timedelta(days=1),
    )  # fmt: skip
    Endpoint.objects.filter(pk=once.pk).update(
        enabled=False, disabled_reason="One-time run dispatched.", next_run_at=None,
        last_run_at=timezone.now(), last_status="success",
    )  # fmt: skip
    first = endpoints[0]
    log = Log.objects.filter(endpoint=first, state="success").order_by("-id").first()
    Log.objects.filter(pk=log.pk).update(
        created_at=log.scheduled_for,
        request={
            "method": "POST", "url": first.url, "body": '{"tenant": "acme", "dry": false}',
            "headers": {"Content-Type": "application/json", "Authorization": "••••••"},
        },
        response_headers={"Content-Type": "application/json"},
        response_excerpt='{"renewed": 12, "skipped": 0, "next_cursor": "' + "c" * 120 + '"}',
    )  # fmt: skip
    return {
        "list": "/",
        "endpoint": f"/endpoints/{first.pk}/",
        "run": f"/runs/{log.pk}/",
        "form": f"/endpoints/{first.pk}/edit/",
        "new": "/endpoints/new/",
        "status": "/status/",
        "tokens": "/tokens/",
        "backfill": f"/endpoints/{first.pk}/backfill/",
        "pause": f"/endpoints/{first.pk}/pause/",
    }


def overflow(page) -> int:
    """How many pixels the page is wider than its viewport (0 when nothing scrolls sideways)."""
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def wider_than_viewport(page) -> list[str]:
    """The elements that reach past the right edge, for a readable failure."""
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                         && getComputedStyle(e).position !== 'absolute'
                         && e.offsetParent !== null)
            .slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id)"""
    )


@pytest.mark.parametrize("device", WIDTHS)
def test_the_four_pages_fit_the_screen(browser, live_server, tmp_path, device):
    width = WIDTHS[device]
    _, password = user_in_role("ada", "Editor")
    pages = catalog()
    out = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    context = browser.new_context(
        viewport={"width": width, "height": 844 if device == "phone" else 900},
        device_scale_factor=1,
        is_mobile=device == "phone",
        has_touch=device == "phone",
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_in(page, live_server, "ada", password)
    expect(page.locator("#endpoint-table")).to_be_visible()
    try:
        for name, path in pages.items():
            page.goto(live_server.url + path)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (
                name, wider_than_viewport(page)
            )  # fmt: skip
            assert overflow(page) <= 0, (name, wider_than_viewport(page))
            if device == "phone":
                assert_menu_folds(page)
            if name in SCREENSHOTS:
                shot(page, out / f"screenshot-{name}-{width}.png", width)
    finally:
        context.close()


def shot(page, path, width: int) -> None:
    """The page from its top, up to a few screens (a phone's run table goes on for metres)."""
    viewport = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight")
    if os.environ.get("SCREENSHOT_WHOLE_PAGE") != "1":
        height = min(height, 2 * width + 1000)
    # As tall a viewport as the picture: a sticky bar sits at its bottom, not halfway down.
    page.set_viewport_size({"width": width, "height": height})
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)


def assert_menu_folds(page) -> None:
    expect(page.locator(".mainnav")).to_be_hidden()
    expect(page.locator(".usermenu")).to_be_hidden()
    toggle = page.locator("label.nav-toggle-label")
    expect(toggle).to_be_visible()
    box = page.locator("header.topbar").bounding_box()
    assert box["height"] < 70, box  # one line: brand and toggle
    toggle.click()
    expect(page.locator(".mainnav a:has-text('Status')")).to_be_visible()
    expect(page.locator("button:has-text('Log out')")).to_be_in_viewport()
    toggle.click()
    expect(page.locator(".mainnav")).to_be_hidden()


def test_the_name_column_stays_in_view_on_a_phone(browser, live_server):
    _, password = user_in_role("ada", "Editor")
    catalog()
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, live_server, "ada", password)
    names = page.locator("#endpoint-table td.name-cell a.name")
    expect(names.first).to_be_visible()
    for index in range(names.count()):
        box = names.nth(index).bounding_box()
        assert box["x"] >= 0 and box["x"] + min(box["width"], 100) <= 390, box
    # Each row is a card: the name first, the other cells under it, labelled.
    row = page.locator("#endpoint-table tbody tr").first
    assert (
        row.locator("td[data-label='Next run']").bounding_box()["y"]
        > (row.locator("td.name-cell").bounding_box()["y"])
    )
    expect(page.locator("#endpoint-table thead")).to_be_hidden()
    context.close()


def test_a_long_description_stays_inside_its_card_at_1280(browser, live_server):
    _, password = user_in_role("ada", "Editor")
    catalog()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live_server, "ada", password)
    card = page.locator("#endpoint-table")
    expect(card).to_be_visible()
    widths = card.evaluate("card => [card.scrollWidth, card.clientWidth]")
    assert widths[0] <= widths[1], widths
    assert overflow(page) <= 0
    context.close()


def test_the_pause_menu_and_its_error_fit_a_phone(browser, live_server):
    _, password = user_in_role("ada", "Editor")
    pages = catalog()
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, live_server, "ada", password)
    page.goto(live_server.url + pages["endpoint"])
    page.click("summary:has-text('Pause…')")
    page.fill("#pause-menu input[name=until]", "2020-01-01T09:00")
    page.click("#pause-menu button:has-text('Pause')")
    error = page.locator("#pause-until-errors")
    expect(error).to_contain_text("Choose a time in the future")
    box = page.locator("#pause-menu-form").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert overflow(page) <= 0
    context.close()
