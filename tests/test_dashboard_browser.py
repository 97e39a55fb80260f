"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright).

One journey: sign in, create an endpoint through the form while the cron preview follows the
typing, run it for real against a loopback target (a real `qcluster` executes it), open the run,
pause the endpoint, sign out. And the screenshots in docs/, refreshed with

    UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/test_dashboard_browser.py -k screenshots
"""

from __future__ import annotations

import importlib
import os
import random
import re
import signal
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from calls import signing
from endpoints.models import Endpoint
from runs.models import Heartbeat, Log
from tests.processes import start_manage

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs"
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    # Playwright's sync API keeps an event loop running in this thread; the ORM calls the tests
    # make between browser steps are plain synchronous code all the same.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def user_in_role(username: str, role: str) -> tuple[User, str]:
    """A user in one of the roles. Transactional tests flush the data migration's groups, so
    the group is made again here from the migration's own list when it is missing."""
    roles = importlib.import_module("runs.migrations.0002_roles").ROLES
    group, created = Group.objects.get_or_create(name=role)
    if created:
        for code in roles[role]:
            app_label, codename = code.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    password = f"pw-{username}-browser-1!"
    user = User.objects.create_user(username, password=password)
    user.groups.add(group)
    return user, password


def sign_in(page, live_server, username: str, password: str) -> None:
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button:has-text('Sign in')")


@pytest.fixture
def cluster() -> Iterator[subprocess.Popen]:
    """A real worker (django-q2 cluster + dispatcher) on the test database.

    Tasks are signed with SECRET_KEY: the worker must share the web process's key.
    """
    process = start_manage("qcluster", WORKERS="1", SECRET_KEY=settings.SECRET_KEY)
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def test_sign_in_create_run_inspect_pause_and_sign_out(page, live_server, target, cluster):
    _, password = user_in_role("edith-browser", "Editor")
    sign_in(page, live_server, "edith-browser", password)

    # A new install: the empty state leads to the form.
    expect(page.get_by_text("No endpoints yet")).to_be_visible()
    page.click("text=Create your first endpoint")
    expect(page.locator("h1")).to_have_text("New endpoint")

    page.fill("#id_name", "browser-ping")
    page.fill("#id_url", target.url("/ok"))
    page.select_option("#id_method", "GET")
    preview = page.locator("#schedule-preview-text")
    expect(preview).to_contain_text("Type a cron expression")
    page.locator("#id_cron_expression").press_sequentially("*/5 * * * *", delay=15)
    expect(preview).to_contain_text("Every 5 minutes")
    page.fill("#id_cron_expression", "")
    page.locator("#id_cron_expression").press_sequentially("0 9 * * MON-FRI", delay=15)
    expect(preview).to_contain_text("At 09:00, Monday through Friday")
    page.fill("#id_timezone", "Asia/Tokyo")
    expect(preview).to_contain_text("(Asia/Tokyo)")
    expect(page.locator("#schedule-preview-runs li")).to_have_count(5)
    expect(page.locator("#schedule-preview-runs li").first).to_contain_text("09:00:00 JST")

    # "Test request" shows what would be sent, sends nothing, saves nothing.
    page.click("button:has-text('Test request')")
    expect(page.locator("#test-result")).to_contain_text(f"GET {target.url('/ok')}")
    assert target.received == [] and not Endpoint.objects.exists()

    page.click("button:has-text('Create endpoint')")
    expect(page.locator("h1")).to_contain_text("browser-ping")
    expect(page.locator(".messages")).to_contain_text("Created browser-ping")
    endpoint = Endpoint.objects.get(name="browser-ping")
    assert endpoint.timezone == "Asia/Tokyo" and endpoint.cron_expression == "0 9 * * MON-FRI"

    # Run now: queued on the cluster, executed by the worker, seen by the target, and the
    # run table (polled by htmx) shows the finished run without a reload.
    page.click("button:has-text('Run now')")
    expect(page.locator(".messages")).to_contain_text("queued")
    row = page.locator("#log-table tbody tr").first
    expect(row.locator(".badge-success")).to_be_visible(timeout=40_000)
    assert [(r.method, r.path) for r in target.received] == [("GET", "/ok")]
    log = Log.objects.get(endpoint=endpoint)
    assert log.state == "success" and log.triggered_by == "edith-browser"

    row.locator(f"a:has-text('{log.run_id}')").click()
    expect(page.locator("h1")).to_contain_text(log.run_id)
    expect(page.locator(".status-line")).to_contain_text("HTTP 200")
    expect(page.locator("pre.body")).to_contain_text('"ok": true')
    expect(page.locator(".request-preview")).to_contain_text(f"GET {target.url('/ok')}")

    # Pause with a reason, until a time on the endpoint's clock (Tokyo): the banner says so.
    page.click("nav.crumbs >> text=browser-ping")
    page.click("summary:has-text('Pause…')")
    expect(page.locator("#pause-menu")).to_contain_text("On the Asia/Tokyo clock")
    until = (timezone.now() + timedelta(days=2)).astimezone(ZoneInfo("Asia/Tokyo"))
    page.fill("#pause-menu input[name=reason]", "vendor maintenance")
    page.fill("#pause-menu input[name=until]", f"{until:%Y-%m-%dT%H:%M}")
    page.click("#pause-menu button:has-text('Pause')")
    expect(page.locator(".messages")).to_contain_text("Paused browser-ping")
    expect(page.locator("h1 .badge-paused")).to_be_visible()
    expect(page.locator("#pause-banner")).to_contain_text(
        f"Paused until {until:%Y-%m-%d %H:%M} JST by edith-browser: vendor maintenance"
    )
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "vendor maintenance"
    assert endpoint.paused_until == until.replace(second=0, microsecond=0)

    page.click("button:has-text('Log out')")
    expect(page.get_by_text("You are signed out")).to_be_visible()
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_screenshots_of_the_list_form_and_endpoint_page(page, live_server, tmp_path):
    """Renders a small catalog with history; writes docs/*.png when UPDATE_SCREENSHOTS=1."""
    _, password = user_in_role("ada", "Editor")
    endpoints = make_catalog()
    out = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(exist_ok=True)
    sign_in(page, live_server, "ada", password)

    expect(page.locator("#endpoint-table svg.outcomes").first).to_be_visible()
    assert page.locator("#endpoint-table tbody tr").count() == len(endpoints)
    page.screenshot(path=str(out / "screenshot.png"))

    page.goto(f"{live_server.url}/endpoints/{endpoints[0].pk}/")
    expect(page.locator(".phase-chart")).to_be_visible()
    page.screenshot(path=str(out / "screenshot-endpoint.png"), full_page=True)

    page.goto(f"{live_server.url}/endpoints/{endpoints[0].pk}/edit/")
    expect(page.locator("#schedule-preview-runs li")).to_have_count(5)
    # The whole form in one viewport, so that the sticky action bar sits where it belongs.
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1360, "height": height})
    page.screenshot(path=str(out / "screenshot-form.png"))
    assert (out / "screenshot.png").stat().st_size > 10_000


