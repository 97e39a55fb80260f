"""Signed requests: proof for the receiver that a call came from this scheduler, unaltered.

Every request of an endpoint with a signing secret carries

    X-Cronplane-Timestamp: 1793779200
    X-Cronplane-Signature: v1=<hex>[,v1=<hex>]

where each <hex> is HMAC-SHA256(key, "<timestamp>\\n<METHOD>\\n<url>\\n<sha256 hex of body>").
While a next key is set the request is signed with both (current first), so receivers can move
to the next key before it becomes the current one: rotation without a failed call.
A receiver accepts when one signature matches one of its keys and the timestamp is within its
tolerance window (SCHEDULER_SIGNATURE_TOLERANCE_SECONDS, 5 minutes by default), which bounds
replays; the Idempotency-Key header lets it drop a replay inside the window too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

TIMESTAMP_HEADER = "X-Cronplane-Timestamp"
SIGNATURE_HEADER = "X-Cronplane-Signature"
VERSION = "v1"
# Every scheme's signing headers (ours and Standard Webhooks'), lower-cased: a signature is
# for the host it was made for, so a redirect to another host never carries one.
SIGNING_HEADERS = frozenset(
    {"x-cronplane-timestamp", "x-cronplane-signature", "webhook-id", "webhook-timestamp",
     "webhook-signature"}
)  # fmt: skip


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signed_content(timestamp: int, method: str, url: str, body: bytes | None) -> bytes:
    body_hash = hashlib.sha256(body or b"").hexdigest()
    return f"{timestamp}\n{method.upper()}\n{url}\n{body_hash}".encode()


def signature(key: str, content: bytes) -> str:
    return hmac.new(key.encode(), content, hashlib.sha256).hexdigest()


def headers(
    keys: list[str], method: str, url: str, body: bytes | None, *, now: float | None = None
) -> dict[str, str]:
    """The signing headers for this request, signed with each of `keys` (empty keys ignored)."""
    keys = [key for key in keys if key]
    if not keys:
        return {}
    timestamp = int(now if now is not None else time.time())
    content = signed_content(timestamp, method, url, body)
    signatures = ",".join(f"{VERSION}={signature(key, content)}" for key in keys)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signatures}


def verify(
    key: str,
    *,
    timestamp: str,
    signatures: str,
    method: str,
    url: str,
    body: bytes | None,
    tolerance: float = 300,
    now: float | None = None,
) -> bool:
    """The receiving side's check (what the README's verifier does), for Python receivers."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - sent_at) > tolerance:
        return False
    expected = signature(key, signed_content(sent_at, method, url, body))
    offered = [part.strip().removeprefix(f"{VERSION}=") for part in signatures.split(",")]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
