"""Dashboard pages: who may see them, what they show, and that list pages cost a fixed number of
queries however many rows they show."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from endpoints.models import Endpoint
from runs.models import Heartbeat, Log
from tests.web_support import login

pytestmark = pytest.mark.django_db

INDEX = reverse("dashboard:index")


def add_log(endpoint: Endpoint, **fields) -> Log:
    now = timezone.now()
    values = {
        "endpoint": endpoint,
        "state": Log.State.SUCCESS,
        "started_at": now,
        "finished_at": now,
        "duration_ms": 100,
        "status_code": 200,
    }
    values.update(fields)
    return Log.objects.create(**values)


def page_urls(endpoint: Endpoint, log: Log) -> list[str]:
    return [
        INDEX,
        reverse("dashboard:endpoint", args=[endpoint.pk]),
        reverse("dashboard:log", args=[log.pk]),
        reverse("dashboard:status"),
    ]


# --- who may see what ------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_page(client, make_endpoint):
    endpoint = make_endpoint()
    log = add_log(endpoint)
    urls = page_urls(endpoint, log) + [
        reverse("dashboard:endpoint_create"),
        reverse("dashboard:endpoint_edit", args=[endpoint.pk]),
        reverse("dashboard:endpoint_delete", args=[endpoint.pk]),
        reverse("dashboard:schedule_preview"),
        reverse("dashboard:tokens"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"/accounts/login/?next={url[:10]}"), url


def test_a_user_in_no_group_gets_403_on_the_endpoint_and_run_pages(outsider, make_endpoint):
    endpoint = make_endpoint()
    log = add_log(endpoint)
    client = login(outsider)
    for url in page_urls(endpoint, log):
        assert client.get(url).status_code == 403, url
    # Their own API tokens are theirs to manage.
    assert client.get(reverse("dashboard:tokens")).status_code == 200


def test_every_page_renders_for_every_role(viewer, operator, editor, make_endpoint):
    endpoint = make_endpoint()
    log = add_log(endpoint, state=Log.State.FAILED, error_class="http_status")
    for user in (viewer, operator, editor):
        client = login(user)
        for url in page_urls(endpoint, log) + [reverse("dashboard:tokens")]:
            response = client.get(url)
            assert response.status_code == 200, (user, url)
            assert b"<html" in response.content


def test_a_viewer_sees_no_button_that_changes_anything(viewer, make_endpoint):
    endpoint = make_endpoint()
    log = add_log(endpoint, state=Log.State.FAILED)
    client = login(viewer)
    for url in page_urls(endpoint, log):
        html = client.get(url).content.decode()
        for action in ("/run/", "/pause/", "/resume/", "/edit/", "/delete/", "/retry/", "/new/"):
            assert action not in html, (url, action)


def test_an_operator_may_run_pause_and_retry_but_not_edit(operator, make_endpoint):
    endpoint = make_endpoint()
    log = add_log(endpoint, state=Log.State.FAILED)
    client = login(operator)
    listing = client.get(INDEX).content.decode()
    assert f"/endpoints/{endpoint.pk}/run/" in listing
    assert f"/endpoints/{endpoint.pk}/pause/" in listing
    assert "/endpoints/new/" not in listing
    detail = client.get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()
    assert 'name="dry_run"' in detail
    assert "/edit/" not in detail and "/delete/" not in detail
    assert (
        f"/runs/{log.pk}/retry/"
        in client.get(reverse("dashboard:log", args=[log.pk])).content.decode()
    )


def test_an_editor_sees_create_edit_and_delete(editor, make_endpoint):
    endpoint = make_endpoint()
    client = login(editor)
    assert "/endpoints/new/" in client.get(INDEX).content.decode()
    detail = client.get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()
    assert f"/endpoints/{endpoint.pk}/edit/" in detail
    assert f"/endpoints/{endpoint.pk}/delete/" in detail


def test_a_missing_endpoint_or_run_is_a_404(viewer):
    client = login(viewer)
    assert client.get(reverse("dashboard:endpoint", args=[999])).status_code == 404
    assert client.get(reverse("dashboard:log", args=[999])).status_code == 404


# --- the endpoint list -----------------------------------------------------------------------


def test_a_new_install_shows_the_way_to_the_first_endpoint(editor, viewer):
    html = login(editor).get(INDEX).content.decode()
    assert "No endpoints yet" in html
    assert "Create your first endpoint" in html
    assert reverse("dashboard:endpoint_create") in html
    viewer_html = login(viewer).get(INDEX).content.decode()
    assert "No endpoints yet" in viewer_html
    assert "ask an Editor" in viewer_html


def test_the_list_shows_target_schedule_next_run_and_last_status(viewer, make_endpoint):
    make_endpoint(
        name="nightly-report",
        url="http://127.0.0.1:8080/reports?x=1",
        method="POST",
        cron_expression="0 9 * * MON-FRI",
        timezone="Europe/Paris",
        description="Builds the nightly report",
    )
    html = login(viewer).get(INDEX).content.decode()
    assert "nightly-report" in html
    assert "Builds the nightly report" in html
    assert ">POST<" in html and "127.0.0.1:8080" in html
    assert "At 09:00, Monday through Friday" in html
    assert "Europe/Paris" in html
    assert "never ran" in html
    # Relative next run, with the absolute time (in the endpoint's zone) on hover.
    assert "in " in html and ("CET" in html or "CEST" in html)


def test_the_list_filters_by_state_status_kind_and_search(viewer, make_endpoint):
    make_endpoint(name="alpha", url="http://127.0.0.1:1/alpha-path")
    paused = make_endpoint(name="bravo")
    paused.set_enabled(False, now=timezone.now())
    failing = make_endpoint(name="charlie")
    Endpoint.objects.filter(pk=failing.pk).update(last_status="failed")
    make_endpoint(name="delta", kind="handler", handler="webhook:send", url="")
    client = login(viewer)

    def names(**params) -> set[str]:
        response = client.get(INDEX, params)
        return {endpoint.name for endpoint in response.context["endpoints"]}

    assert names() == {"alpha", "bravo", "charlie", "delta"}
    assert names(enabled="no") == {"bravo"}
    assert names(enabled="yes") == {"alpha", "charlie", "delta"}
    assert names(status="failed") == {"charlie"}
    assert names(status="never") == {"alpha", "bravo", "delta"}
    assert names(kind="handler") == {"delta"}
    assert names(q="alpha-path") == {"alpha"}
    assert names(q="WEBHOOK") == {"delta"}
    html = client.get(INDEX, {"q": "nothing-like-this"}).content.decode()
    assert "No endpoint matches these filters" in html


def test_the_list_is_paginated_and_page_links_keep_the_filters(viewer, make_endpoint):
    for i in range(30):
        make_endpoint(name=f"job-{i:02d}")
    client = login(viewer)
    first = client.get(INDEX, {"q": "job"})
    assert len(first.context["endpoints"]) == 25
    html = first.content.decode()
    assert "Page 1 of 2" in html
    assert "?q=job&amp;page=2" in html
    second = client.get(INDEX, {"q": "job", "page": 2})
    assert [e.name for e in second.context["endpoints"]] == [f"job-{i}" for i in range(25, 30)]
    # A page out of range shows the last page instead of an error.
    assert client.get(INDEX, {"page": 99}).context["page"].number == 2


def test_sparklines_show_the_last_50_executed_runs(viewer, make_endpoint):
    endpoint = make_endpoint()
    for i in range(60):
        add_log(endpoint, state="failed" if i % 10 == 0 else "success", duration_ms=10 + i)
    add_log(endpoint, state="skipped", duration_ms=None)
    add_log(endpoint, state="success", dry_run=True, duration_ms=1)
    response = login(viewer).get(INDEX)
    spark = response.context["endpoints"][0].sparkline
    assert spark.runs == 50
    assert spark.success_rate == 90  # 5 of the last 50 failed; skipped and dry runs left out
    assert spark.max_ms == 69
    html = response.content.decode()
    assert html.count('class="s-failed"') == 5
    assert html.count('class="s-success"') == 45
    assert "<polyline" in html and "90%" in html


def test_htmx_polling_gets_only_the_table(viewer, make_endpoint):
    make_endpoint()
    response = login(viewer).get(INDEX, {"q": "ping"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="endpoint-table"')
    assert 'hx-trigger="every 10s"' in html
    assert "HX-Request" in response["Vary"]


def _list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(INDEX).status_code == 200
    return len(queries)


def test_the_list_costs_the_same_queries_for_3_or_25_endpoints(
    viewer, make_endpoint, django_assert_max_num_queries
):
    client = login(viewer)
    for i in range(3):
        add_log(make_endpoint(name=f"few-{i}"), duration_ms=5)
    client.get(INDEX)  # warm the session
    few = _list_queries(client)
    for i in range(22):
        endpoint = make_endpoint(name=f"many-{i}")
        for _ in range(3):
            add_log(endpoint)
    many = _list_queries(client)
    assert many == few
    with django_assert_max_num_queries(10):
        client.get(INDEX)
    with django_assert_max_num_queries(9):
        client.get(INDEX, HTTP_HX_REQUEST="true")


def test_the_endpoint_page_costs_the_same_queries_for_few_or_many_runs(
    viewer, make_endpoint, django_assert_max_num_queries
):
    endpoint = make_endpoint()
    url = reverse("dashboard:endpoint", args=[endpoint.pk])
    client = login(viewer)
    add_log(endpoint)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for i in range(40):
        add_log(endpoint, state="failed" if i % 3 else "success")
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)
    with django_assert_max_num_queries(13):  # 13: one reads its chain links
        client.get(url)


# --- the endpoint page -----------------------------------------------------------------------


def test_the_endpoint_page_shows_settings_next_runs_chart_and_runs(viewer, make_endpoint):
    endpoint = make_endpoint(
        name="hourly-sync",
        cron_expression="0 * * * *",
        timezone="America/New_York",
        headers={"X-Request-Source": "cronplane"},
        body='{"full": true}',
    )
    add_log(endpoint, duration_ms=250)
    add_log(endpoint, state="failed", duration_ms=900, error_class="timeout",
            error_message="Timeout after 30 s")  # fmt: skip
    response = login(viewer).get(reverse("dashboard:endpoint", args=[endpoint.pk]))
    html = response.content.decode()
    assert "Every hour" in html and "America/New_York" in html
    assert "X-Request-Source: cronplane" in html
    assert len(response.context["next_runs"]) == 5
    assert html.count("EST") + html.count("EDT") >= 5
    assert 'class="run-chart"' in html and "900 ms" in html
    assert "Timeout after 30 s" in html
    assert 'id="log-table"' in html


def test_the_run_table_filters_by_state_and_trigger_and_paginates(viewer, make_endpoint):
    endpoint = make_endpoint()
    for i in range(30):
        add_log(
            endpoint,
            state="failed" if i < 4 else "success",
            trigger="manual" if i == 0 else "schedule",
        )
    url = reverse("dashboard:endpoint", args=[endpoint.pk])
    client = login(viewer)
    assert len(client.get(url).context["page"].object_list) == 25
    assert len(client.get(url, {"page": 2}).context["page"].object_list) == 5
    failed = client.get(url, {"state": "failed"}).context["page"].object_list
    assert {log.state for log in failed} == {"failed"} and len(failed) == 4
    manual = client.get(url, {"state": "failed", "trigger": "manual"}).context["page"]
    assert len(manual.object_list) == 1
    partial = client.get(url, {"state": "failed"}, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="log-table"')


def test_a_paused_endpoint_says_so_and_lists_no_next_runs(viewer, make_endpoint):
    endpoint = make_endpoint()
    endpoint.set_enabled(False, now=timezone.now(), reason="paused by otto")
    html = login(viewer).get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()
    assert "badge-paused" in html and "paused by otto" in html
    assert "nothing scheduled until it is resumed" in html


# --- the log page ----------------------------------------------------------------------------


def test_the_log_page_shows_request_response_timing_and_error(viewer, make_endpoint):
    endpoint = make_endpoint()
    started = timezone.now()
    log = add_log(
        endpoint,
        state="failed",
        scheduled_for=started - timedelta(milliseconds=40),
        started_at=started,
        duration_ms=1234,
        status_code=503,
        response_headers={"content-type": "application/json"},
        response_excerpt='{"error": "<b>down</b>", "retry": true}',
        response_bytes=40,
        error_class="http_status",
        error_message="HTTP 503; expected 200-299",
        request={"method": "POST", "url": endpoint.url, "headers": {"X-A": "1"}, "body": "{}"},
    )
    html = login(viewer).get(reverse("dashboard:log", args=[log.pk])).content.decode()
    assert log.run_id in html
    assert "HTTP 503" in html and "content-type: application/json" in html
    # Pretty-printed and escaped: the response's markup is text, never HTML.
    assert "&quot;error&quot;: &quot;&lt;b&gt;down&lt;/b&gt;&quot;," in html
    assert "<b>down</b>" not in html
    assert "1.23 s" in html and "lag 40 ms" in html
    assert "HTTP 503; expected 200-299" in html
    assert "POST http://127.0.0.1:9/ok" in html


def test_the_log_page_links_the_attempts_of_a_retried_run(operator, make_endpoint):
    endpoint = make_endpoint()
    first = add_log(endpoint, state="failed")
    second = add_log(endpoint, state="failed", attempt=2, retry_of=first, trigger="retry")
    third = add_log(endpoint, state="success", attempt=3, retry_of=second, trigger="retry")
    client = login(operator)
    html = client.get(reverse("dashboard:log", args=[second.pk])).content.decode()
    assert f'href="/runs/{first.pk}/"' in html and f'href="/runs/{third.pk}/"' in html
    assert 'aria-current="page">#2' in html
    # Only the last attempt of a chain is retried, and only when it failed.
    assert "/retry/" not in html
    last_failed = add_log(endpoint, state="failed")
    assert "/retry/" in client.get(reverse("dashboard:log", args=[last_failed.pk])).content.decode()


def test_an_unfinished_run_refreshes_itself(viewer, make_endpoint):
    log = add_log(make_endpoint(), state="queued", started_at=None, finished_at=None)
    html = login(viewer).get(reverse("dashboard:log", args=[log.pk])).content.decode()
    assert 'hx-select="#log-page"' in html and "Not sent yet" in html


def test_a_handler_run_shows_its_payload_and_result(viewer, make_endpoint):
    endpoint = make_endpoint(name="hook", kind="handler", handler="webhook:send", url="")
    log = add_log(
        endpoint,
        status_code=None,
        request={"handler": "webhook:send", "payload": {"url": "http://x"}},
        result_summary={"delivered": True},
    )
    html = login(viewer).get(reverse("dashboard:log", args=[log.pk])).content.decode()
    assert "webhook:send" in html and "&quot;delivered&quot;: true" in html


# --- status ----------------------------------------------------------------------------------


def test_the_status_page_shows_dispatchers_queue_lag_and_failures(viewer, make_endpoint):
    now = timezone.now()
    Heartbeat.objects.create(name="web-1:100", host="web-1", pid=100, started_at=now,
                             last_seen_at=now, dispatched=7)  # fmt: skip
    Heartbeat.objects.create(name="web-2:200", host="web-2", pid=200, started_at=now,
                             last_seen_at=now - timedelta(minutes=5))  # fmt: skip
    endpoint = make_endpoint(name="flaky")
    add_log(endpoint, state="failed", error_class="connection", error_message="refused")
    add_log(endpoint, trigger="schedule", scheduled_for=now - timedelta(seconds=1),
            started_at=now - timedelta(milliseconds=700))  # fmt: skip
    add_log(endpoint, state="queued", started_at=None)
    client = login(viewer)
    response = client.get(reverse("dashboard:status"))
    html = response.content.decode()
    assert response.context["alive"] == 1
    assert "web-1:100" in html and "alive" in html and "silent" in html
    assert response.context["open_runs"]["queued"] == 1
    assert response.context["lag"]["runs"] == 1 and response.context["lag"]["p50"] == 300
    assert response.context["broker"]["queued"] is not None
    assert "flaky" in html and "refused" in html
    partial = client.get(reverse("dashboard:status"), HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="status-panels"')


def test_the_status_page_says_when_no_worker_runs(viewer):
    html = login(viewer).get(reverse("dashboard:status")).content.decode()
    assert "No worker is running" in html
    assert "No failed runs." in html


# --- signing in and out, password change -----------------------------------------------------


def test_the_login_page_is_styled_and_says_when_the_password_is_wrong(client, viewer):
    page = client.get(reverse("login"))
    assert "Sign in to cronplane" in page.content.decode()
    wrong = client.post(reverse("login"), {"username": viewer.username, "password": "nope"})
    assert wrong.status_code == 200
    assert "didn't match" in wrong.content.decode()
    right = client.post(
        reverse("login") + "?next=/status/",
        {"username": viewer.username, "password": "pw-vera-viewer-123!", "next": "/status/"},
    )
    assert right["Location"] == "/status/"


def test_logging_out_takes_a_post_and_says_so(viewer):
    client = login(viewer)
    html = client.get(INDEX).content.decode()
    assert f'action="{reverse("logout")}"' in html  # a form: logging out is a POST
    response = client.post(reverse("logout"))
    assert "You are signed out" in response.content.decode()
    assert client.get(INDEX).status_code == 302


def test_a_user_changes_their_password(viewer):
    client = login(viewer)
    url = reverse("password_change")
    assert "Change your password" in client.get(url).content.decode()
    mismatch = client.post(
        url,
        {"old_password": "pw-vera-viewer-123!", "new_password1": "a", "new_password2": "b"},
    )
    assert "has-error" in mismatch.content.decode()
    done = client.post(
        url,
        {
            "old_password": "pw-vera-viewer-123!",
            "new_password1": "correct-horse-battery-9",
            "new_password2": "correct-horse-battery-9",
        },
        follow=True,
    )
    assert "Password changed" in done.content.decode()
    viewer.refresh_from_db()
    assert viewer.check_password("correct-horse-battery-9")