def make_catalog() -> list[Endpoint]:
    """A few endpoints with a plausible history (written directly: no network involved)."""
    now = timezone.now()
    specs = [
        ("billing-renewals", "POST", "https://billing.example.com/renewals/run", "0 6 * * MON-FRI",
         "Europe/Paris", 0.04, 420),
        ("cache-warmup", "GET", "https://www.example.com/warm", "*/10 * * * *", "UTC", 0.0, 90),
        ("crm-sync", "POST", "https://crm.example.com/api/sync", "*/15 * * * *",
         "America/New_York", 0.3, 1800),
        ("nightly-report", "POST", "https://reports.example.com/nightly", "0 2 * * *",
         "Europe/Berlin", 0.02, 2600),
        ("token-refresh", "POST", "https://auth.example.com/oauth/refresh", "0 */6 * * *", "UTC",
         0.0, 150),
    ]  # fmt: skip
    endpoints = []
    for index, (name, method, url, cron, zone, failure_rate, base_ms) in enumerate(specs):
        endpoint = Endpoint.objects.create(
            name=name, method=method, url=url, cron_expression=cron, timezone=zone,
            description=f"{name.replace('-', ' ').capitalize()} for the production tenant",
        )  # fmt: skip
        logs = []
        noise = random.Random(index)
        for i in range(50):
            failed = noise.random() < failure_rate
            started = now - timedelta(minutes=15 * (50 - i))
            spike = 2.5 if noise.random() < 0.06 else 1.0
            duration = int(base_ms * spike * noise.uniform(0.85, 1.2))
            fresh = i % 5 == 0  # a new connection now and then; kept alive in between
            setup = [round(noise.uniform(2, 9), 1) if fresh else None for _ in range(3)]
            timing = {
                "dns_ms": setup[0], "connect_ms": setup[1], "tls_ms": setup[2],
                "ttfb_ms": round(duration * 0.9 - sum(x or 0 for x in setup), 1),
                "total_ms": duration, "reused": not fresh, "requests": 1,
                "connections": int(fresh),
            }  # fmt: skip
            logs.append(
                Log(
                    endpoint=endpoint,
                    trigger="schedule",
                    scheduled_for=started,
                    started_at=started + timedelta(milliseconds=40),
                    finished_at=started,
                    state="failed" if failed else "success",
                    duration_ms=duration,
                    timing=timing,
                    status_code=503 if failed else 200,
                    error_class="http_status" if failed else "",
                    error_message="HTTP 503; expected 200-299" if failed else "",
                )  # fmt: skip
            )
        Log.objects.bulk_create(logs)
        last = logs[-1]
        Endpoint.objects.filter(pk=endpoint.pk).update(
            last_run_at=last.started_at, last_status=last.state, run_count=len(logs),
            success_count=sum(log.state == "success" for log in logs),
            failure_count=sum(log.state == "failed" for log in logs),
        )  # fmt: skip
        endpoints.append(endpoint)
    Endpoint.objects.filter(pk=endpoints[0].pk).update(
        signing_secret=signing.new_secret(), tls_expires_at=now + timedelta(days=61)
    )
    endpoints[3].pause(
        now=now, by="ada", reason="vendor maintenance", until=now + timedelta(days=3)
    )
    Heartbeat.objects.create(
        name="worker-1:4242", host="worker-1", pid=4242, started_at=now, last_seen_at=now
    )
    return endpoints


