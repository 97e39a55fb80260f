"""What a call carries beyond the endpoint's own request: Idempotency-Key, signature, templates,
the as-of instant. Verified by a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from calls import signing
from calls.masking import MASK
from endpoints.models import Endpoint
from runs import dispatcher, executor, services
from runs.models import Log, idempotency_key_for_slot

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def verify_like_the_readme(secret: str, url: str, method: str, headers: dict, body: bytes) -> bool:
    """The receiving side, written from the README's description (not with runs.signing)."""
    timestamp = headers["X-Cronplane-Timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    content = f"{timestamp}\n{method}\n{url}\n{hashlib.sha256(body).hexdigest()}".encode()
    expected = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()
    offered = [part.split("=", 1)[1] for part in headers["X-Cronplane-Signature"].split(",")]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


def run_slot(endpoint: Endpoint, slot: datetime) -> list[Log]:
    """Dispatch the slot and execute it and each of its retries; return the chain."""
    Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=slot)
    dispatcher.dispatch_due(slot)
    chain = [Log.objects.get(endpoint=endpoint, scheduled_for=slot, attempt=1)]
    while True:
        executor.execute(chain[-1].pk)
        following = Log.objects.filter(retry_of=chain[-1]).first()
        if following is None:
            return [Log.objects.get(pk=log.pk) for log in chain]
        dispatcher.dispatch_pending(following.due_at)
        chain.append(following)


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_retries_of_a_slot_send_one_idempotency_key_and_the_next_slot_another(
    make_endpoint, target
):
    endpoint = make_endpoint(url=target.url("/flaky/2"), cron_expression="* * * * *")
    first = run_slot(endpoint, T0)
    assert [log.state for log in first] == ["failed", "failed", "success"]
    keys = [request.headers["Idempotency-Key"] for request in target.received]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert keys[0] == idempotency_key_for_slot(endpoint.pk, T0) == first[2].idempotency_key

    run_slot(endpoint, T0 + timedelta(minutes=1))
    assert target.received[-1].headers["Idempotency-Key"] not in keys


def test_a_manual_run_and_its_retries_share_a_key_and_another_manual_run_does_not(
    make_endpoint, target
):
    endpoint = make_endpoint(url=target.url("/flaky/1"), max_attempts=2)
    last = services.run_in_foreground(endpoint, by="test")
    assert last.attempt == 2 and last.state == "success"
    services.run_in_foreground(endpoint, by="test")
    keys = [request.headers["Idempotency-Key"] for request in target.received]
    assert keys[0] == keys[1] != keys[2]
    assert Log.objects.get(pk=last.pk).idempotency_key == keys[0]


def test_an_idempotency_key_the_endpoint_sets_itself_is_kept(make_endpoint, target):
    endpoint = make_endpoint(url=target.url(), headers={"idempotency-key": "mine-{{ run_id }}"})
    log = services.run_in_foreground(endpoint)
    sent = [
        value
        for name, value in target.received[0].headers.items()
        if name.lower() == "idempotency-key"
    ]
    assert sent == [f"mine-{log.run_id}"]


def test_the_key_is_salted_per_install(settings, make_endpoint):
    endpoint = make_endpoint()
    before = idempotency_key_for_slot(endpoint.pk, T0)
    settings.SECRET_KEY = "another install's secret key, long enough to be accepted here"
    assert idempotency_key_for_slot(endpoint.pk, T0) != before


# --- signed requests -------------------------------------------------------------------------


def test_a_receiver_verifies_the_signature_of_each_attempt(make_endpoint, target):
    secret = signing.new_secret()
    endpoint = make_endpoint(
        url=target.url("/flaky/1"),
        method="POST",
        body='{"report": "daily"}',
        signing_secret=secret,
        cron_expression="* * * * *",
    )
    run_slot(endpoint, T0)
    assert len(target.received) == 2
    for request in target.received:
        url = target.url(request.path)
        assert verify_like_the_readme(secret, url, "POST", request.headers, request.body)
        assert signing.verify(
            secret,
            timestamp=request.headers["X-Cronplane-Timestamp"],
            signatures=request.headers["X-Cronplane-Signature"],
            method="POST",
            url=url,
            body=request.body,
        )
    tampered = target.received[0]
    assert not verify_like_the_readme(
        secret, target.url(tampered.path), "POST", tampered.headers, b'{"report": "weekly"}'
    )
    assert not verify_like_the_readme(
        "whsec_wrong", target.url(tampered.path), "POST", tampered.headers, tampered.body
    )


