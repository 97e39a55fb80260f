"""Per-call timing (DNS, connect, TLS, time to first byte, total) and TLS certificate expiry.

Real loopback servers: plain HTTP (tests.target) and HTTPS with a CA and server certificates
made here, the CA trusted through SCHEDULER_CA_BUNDLE.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls import client
from calls.client import Client as CallClient
from calls.spec import CallSpec, Outcome
from endpoints.models import Endpoint
from runs import executor, notifications, services
from runs.models import Log, Notification
from tests.api_support import client_for
from tests.target import Target, free_port

PHASE_KEYS = ("dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "total_ms")


# --- certificates and servers ----------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Authority:
    """A certificate authority that signs loopback server certificates."""

    def __init__(self, directory: Path, name: str = "cronplane test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),  # fmt: skip
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = directory / f"{name.replace(' ', '-')}.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def server_context(self, expires: datetime) -> ssl.SSLContext:
        """A server context whose certificate (127.0.0.1, localhost) expires at `expires`."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1"))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.now(UTC) - timedelta(days=1))
            .not_valid_after(expires)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = self.directory / f"server-{cert.serial_number}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context


def expiring_in(days: float) -> datetime:
    """A certificate's notAfter `days` from now (whole seconds, as certificates keep it)."""
    return (timezone.now() + timedelta(days=days)).replace(microsecond=0)


@pytest.fixture
def authority(tmp_path, settings) -> Authority:
    ca = Authority(tmp_path)
    settings.SCHEDULER_CA_BUNDLE = str(ca.bundle)
    return ca


@pytest.fixture
def https_target(authority):
    """Start HTTPS targets whose certificates expire when asked; all closed afterwards."""
    started: list[Target] = []

    def start(expires: datetime) -> Target:
        server = Target(tls=authority.server_context(expires))
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_EMAILS = []
    settings.NOTIFY_WEBHOOK_URL = ""


def run(endpoint: Endpoint) -> Log:
    log = executor.execute(services.create_run(endpoint).pk)
    assert log is not None
    log.refresh_from_db()
    return log


def warnings_for(endpoint: Endpoint) -> list[Notification]:
    return list(
        Notification.objects.filter(endpoint=endpoint, event=Notification.Event.TLS_EXPIRING)
    )


# --- what a call records ---------------------------------------------------------------------


def test_an_https_run_records_every_phase_and_the_certificate_expiry(make_endpoint, https_target):
    expires = expiring_in(200)
    server = https_target(expires)
    endpoint = make_endpoint(name="secure", url=server.url("/ok"))

    log = run(endpoint)

    assert log.state == "success", log.error_message
    timing = log.timing
    assert all(timing[key] is not None and timing[key] >= 0 for key in PHASE_KEYS), timing
    assert timing["reused"] is False and timing["connections"] == 1 and timing["requests"] == 1
    assert timing["tls_ms"] > 0  # a handshake cannot take no time at all
    parts = timing["dns_ms"] + timing["connect_ms"] + timing["tls_ms"] + timing["ttfb_ms"]
    assert parts <= timing["total_ms"]
    assert log.tls_expires_at == expires
    endpoint.refresh_from_db()
    assert endpoint.tls_expires_at == expires
    assert endpoint.tls_warned_expiry is None and not warnings_for(endpoint)


def test_a_second_call_over_the_kept_alive_connection_is_marked_reused(https_target):
    # Through calls.client.call: each executor.execute has a Client of its own, the engine
    # one per process; a thread's synchronous calls share one.
    expires = expiring_in(200)
    server = https_target(expires)
    spec = CallSpec(method="GET", url=server.url("/ok"))

    first, second = client.call(spec), client.call(spec)

    assert first.ok and second.ok, second.error_message
    assert first.timing["reused"] is False
    assert second.timing["reused"] is True and second.timing["connections"] == 0
    assert (second.timing["dns_ms"], second.timing["connect_ms"], second.timing["tls_ms"]) == (
        None,
        None,
        None,
    )
    assert second.timing["ttfb_ms"] is not None and second.timing["total_ms"] is not None
    # The certificate read when the connection was opened is still the one in use.
    assert second.tls_expires_at == expires