def console_errors(page) -> list[str]:
    """Every console error the page logs from now on (a CSP refusal is one, so is htmx's
    `htmx:sendAbort`)."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_the_tokens_page_keeps_its_csp_and_copies_the_new_token(browser, live_server):
    _, password = user_in_role("tom-browser", "Viewer")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    errors = console_errors(page)
    sign_in(page, live_server, "tom-browser", password)
    page.goto(live_server.url + "/tokens/")
    page.fill("#id_name", "ci")
    page.click("button:has-text('Create token')")
    token = page.locator("#new-token-value").input_value()
    page.click("button[data-copy]")
    expect(page.locator("button[data-copy]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    page.focus("#new-token-value")
    assert page.evaluate("document.activeElement.selectionEnd") == len(token)
    assert errors == []
    context.close()


def test_typing_in_the_form_logs_no_htmx_errors(page, live_server):
    _, password = user_in_role("eve-browser", "Editor")
    errors = console_errors(page)
    sign_in(page, live_server, "eve-browser", password)
    page.goto(live_server.url + "/endpoints/new/")
    # A slow server: each preview request is held until the next key has been typed, so that
    # a new request starts while the last one is still in flight.
    held: list = []

    def hold(route) -> None:
        held.append(route)

    page.route("**/endpoints/schedule-preview/**", hold)
    page.locator("#id_cron_expression").press_sequentially("*/15 * * * *", delay=400)
    page.unroute("**/endpoints/schedule-preview/**", hold)
    for _ in range(20):
        while held:
            try:
                held.pop(0).continue_()
            except sync_api.Error:  # aborted by the browser meanwhile
                pass
        page.wait_for_timeout(150)
    expect(page.locator("#schedule-preview-text")).to_contain_text("Every 15 minutes")
    assert errors == []


def in_viewport(page, selector: str) -> bool:
    return page.evaluate(
        """(selector) => { const box = document.querySelector(selector).getBoundingClientRect();
             return box.top >= 0 && box.top < window.innerHeight; }""",
        selector,
    )


def test_the_test_request_result_comes_into_view(page, live_server):
    _, password = user_in_role("tess-browser", "Editor")
    sign_in(page, live_server, "tess-browser", password)
    page.goto(live_server.url + "/endpoints/new/")
    page.fill("#id_name", "viewed")
    page.fill("#id_url", "https://example.com/hook")
    page.fill("#id_cron_expression", "0 9 * * *")
    page.click("button:has-text('Test request')")
    expect(page.locator("#test-result")).to_contain_text("GET https://example.com/hook")
    # Scrolled smoothly: wait for the scroll to end with the result's heading on screen.
    expect(page.locator("#test-result h2")).to_be_in_viewport()
    page.wait_for_function("() => new Promise(r => requestAnimationFrame(() => r(true)))")
    expect(page.locator("#test-result h2")).to_be_in_viewport()
    assert in_viewport(page, "#test-result h2")


def test_a_past_resume_time_is_an_error_in_the_pause_menu(page, live_server):
    _, password = user_in_role("pia-browser", "Operator")
    endpoint = Endpoint.objects.create(
        name="menu-ping", url="https://example.com/ok", cron_expression="0 * * * *",
        timezone="Asia/Tokyo",
    )  # fmt: skip
    sign_in(page, live_server, "pia-browser", password)
    page.goto(f"{live_server.url}/endpoints/{endpoint.pk}/")
    page.click("summary:has-text('Pause…')")
    page.fill("#pause-menu input[name=reason]", "oops")
    page.fill("#pause-menu input[name=until]", "2020-01-01T09:00")
    page.click("#pause-menu button:has-text('Pause')")
    errors = page.locator("#pause-menu #pause-until-errors")
    expect(errors).to_contain_text("Choose a time in the future")
    expect(errors).to_contain_text("JST now on the Asia/Tokyo clock")
    # Still the endpoint page, the menu open, what was typed kept.
    assert page.url == f"{live_server.url}/endpoints/{endpoint.pk}/"
    assert page.locator("#pause-menu").get_attribute("open") is not None
    expect(page.locator("#pause-menu input[name=reason]")).to_have_value("oops")
    endpoint.refresh_from_db()
    assert endpoint.enabled
    # Corrected in place, it pauses; the page reloads with the news.
    until = (timezone.now() + timedelta(days=1)).astimezone(ZoneInfo("Asia/Tokyo"))
    page.fill("#pause-menu input[name=until]", f"{until:%Y-%m-%dT%H:%M}")
    page.click("#pause-menu button:has-text('Pause')")
    expect(page.locator(".messages")).to_contain_text(
        f"Paused menu-ping until {until:%Y-%m-%d %H:%M}:00 JST: it resumes by itself then."
    )
