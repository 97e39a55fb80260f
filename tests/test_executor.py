import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from calls.spec import Outcome, parse_retry_after
from runs import executor, recording, services
from runs.models import Log


def test_backoff_grows_exponentially_with_jitter_and_stays_under_the_cap():
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80)]:
        delays = [recording.backoff_delay(attempt, 10, 60) for _ in range(200)]
        assert min(delays) >= min(ceiling, 60) / 2
        assert max(delays) <= min(ceiling, 60)
        assert len(set(delays)) > 1  # jittered


def test_retry_after_is_honoured(make_endpoint, target):
    url = target.url("/status/429?retry_after=120")
    endpoint = make_endpoint(name="limited", url=url, max_attempts=2)
    log = services.create_run(endpoint)
    before = timezone.now()
    executor.execute(log.pk)
    retry = Log.objects.get(retry_of=log)
    assert retry.state == Log.State.PENDING
    assert retry.due_at >= before + timedelta(seconds=120)


def test_retry_after_accepts_an_http_date():
    later = timezone.now() + timedelta(seconds=90)
    seconds = parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert 85 <= seconds <= 91
    assert parse_retry_after("soon") is None


def test_a_name_that_does_not_resolve_fails_as_dns_through_the_real_resolver(make_endpoint):
    # RFC 6761: no .invalid name ever resolves, whatever the network.
    endpoint = make_endpoint(name="typo", url="http://no-such-host.invalid/x", max_attempts=1)

    log = executor.execute(services.create_run(endpoint).pk)

    assert (log.state, log.error_class) == ("failed", "dns")
    assert "DNS lookup failed" in log.error_message


def test_a_name_that_resolves_to_a_refused_address_is_blocked_at_connect_time(
    make_endpoint, settings, target
):
    host = socket.gethostname()  # the machine's own name: /etc/hosts, a loopback or LAN address
    try:
        socket.getaddrinfo(host, target.port)
    except OSError:
        pytest.skip(f"this machine's name ({host}) does not resolve")
    endpoint = make_endpoint(name="rebound", url=f"http://{host}:{target.port}/ok", max_attempts=1)
    settings.SCHEDULER_ALLOWED_NETWORKS = []  # as if the name now pointed somewhere private

    log = executor.execute(services.create_run(endpoint).pk)

    assert (log.state, log.error_class) == ("failed", "blocked")
    assert "Refused" in log.error_message and target.received == []


# An untrusted certificate failing as `tls`: tests/test_timing.py, against a real HTTPS server.


def test_executing_a_log_twice_runs_it_once(make_endpoint, target):
    endpoint = make_endpoint(name="once", url=target.url("/ok"))
    log = services.create_run(endpoint, state=Log.State.QUEUED)
    assert executor.execute(log.pk) is not None
    assert executor.execute(log.pk) is None  # a re-delivered task is a no-op
    assert len(target.received) == 1


def test_a_cancelled_log_is_not_executed(make_endpoint, target):
    endpoint = make_endpoint(name="cancelled", url=target.url("/ok"))
    log = services.create_run(endpoint, state=Log.State.CANCELLED)
    assert executor.execute(log.pk) is None
    assert target.received == []


def test_a_handler_returning_odd_values_still_records_json(make_endpoint):
    from endpoints import registry

    @registry.handler("test:odd")
    def odd(payload, *, dry_run, log):
        return {"when": timezone.now(), "items": {1, 2}.__len__()}

    try:
        endpoint = make_endpoint(name="odd", kind="handler", url="", handler="test:odd")
        log = executor.execute(services.create_run(endpoint).pk)
        assert log.state == Log.State.SUCCESS
        log.refresh_from_db()
        assert log.result_summary["items"] == 2
        assert isinstance(log.result_summary["when"], str)
    finally:
        registry.unregister("test:odd")


@pytest.mark.parametrize(
    ("error_class", "status", "retryable"),
    [
        ("timeout", None, True),
        ("connection", None, True),
        ("dns", None, True),
        ("http_status", 503, True),
        ("http_status", 429, True),
        ("http_status", 404, False),
        ("assertion", 200, False),
        ("handler", None, False),
    ],
)
def test_what_is_worth_retrying(error_class, status, retryable):
    outcome = Outcome(ok=False, error_class=error_class, status_code=status)
    assert outcome.retryable is retryable
