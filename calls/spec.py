"""What a call sends (CallSpec) and what happened (Outcome): plain data, shared by every door."""

from __future__ import annotations

import email.utils
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from calls.errors import RETRYABLE, ErrorClass
from calls.masking import mask_headers

USER_AGENT = "cronplane/0.1 (+https://github.com/cronplane)"
# Response headers worth keeping on the Log; Set-Cookie never is.
KEPT_RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "location",
    "retry-after",
    "date",
    "server",
    "etag",
    "last-modified",
    "cache-control",
    "x-request-id",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)


@dataclass
class CallSpec:
    """What to send. Built from an Endpoint (or a handler such as webhook:send)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | bytes | None = None
    timeout: float = 30.0
    success_ranges: list[tuple[int, int]] = field(default_factory=lambda: [(200, 299)])
    must_contain: str = ""
    # calls.assertions.Assertion, checked in order after the status (empty for most endpoints).
    assertions: tuple = ()
    secret_headers: list[str] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        """The request as it can be shown: secret header values masked, body capped."""
        body = self.body.decode(errors="replace") if isinstance(self.body, bytes) else self.body
        return {
            "method": self.method,
            "url": self.url,
            "headers": mask_headers(self.headers, self.secret_headers),
            "body": (body or "")[: settings.SCHEDULER_RESPONSE_EXCERPT_BYTES],
            "timeout_seconds": self.timeout,
        }


@dataclass
class Outcome:
    """What happened. `ok` is the verdict; the rest is written to the Log."""

    ok: bool
    duration_ms: int = 0
    status_code: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    excerpt: str = ""
    response_bytes: int | None = None
    error_class: str = ""
    error_message: str = ""
    result_summary: dict[str, Any] | None = None
    retry_after: float | None = None
    request: dict[str, Any] = field(default_factory=dict)
    # Phases in ms (see timing()) and the certificate's expiry, for calls made over the network.
    timing: dict[str, Any] | None = None
    tls_expires_at: datetime | None = None

    @property
    def retryable(self) -> bool:
        """Network trouble, timeouts, 5xx and 429 are worth another attempt; the rest is not."""
        if self.error_class in RETRYABLE:
            return True
        if self.error_class == ErrorClass.HTTP_STATUS and self.status_code is not None:
            return self.status_code == 429 or self.status_code >= 500
        return False


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def json_body(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