def test_one_client_times_the_tcp_connect_and_the_handshake_apart(https_target, target):
    expires = expiring_in(30)
    server = https_target(expires)

    async def main() -> list[Outcome]:
        one = CallClient()
        try:
            urls = [server.url("/ok"), target.url("/ok"), server.url("/ok?again")]
            return [await one.send(CallSpec(method="GET", url=url)) for url in urls]
        finally:
            await one.close()

    secure, plain, again = asyncio.run(main())

    assert secure.timing["connect_ms"] > 0 and secure.timing["tls_ms"] > 0
    assert secure.timing["dns_ms"] == 0.0  # an IP literal: no lookup to wait for
    assert secure.tls_expires_at == expires
    assert plain.timing["connect_ms"] > 0 and plain.timing["tls_ms"] is None
    assert plain.tls_expires_at is None
    assert again.timing["reused"] is True and again.tls_expires_at == expires


def test_an_expired_certificate_fails_as_tls(https_target):
    server = https_target(expiring_in(-0.5))

    outcome = client.call(CallSpec(method="GET", url=server.url("/ok")))

    assert (outcome.error_class, outcome.retryable) == ("tls", True)
    assert outcome.error_message.startswith("TLS error: ")
    assert "certificate has expired" in outcome.error_message
    assert outcome.tls_expires_at is None


def test_time_to_first_byte_includes_the_targets_thinking_time(make_endpoint, target):
    endpoint = make_endpoint(name="thinker", url=target.url("/slow/0.3"))

    log = run(endpoint)

    assert log.state == "success"
    assert log.timing["ttfb_ms"] >= 300
    assert log.timing["total_ms"] >= log.timing["ttfb_ms"]
    assert log.timing["tls_ms"] is None and log.tls_expires_at is None  # plain HTTP


def test_a_redirect_sums_the_phases_of_its_requests(make_endpoint, target):
    endpoint = make_endpoint(name="moved", url=target.url(f"/redirect?to={target.url('/ok')}"))

    log = run(endpoint)

    assert log.state == "success"
    assert log.timing["requests"] == 2
    assert log.timing["ttfb_ms"] is not None


def test_a_refused_connection_records_the_lookup_and_no_connect(make_endpoint):
    endpoint = make_endpoint(
        name="nobody-home", url=f"http://127.0.0.1:{free_port()}/", max_attempts=1
    )

    log = run(endpoint)

    assert (log.state, log.error_class) == ("failed", "connection")
    assert log.timing["dns_ms"] is not None
    assert log.timing["connect_ms"] is None and log.timing["ttfb_ms"] is None
    assert log.timing["total_ms"] is not None and log.timing["reused"] is False


def test_a_timeout_records_the_phases_that_completed(make_endpoint, target):
    endpoint = make_endpoint(
        name="too-slow", url=target.url("/slow/3"), timeout_seconds=1, max_attempts=1
    )

    log = run(endpoint)

    assert (log.state, log.error_class) == ("failed", "timeout")
    assert log.timing["ttfb_ms"] is None
    assert log.timing["total_ms"] >= 1000
    connected = log.timing["connect_ms"] is not None
    assert connected or log.timing["reused"]  # a kept-alive connection from an earlier test


def test_an_untrusted_certificate_fails_as_tls_after_connecting(make_endpoint, authority):
    stranger = Authority(authority.directory, name="another CA")  # not in the bundle
    server = Target(tls=stranger.server_context(expiring_in(200)))
    try:
        endpoint = make_endpoint(name="stranger", url=server.url("/ok"), max_attempts=1)
        log = run(endpoint)
    finally:
        server.close()

    assert (log.state, log.error_class) == ("failed", "tls")
    assert log.timing["connect_ms"] is not None and log.timing["tls_ms"] is None
    assert log.tls_expires_at is None


# --- the expiry warning ----------------------------------------------------------------------


