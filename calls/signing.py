"""Signed requests, by Standard Webhooks (spec 1.0): receivers verify with their language's
official library (`standardwebhooks` on PyPI and npm, and seven more).

Every request of an endpoint with a signing secret carries

    webhook-id: <the run's Idempotency-Key>     the same on every retry of a slot
    webhook-timestamp: 1793779200                this attempt, in Unix seconds
    webhook-signature: v1,<base64> [v1,<base64>]

where each signature is HMAC-SHA256, keyed with the base64-decoded part of `whsec_<base64>`, of
`<webhook-id>.<webhook-timestamp>.<body>`. The body is signed, not the method or the URL: a GET
job's meaning in its query string is protected by TLS, not by the signature.
While a next key is set the request is signed with both (current first, space-separated), so
receivers move to the next key before it becomes the current one: rotation without a failed call.
The libraries refuse a timestamp more than five minutes away, which bounds replays; the
webhook-id lets a receiver drop a replay inside that window.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from datetime import UTC, datetime

from standardwebhooks import Webhook

PREFIX = "whsec_"
KEY_BYTES = 32
# The spec's bounds on a key's length (random bytes, before base64).
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
# Lower-cased: a signature is for the host it was made for, so a redirect to another host never
# carries one (calls.masking.cross_host_dropped).
SIGNING_HEADERS = frozenset(HEADERS)


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def secret_problem(secret: str) -> str | None:
    """Why `secret` is not a key every Standard Webhooks library accepts, or None."""
    shape = (
        f"a Standard Webhooks secret is {PREFIX} + base64 (padded) of {MIN_KEY_BYTES}-"
        f"{MAX_KEY_BYTES} random bytes; the dashboard generates one"
    )
    if not secret.startswith(PREFIX):
        return f"Not a signing secret: {shape}."
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return f"Not valid base64 after {PREFIX}: {shape}."
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        return f"The key is {len(key)} bytes: {shape}."
    return None


def headers(
    keys: list[str], message_id: str, body: bytes | None, *, now: float | None = None
) -> dict[str, str]:
    """The signing headers for this attempt, signed with each of `keys` (empty keys ignored)."""
    keys = [key for key in keys if key]
    if not keys:
        return {}
    timestamp = int(now if now is not None else time.time())
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    payload = (body or b"").decode()
    signatures = " ".join(Webhook(key).sign(message_id, at, payload) for key in keys)
    return {ID_HEADER: message_id, TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signatures}
