"""What a call carries beyond the endpoint's own request: Idempotency-Key, templates, the as-of
instant (signatures: test_signing.py). Verified by a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
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


def test_signing_secrets_are_encrypted_at_rest(make_endpoint):
    from django.db import connection

    secret = signing.new_secret()
    endpoint = make_endpoint(signing_secret=secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT signing_secret FROM endpoints_endpoint WHERE id = %s", [endpoint.pk])
        stored = cursor.fetchone()[0]
    assert secret not in stored and stored.startswith("fernet:")
    assert Endpoint.objects.get(pk=endpoint.pk).signing_secret == secret


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
    endpoint = make_endpoint(url=target.url("/ok?run={{ run_id }}"))
    log = services.run_in_foreground(endpoint, dry_run=True)
    sent = log.result_summary["would_send"]
    assert sent["url"].endswith(f"/ok?run={log.run_id}")
    assert sent["headers"]["Idempotency-Key"] == log.idempotency_key
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