def test_a_certificate_about_to_expire_warns_each_recipient_once(
    make_endpoint, https_target, locmem_email
):
    expires = expiring_in(10.5)
    server = https_target(expires)
    endpoint = make_endpoint(
        name="billing-api", url=server.url("/ok"), notify_emails="ops@example.com, b@example.com"
    )

    for _ in range(3):
        assert run(endpoint).state == "success"

    warned = warnings_for(endpoint)
    assert sorted(n.target for n in warned) == ["b@example.com", "ops@example.com"]
    endpoint.refresh_from_db()
    assert endpoint.tls_expires_at == endpoint.tls_warned_expiry == expires
    subject, text = notifications.compose(warned[0])
    assert "billing-api" in subject and "127.0.0.1" in subject and "10 days" in subject
    assert expires.strftime("%Y-%m-%d") in text and "10 days left" in text


def test_a_renewed_certificate_still_inside_the_window_warns_again(
    make_endpoint, https_target, locmem_email
):
    old = https_target(expiring_in(10.5))
    endpoint = make_endpoint(name="billing-api", url=old.url("/ok"), notify_emails="o@example.com")
    run(endpoint)
    renewed_expiry = expiring_in(12.5)
    renewed = https_target(renewed_expiry)
    endpoint.url = renewed.url("/ok")
    endpoint.save()

    run(endpoint)
    run(endpoint)

    assert len(warnings_for(endpoint)) == 2
    endpoint.refresh_from_db()
    assert endpoint.tls_expires_at == endpoint.tls_warned_expiry == renewed_expiry


def test_a_certificate_with_months_left_warns_nobody(make_endpoint, https_target, locmem_email):
    expires = expiring_in(90)
    endpoint = make_endpoint(
        name="calm", url=https_target(expires).url("/ok"), notify_emails="o@example.com"
    )

    run(endpoint)

    assert warnings_for(endpoint) == []
    endpoint.refresh_from_db()
    assert endpoint.tls_expires_at == expires and endpoint.tls_warned_expiry is None


def test_the_warning_window_is_a_setting(make_endpoint, https_target, locmem_email, settings):
    settings.SCHEDULER_TLS_WARNING_DAYS = 100
    endpoint = make_endpoint(
        name="cautious", url=https_target(expiring_in(90)).url("/ok"), notify_emails="o@x.org"
    )

    run(endpoint)

    assert len(warnings_for(endpoint)) == 1


def test_the_warning_is_sent_even_when_failures_are_not_notified(
    make_endpoint, https_target, locmem_email
):
    endpoint = make_endpoint(
        name="quiet",
        url=https_target(expiring_in(5)).url("/status/500"),
        notify_emails="o@example.com",
        notify_on_failure=False,
        max_attempts=1,
    )

    assert run(endpoint).state == "failed"

    assert [n.event for n in Notification.objects.filter(endpoint=endpoint)] == ["tls_expiring"]


def test_two_runs_seeing_the_certificate_at_once_warn_once(make_endpoint, db, locmem_email):
    endpoint = make_endpoint(name="raced", notify_emails="o@example.com")
    expires = expiring_in(3)
    # Both loaded before either is recorded: each believes no warning was sent yet.
    logs = [
        Log.objects.select_related("endpoint").get(pk=services.create_run(endpoint).pk)
        for _ in range(2)
    ]
    for log in logs:
        log.tls_expires_at, log.finished_at = expires, timezone.now()

    warned = [notifications.track_certificates([log]) for log in logs]

    assert [len(w) for w in warned] == [1, 0]
    endpoint.refresh_from_db()
    assert endpoint.tls_warned_expiry == expires


# --- the batch path --------------------------------------------------------------------------


def test_the_batch_path_records_timing_expiry_and_the_warning(
    make_endpoint, https_target, target, locmem_email, django_capture_on_commit_callbacks
):
    soon = expiring_in(7.5)
    server = https_target(soon)
    endpoints = [
        make_endpoint(name="tls-soon", url=server.url("/ok"), notify_emails="o@example.com"),
        make_endpoint(name="plain", url=target.url("/ok")),
        make_endpoint(name="tls-soon-2", url=server.url("/ok?two"), notify_emails="t@example.com"),
    ]

    finished = executor.execute_many([services.create_run(endpoint).pk for endpoint in endpoints])

    assert sorted(log.state for log in finished) == ["success"] * 3
    logs = {log.endpoint.name: log for log in Log.objects.select_related("endpoint")}
    for log in logs.values():
        assert log.timing and log.timing["total_ms"] is not None and log.timing["ttfb_ms"]
    assert logs["plain"].tls_expires_at is None and logs["plain"].timing["tls_ms"] is None
    for name in ("tls-soon", "tls-soon-2"):
        assert logs[name].tls_expires_at == soon
        assert logs[name].endpoint.tls_expires_at == logs[name].endpoint.tls_warned_expiry == soon
        assert [n.target for n in warnings_for(logs[name].endpoint)] == [
            logs[name].endpoint.notify_emails
        ]


