"""Issue 20.3: a redirect to another host carries no secret header and no signature.

Two real loopback servers on different addresses (127.0.0.1 redirects, 127.0.0.2 receives)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from calls import client, signing
from calls.build import build_call
from calls.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from runs.handlers import send_webhook
from tests.target import Target

SECRETS = {
    "Authorization": "Bearer auth-secret",
    "Cookie": "session=cookie-secret",
    "Proxy-Authorization": "Basic proxy-secret",
    "X-API-Key": "api-key-secret",
    "X-Custom": "custom-secret",
}


@pytest.fixture
def other_host():
    server = Target(host="127.0.0.2")
    yield server
    server.close()


def _redirecting(first: Target, to: str, status: int = 307) -> str:
    return first.url(f"/redirect?status={status}&to={quote(to, safe='')}")


@pytest.fixture
def signed(make_endpoint):
    def make(url: str):
        return make_endpoint(
            name="signed",
            url=url,
            method="POST",
            body='{"amount": 1}',
            headers={**SECRETS, "X-Plain": "plain"},
            secret_headers=["X-Custom"],
            signing_secret=signing.new_secret(),
        )

    return make


@pytest.mark.parametrize("status", [307, 308, 302])
def test_a_redirect_to_another_host_drops_every_secret_and_the_signature(
    target, other_host, signed, status
):
    endpoint = signed(_redirecting(target, other_host.url("/landed"), status))

    outcome = client.call(build_call(endpoint))

    assert outcome.ok, outcome.error_message
    [first], [second] = target.received, other_host.received
    assert first.headers["X-Custom"] == "custom-secret" and SIGNATURE_HEADER in first.headers
    sent = {name.lower() for name in second.headers}
    for name in (*SECRETS, SIGNATURE_HEADER, TIMESTAMP_HEADER):
        assert name.lower() not in sent, name
    assert second.headers["X-Plain"] == "plain"
    assert "Idempotency-Key" in second.headers  # not a secret: the receiver may deduplicate


def test_a_redirect_on_the_same_host_keeps_them(target, signed):
    endpoint = signed(_redirecting(target, target.url("/landed")))

    assert client.call(build_call(endpoint)).ok

    first, second = target.received
    for name in (*SECRETS, SIGNATURE_HEADER):
        assert second.headers[name] == first.headers[name]


def test_webhook_send_drops_its_payload_secrets_on_another_host(target, other_host):
    payload = {
        "url": _redirecting(target, other_host.url("/landed")),
        "headers": {"X-API-Key": "api-key-secret", "X-Vendor": "vendor-secret", "X-Plain": "p"},
        "secret_headers": ["X-Vendor"],
        "eventType": "ping",
    }

    send_webhook(payload, dry_run=False, log=None)

    [first], [second] = target.received, other_host.received
    assert first.headers["X-Vendor"] == "vendor-secret"
    assert "X-Vendor" not in second.headers and "X-API-Key" not in second.headers
    assert second.headers["X-Plain"] == "p"
    assert b"secret_headers" not in second.body  # a control key, not part of the body