def test_keys_rotate_without_a_call_that_fails_verification(make_endpoint, target):
    old, new = signing.new_secret(), signing.new_secret()
    endpoint = make_endpoint(url=target.url(), signing_secret=old)
    services.run_in_foreground(endpoint)
    # 1. The next key is set: both signatures are sent, receivers on either key accept.
    endpoint.signing_secret_next = new
    endpoint.save()
    services.run_in_foreground(endpoint)
    # 2. Promoted: only the new key signs.
    endpoint.signing_secret, endpoint.signing_secret_next = new, ""
    endpoint.save()
    services.run_in_foreground(endpoint)
    url = target.url()
    before, during, after = target.received
    assert verify_like_the_readme(old, url, "GET", before.headers, before.body)
    assert during.headers["X-Cronplane-Signature"].count("v1=") == 2
    assert verify_like_the_readme(old, url, "GET", during.headers, during.body)
    assert verify_like_the_readme(new, url, "GET", during.headers, during.body)
    assert verify_like_the_readme(new, url, "GET", after.headers, after.body)
    assert not verify_like_the_readme(old, url, "GET", after.headers, after.body)


def test_a_signature_outside_the_tolerance_window_is_refused():
    content_args = {"method": "GET", "url": "https://example.com/x", "body": b""}
    headers = signing.headers(["k"], now=1_000_000, **content_args)
    check = {
        "timestamp": headers[signing.TIMESTAMP_HEADER],
        "signatures": headers[signing.SIGNATURE_HEADER],
        **content_args,
    }
    assert signing.verify("k", now=1_000_299, **check)
    assert not signing.verify("k", now=1_000_301, **check)


def test_signing_secrets_are_encrypted_at_rest(make_endpoint):
    from django.db import connection

    secret = signing.new_secret()
    endpoint = make_endpoint(signing_secret=secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT signing_secret FROM endpoints_endpoint WHERE id = %s", [endpoint.pk])
        stored = cursor.fetchone()[0]
    assert secret not in stored and stored.startswith("fernet:")
    assert Endpoint.objects.get(pk=endpoint.pk).signing_secret == secret


def test_no_signature_headers_without_a_secret(make_endpoint, target):
    services.run_in_foreground(make_endpoint(url=target.url()))
    assert "X-Cronplane-Signature" not in target.received[0].headers


# --- templated requests ----------------------------------------------------------------------


def test_templates_render_in_url_headers_and_body_and_env_values_are_never_shown(
    settings, monkeypatch, make_endpoint, target
):
    settings.SCHEDULER_TEMPLATE_ENV = ["REPORT_TOKEN"]
    monkeypatch.setenv("REPORT_TOKEN", 'tok"en-123')
    endpoint = make_endpoint(
        name="nightly-report",
        url=target.url("/ok?since={{ scheduled_at }}&run={{ run_id }}"),
        method="POST",
        headers={"X-Attempt": "{{ attempt }}", "X-Token": "{{ env.REPORT_TOKEN }}"},
        body='{"job": "{{ endpoint.name }}", "token": "{{ env.REPORT_TOKEN }}", '
        '"at": {{ scheduled_at_unix }}}',
        cron_expression="* * * * *",
    )
    (log,) = run_slot(endpoint, T0)
    request = target.received[0]
    query = parse_qs(urlsplit(request.path).query)
    assert query == {"since": ["2026-11-23T12:00:00Z"], "run": [log.run_id]}
    assert request.headers["X-Attempt"] == "1"
    assert request.headers["X-Token"] == 'tok"en-123'
    assert json.loads(request.body) == {
        "job": "nightly-report",
        "token": 'tok"en-123',
        "at": int(T0.timestamp()),
    }
    log.refresh_from_db()
    shown = json.dumps(log.request, ensure_ascii=False)
    assert "en-123" not in shown and MASK in shown
    assert log.request["headers"]["X-Attempt"] == "1"


def test_a_variable_cannot_change_where_the_request_goes(
    settings, monkeypatch, make_endpoint, target
):
    settings.SCHEDULER_TEMPLATE_ENV = ["SUFFIX"]
    monkeypatch.setenv("SUFFIX", "@evil.example/x?y=1#")
    endpoint = make_endpoint(url=target.url("/ok?q={{ env.SUFFIX }}"))
    log = services.run_in_foreground(endpoint)
    assert log.state == "success"
    assert parse_qs(urlsplit(target.received[0].path).query) == {"q": ["@evil.example/x?y=1#"]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "http://127.0.0.1:9/?x={{ slot }}", "Unknown variable {{ slot }}"),
        ("url", "http://127.0.0.1:9/?x={{ env.HOME }}", "HOME is not in SCHEDULER_TEMPLATE_ENV"),
        ("body", "{{ run_id", "not closed"),
        ("body", "{{ __import__('os').system('id') }}", "Unknown variable"),
        ("headers", {"X-Run": "{{ endpoint.secret }}"}, "Unknown variable"),
    ],
)
def test_a_bad_template_is_refused_on_save_with_the_field(make_endpoint, field, value, message):
    endpoint = make_endpoint()
    setattr(endpoint, field, value)
    with pytest.raises(ValidationError) as raised:
        endpoint.full_clean()
    assert message in " ".join(raised.value.message_dict[field])