def test_a_run_without_a_call_records_no_timing(make_endpoint):
    endpoint = make_endpoint(name="dry", url="http://127.0.0.1:9/ok")
    log = executor.execute(services.create_run(endpoint, dry_run=True).pk)
    log.refresh_from_db()
    assert log.state == "success" and log.timing is None and log.tls_expires_at is None


# --- what people see -------------------------------------------------------------------------


def _finished_log(endpoint: Endpoint, **fields) -> Log:
    now = timezone.now()
    values = {
        "endpoint": endpoint,
        "state": Log.State.SUCCESS,
        "scheduled_for": now - timedelta(seconds=2),
        "started_at": now - timedelta(seconds=2) + timedelta(milliseconds=37),
        "finished_at": now,
        "duration_ms": 412,
        "status_code": 200,
        "timing": {
            "dns_ms": 4.5,
            "connect_ms": 31.0,
            "tls_ms": 88.4,
            "ttfb_ms": 256.2,
            "total_ms": 412.3,
            "reused": False,
            "requests": 1,
            "connections": 1,
        },  # fmt: skip
    }
    values.update(fields)
    return Log.objects.create(**values)


def test_the_log_page_shows_the_phases_and_the_lag(viewer, make_endpoint):
    endpoint = make_endpoint(name="shown")
    log = _finished_log(endpoint, tls_expires_at=expiring_in(40))
    client = Client()
    client.force_login(viewer)

    response = client.get(reverse("dashboard:log", args=[log.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Phases of the call" in html and 'class="phase-bar"' in html
    for shown in ("4.5 ms", "31 ms", "88 ms", "256 ms", "412 ms"):
        assert shown in html, shown
    assert "37 ms" in html  # the lag from the slot to the start
    assert "TLS certificate" in html


def test_the_endpoint_page_charts_the_phases_and_warns_of_an_expiring_certificate(
    viewer, make_endpoint
):
    endpoint = make_endpoint(name="charted")
    for _ in range(3):
        _finished_log(endpoint)
    _finished_log(endpoint, timing=None)  # from before timing was recorded: left out
    Endpoint.objects.filter(pk=endpoint.pk).update(tls_expires_at=expiring_in(6))
    client = Client()
    client.force_login(viewer)

    html = client.get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()

    assert "Where the time goes" in html and "phases of the last 3 calls" in html
    assert 'class="p-tls"' in html and "median 88 ms" in html
    assert 'class="tls-expiring"' in html and "expires soon" in html

    Endpoint.objects.filter(pk=endpoint.pk).update(tls_expires_at=expiring_in(60))
    html = client.get(reverse("dashboard:endpoint", args=[endpoint.pk])).content.decode()
    assert "TLS certificate" in html and "tls-expiring" not in html


def test_the_apis_show_the_timing_of_a_call_and_none_for_a_dry_run(viewer, make_endpoint, target):
    endpoint = make_endpoint(name="api-timed", url=target.url("/ok"))
    dry = executor.execute(services.create_run(endpoint, dry_run=True).pk)
    called = run(endpoint)
    client = client_for(viewer)

    last = client.get(f"/api/v1/scheduler/jobs/{endpoint.name}/last-result").json()
    history = client.get(f"/api/v1/schedules/sched-{endpoint.pk}/history").json()["data"]

    assert last["run_id"] == called.run_id and last["timing"] == called.timing
    assert last["timing"]["total_ms"] is not None
    shown = {entry["executionId"]: entry for entry in history}
    assert shown[called.run_id]["timing"] == called.timing
    assert dry.run_id not in shown  # a dry run is not an execution of the workflow
