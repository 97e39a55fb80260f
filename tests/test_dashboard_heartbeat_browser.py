"""A heartbeat in a real browser: the form shows only what a heartbeat takes; after a real ping
its page and the list say when it last pinged."""

from __future__ import annotations

import os
import urllib.request

import pytest
from django.core.cache import cache

from endpoints.models import Endpoint
from tests.test_dashboard_browser import CHROMIUM, browser, expect, page, sign_in, user_in_role

__all__ = ["browser", "page"]  # fixtures, imported to be used here

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]


def test_an_editor_makes_a_heartbeat_and_sees_its_ping(page, live_server):
    cache.clear()
    _, password = user_in_role("edith-heartbeat", "Editor")
    sign_in(page, live_server, "edith-heartbeat", password)
    page.goto(live_server.url + "/endpoints/new/")
    expect(page.locator("#id_url")).to_be_visible()
    page.get_by_label("Heartbeat (pinged from elsewhere)").check()
    # What a heartbeat does not take is hidden; its grace appears (CSS only, no script).
    expect(page.locator("#id_url")).to_be_hidden()
    expect(page.locator("#id_handler")).to_be_hidden()
    expect(page.locator("#id_grace_seconds")).to_be_visible()
    expect(page.get_by_role("button", name="Test request")).to_be_hidden()

    page.fill("#id_name", "db-backup")
    page.fill("#id_cron_expression", "30 2 * * *")
    page.fill("#id_grace_seconds", "900")
    page.click("button:has-text('Create endpoint')")
    backup = Endpoint.objects.get(name="db-backup")
    ping_url = page.locator("#ping-url")
    expect(ping_url).to_have_text(f"http://127.0.0.1:8000/ping/{backup.uuid}")
    expect(page.locator("#heartbeat-state")).to_contain_text("never pinged")
    expect(page.get_by_role("button", name="Run now")).to_have_count(0)

    with urllib.request.urlopen(f"{live_server.url}/ping/{backup.uuid}/log", timeout=10) as ok:
        assert ok.read() == b"OK"
    page.reload()
    expect(page.locator("#heartbeat-state")).to_contain_text("last ping")
    page.goto(live_server.url + "/")
    expect(page.locator(f"#endpoint-{backup.pk}")).to_contain_text("last ping")
    expect(page.locator(f"#endpoint-{backup.pk}")).to_contain_text("ping expected")
