"""Which header values are secret, and how they are shown."""

from __future__ import annotations

from calls.signing import SIGNING_HEADERS

ALWAYS_SECRET_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})
MASK = "••••••"


def cross_host_dropped(secret_names: list[str] | None = None) -> frozenset[str]:
    """The headers (lower-cased) a redirect to another host does not carry: every secret one
    and the signature."""
    listed = {name.lower() for name in (secret_names or []) if isinstance(name, str)}
    return ALWAYS_SECRET_HEADERS | listed | SIGNING_HEADERS


def mask_headers(headers: dict[str, str], secret_names: list[str] | None = None) -> dict[str, str]:
    """Headers with every secret value replaced by a mask, safe to show anywhere."""
    secret = ALWAYS_SECRET_HEADERS | {name.lower() for name in (secret_names or [])}
    return {name: MASK if name.lower() in secret else value for name, value in headers.items()}