def test_a_template_whose_value_would_break_a_header_fails_the_run_cleanly(
    settings, monkeypatch, make_endpoint, target
):
    settings.SCHEDULER_TEMPLATE_ENV = ["MULTILINE"]
    monkeypatch.setenv("MULTILINE", "a\r\nX-Injected: yes")
    endpoint = make_endpoint(url=target.url(), headers={"X-Value": "{{ env.MULTILINE }}"})
    log = services.run_in_foreground(endpoint)
    assert (log.state, log.error_class) == ("failed", "invalid")
    assert "line break" in log.error_message
    assert target.received == []


def test_the_dry_run_shows_the_rendered_request(make_endpoint, target):
    endpoint = make_endpoint(url=target.url("/ok?run={{ run_id }}"), signing_secret="k")
    log = services.run_in_foreground(endpoint, dry_run=True)
    sent = log.result_summary["would_send"]
    assert sent["url"].endswith(f"/ok?run={log.run_id}")
    assert sent["headers"]["Idempotency-Key"] == log.idempotency_key
    assert "X-Cronplane-Signature" in sent["headers"]
    assert target.received == []


# --- run now as of an instant ------------------------------------------------------------------


def test_a_run_as_of_an_instant_renders_that_instant(make_endpoint, target):
    endpoint = make_endpoint(url=target.url("/ok?day={{ scheduled_at }}"))
    as_of = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    log = services.run_in_foreground(endpoint, as_of=as_of)
    assert log.as_of == as_of and log.scheduled_at == as_of
    assert parse_qs(urlsplit(target.received[0].path).query) == {"day": ["2026-11-01T05:30:00Z"]}


def test_handlers_see_the_as_of_instant(make_endpoint):
    from endpoints.registry import handler, unregister

    seen = []

    @handler("test:as-of")
    def remember(payload, *, dry_run, log):
        seen.append(log.scheduled_at)
        return {"as_of": log.scheduled_at.isoformat()}

    try:
        endpoint = make_endpoint(kind="handler", handler="test:as-of", url="")
        as_of = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
        log = services.run_in_foreground(endpoint, as_of=as_of)
    finally:
        unregister("test:as-of")
    assert seen == [as_of]
    assert log.result_summary == {"as_of": as_of.isoformat()}


def test_runjob_as_of_takes_wall_time_in_the_jobs_zone(make_endpoint, target, capsys):
    make_endpoint(
        name="ny", url=target.url("/ok?at={{ scheduled_at }}"), timezone="America/New_York"
    )
    # 01:30 on 2026-11-01 happens twice in New York; the first (EDT, UTC-4) is meant.
    call_command("runjob", "ny", "--as-of", "2026-11-01T01:30")
    assert parse_qs(urlsplit(target.received[0].path).query) == {"at": ["2026-11-01T05:30:00Z"]}
    # Echoed on the job's own clock (05:30 UTC is 01:30 EDT, the first of the two).
    assert "as of 2026-11-01 01:30:00 EDT" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "message"),
    [("yesterday", "is not a date and time"), ("3001-01-01T00:00Z", "between 1970 and 3000")],
)
def test_runjob_refuses_an_unreadable_as_of(make_endpoint, value, message):
    make_endpoint(name="job")
    with pytest.raises(CommandError, match=message):
        call_command("runjob", "job", "--as-of", value)
    assert Log.objects.count() == 0
