"""Which header values are secret, and how they are shown."""

from __future__ import annotations

ALWAYS_SECRET_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})
MASK = "••••••"


def mask_headers(headers: dict[str, str], secret_names: list[str] | None = None) -> dict[str, str]:
    """Headers with every secret value replaced by a mask, safe to show anywhere."""
    secret = ALWAYS_SECRET_HEADERS | {name.lower() for name in (secret_names or [])}
    return {name: MASK if name.lower() in secret else value for name, value in headers.items()}
