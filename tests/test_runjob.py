from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_q.models import OrmQ

from endpoints.models import Endpoint
from runs.models import Log
from tests.processes import manage
from tests.target import free_port


def runjob(*args: str) -> str:
    out = StringIO()
    call_command("runjob", *args, stdout=out)
    return out.getvalue()


def test_a_successful_run_exits_zero_and_records_the_call(make_endpoint, target):
    make_endpoint(name="nightly", url=target.url("/ok"))
    output = runjob("nightly")

    log = Log.objects.get()
    assert log.state == Log.State.SUCCESS
    assert log.status_code == 200
    assert log.duration_ms is not None and log.duration_ms >= 0
    assert '"ok": true' in log.response_excerpt
    assert log.response_bytes == len(b'{"ok": true}')
    assert log.trigger == Log.Trigger.MANUAL and log.triggered_by == "runjob"
    assert log.request["method"] == "GET" and log.request["url"] == target.url("/ok")
    assert len(target.received) == 1
    assert f"{log.run_id} attempt 1/3" in output and "success" in output and "HTTP 200" in output
    endpoint = Endpoint.objects.get()
    assert (endpoint.run_count, endpoint.success_count, endpoint.last_status) == (1, 1, "success")


def test_a_500_exits_one_and_its_retries_are_visible_as_attempts(make_endpoint, target):
    make_endpoint(name="broken", url=target.url("/status/500"), max_attempts=3)
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("runjob", "broken", stdout=out)
    assert caught.value.returncode == 1

    attempts = list(Log.objects.order_by("attempt"))
    assert [(a.attempt, a.state, a.status_code) for a in attempts] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "failed", 500),
    ]
    assert attempts[1].retry_of == attempts[0] and attempts[2].retry_of == attempts[1]
    assert attempts[1].trigger == Log.Trigger.RETRY
    assert all(a.error_class == "http_status" for a in attempts)
    assert "HTTP 500; expected 200-299" in attempts[0].error_message
    assert len(target.received) == 3
    assert out.getvalue().count("retrying in") == 2
    endpoint = Endpoint.objects.get()
    # One run (a slot and its retries count once), which failed.
    assert (endpoint.run_count, endpoint.failure_count, endpoint.consecutive_failures) == (1, 1, 1)


def test_a_retry_that_succeeds_ends_the_run_successfully(make_endpoint, target):
    make_endpoint(name="flaky", url=target.url("/flaky/1"), max_attempts=3)
    runjob("flaky")
    assert [(a.attempt, a.state) for a in Log.objects.order_by("attempt")] == [
        (1, "failed"),
        (2, "success"),
    ]
    assert Endpoint.objects.get().success_count == 1


def test_a_404_is_not_retried(make_endpoint, target):
    make_endpoint(name="gone", url=target.url("/status/404"), max_attempts=3)
    with pytest.raises(CommandError):
        runjob("gone")
    assert Log.objects.count() == 1
    assert len(target.received) == 1


def test_a_target_slower_than_the_timeout_fails_with_the_timeout_class(make_endpoint, target):
    make_endpoint(name="slow", url=target.url("/slow/3"), timeout_seconds=0.5, max_attempts=1)
    with pytest.raises(CommandError):
        runjob("slow")
    log = Log.objects.get()
    assert log.state == Log.State.FAILED
    assert log.error_class == "timeout"
    assert "Timeout after 0.5 s" in log.error_message
    assert log.duration_ms < 2500


def test_connection_refused_fails_with_the_connection_class(make_endpoint):
    make_endpoint(name="nobody", url=f"http://127.0.0.1:{free_port()}/", max_attempts=1)
    with pytest.raises(CommandError):
        runjob("nobody")
    log = Log.objects.get()
    assert log.error_class == "connection"
    assert "refused" in log.error_message.lower()


def test_a_5_mb_response_is_stored_capped_and_counted_in_full(make_endpoint, target, settings):
    size = 5 * 1024 * 1024
    make_endpoint(name="big", url=target.url(f"/big/{size}"))
    runjob("big")
    log = Log.objects.get()
    assert log.state == Log.State.SUCCESS
    assert log.response_bytes == size
    assert len(log.response_excerpt) == settings.SCHEDULER_RESPONSE_EXCERPT_BYTES


def test_response_must_contain_is_checked(make_endpoint, target):
    make_endpoint(name="words", url=target.url("/text/hello"), response_must_contain="goodbye")
    with pytest.raises(CommandError):
        runjob("words")
    log = Log.objects.get()
    assert log.error_class == "assertion"
    assert "goodbye" in log.error_message


def test_expected_status_can_accept_other_codes(make_endpoint, target):
    make_endpoint(name="accepts-404", url=target.url("/status/404"), expected_status="200,404")
    runjob("accepts-404")
    assert Log.objects.get().state == Log.State.SUCCESS


def test_it_sends_method_headers_and_a_json_body(make_endpoint, target):
    make_endpoint(
        name="poster",
        url=target.url("/ok"),
        method="POST",
        headers={"Authorization": "Bearer s3cret-token", "X-Trace": "abc"},
        body='{"hello": "world"}',
    )
    runjob("poster")
    received = target.received[0]
    assert received.method == "POST"
    assert received.headers["Authorization"] == "Bearer s3cret-token"
    assert received.headers["Content-Type"] == "application/json"
    assert received.json() == {"hello": "world"}
    # The stored request snapshot never keeps the secret.
    log = Log.objects.get()
    assert "s3cret-token" not in str(log.request)
    assert log.request["headers"]["X-Trace"] == "abc"


def test_dry_run_sends_nothing(make_endpoint, target):
    make_endpoint(name="careful", url=target.url("/ok"), method="POST", body="raw body")
    output = runjob("careful", "--dry-run")
    assert target.received == []
    log = Log.objects.get()
    assert log.dry_run and log.state == Log.State.SUCCESS
    assert log.result_summary["would_send"]["body"] == "raw body"
    assert "dry run, nothing sent" in output
    # A dry run is not a run: the endpoint's record is untouched.
    assert Endpoint.objects.get().run_count == 0


def test_queue_hands_the_run_to_the_cluster_and_prints_its_run_id(
    make_endpoint, target, django_capture_on_commit_callbacks
):
    make_endpoint(name="later", url=target.url("/ok"))
    with django_capture_on_commit_callbacks(execute=True):
        output = runjob("later", "--queue")
    log = Log.objects.get()
    assert output.strip() == log.run_id
    assert log.state == Log.State.QUEUED
    assert OrmQ.objects.count() == 1
    assert target.received == []


def test_an_unknown_job_is_one_readable_line(db):
    with pytest.raises(CommandError, match="No job named 'nope'"):
        call_command("runjob", "nope")


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_with_the_runs_verdict(make_endpoint, target):
    make_endpoint(name="ok", url=target.url("/ok"))
    make_endpoint(name="bad", url=target.url("/status/502"), max_attempts=1)
    good = manage("runjob", "ok")
    assert good.returncode == 0, good.stderr
    assert "success" in good.stdout
    bad = manage("runjob", "bad")
    assert bad.returncode == 1
    assert "HTTP 502" in bad.stdout
    assert "bad failed after 1 attempt(s)." in bad.stderr
    missing = manage("runjob", "missing")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "CommandError: No job named 'missing' (see the dashboard or `manage.py exportjobs`)."
    ]
