"""In a real browser: the assertion rows' live check follows typing (htmx, under the page's
CSP), and the form and the replay page fit a phone's screen."""

from __future__ import annotations

import json
import os

import pytest

from endpoints.models import Endpoint
from runs.models import Log
from tests.test_dashboard_browser import CHROMIUM, browser, console_errors, sign_in, user_in_role
from tests.test_mobile_layout import overflow, wider_than_viewport

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]
__all__ = ["browser"]  # the module-scoped fixture, shared
BODY = json.dumps({"status": "running", "completedAt": None})


def answered_endpoint() -> Endpoint:
    """An endpoint whose last run got BODY (written directly: no network involved)."""
    endpoint = Endpoint.objects.create(
        name="export-status", url="https://api.example.com/exports/latest",
        cron_expression="*/10 * * * *",
        assertions=[{"source": "json", "property": "$.status", "comparison": "equals",
                     "target": "running"}],
    )  # fmt: skip
    Log.objects.create(
        endpoint=endpoint, state="failed", status_code=200, response_excerpt=BODY,
        response_headers={"content-type": "application/json"}, duration_ms=120,
        error_class="http_status",
    )  # fmt: skip
    return endpoint


def test_the_live_check_follows_the_rows_as_typed(browser, live_server):
    _, password = user_in_role("ada", "Editor")
    endpoint = answered_endpoint()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    errors = console_errors(page)
    sign_in(page, live_server, "ada", password)

    page.goto(f"{live_server.url}/endpoints/{endpoint.pk}/edit/")
    page.click("#advanced-settings > summary")
    check = page.locator("#assertion-check")
    expect(check).to_contain_text("1. ✓ holds")
    page.fill("input[name='assertions-0-target']", "completed")
    expect(check).to_contain_text('1. ✗ $.status is "running", expected equals "completed"')
    page.fill("input[name='assertions-1-property']", "$.completedAt")
    page.select_option("select[name='assertions-1-comparison']", "not_equals")
    page.fill("input[name='assertions-1-target']", "null")
    expect(check).to_contain_text("2. ✗ $.completedAt is null, expected not_equals")

    assert errors == []
    if os.environ.get("ASSERT_SCREENSHOTS"):
        shot = f"{os.environ['ASSERT_SCREENSHOTS']}/form-1280.png"
        page.locator("#field-assertions").screenshot(path=shot)
    page.close()


@pytest.mark.parametrize("path", ["form", "replay"])
def test_the_form_rows_and_the_replay_page_fit_a_phone(browser, live_server, path):
    _, password = user_in_role("ada", "Editor")
    endpoint = answered_endpoint()
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, live_server, "ada", password)
    url = f"/endpoints/{endpoint.pk}/edit/" if path == "form" else "/runs/replay/"

    page.goto(live_server.url + url)
    if path == "form":
        page.click("#advanced-settings > summary")
        expect(page.locator("#assertion-check")).to_contain_text("holds")
    else:
        expect(page.locator("#replay-preview")).to_contain_text("1 failed run, 1 endpoint")
    page.wait_for_load_state("networkidle")

    assert overflow(page) <= 0, wider_than_viewport(page)
    if os.environ.get("ASSERT_SCREENSHOTS"):  # to look at while working on the layout
        shown = page.locator("#field-assertions") if path == "form" else page
        shown.screenshot(path=f"{os.environ['ASSERT_SCREENSHOTS']}/{path}-390.png")
    context.close()
