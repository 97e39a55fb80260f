"""Redirects, followed by calls.client one hop at a time (so that each hop passes the SSRF guard),
by requests' rules: what the endpoints were written for."""

from __future__ import annotations

from yarl import URL

from calls.failures import InvalidTarget

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))


def next_hop(
    status: int,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    url: URL,
    location: str,
    *,
    dropped: frozenset[str],
) -> tuple[str, bytes | None, dict[str, str], URL]:
    """The request a redirect asks for, by requests' rules (what endpoints were written for).

    To another origin (but http → https on the same host), the `dropped` headers are not sent:
    requests and curl drop Authorization and Cookie; every secret header and the signature are
    as much for the first host only."""
    try:
        target = url.join(URL(location))
    except ValueError as exc:
        raise InvalidTarget(f"Invalid redirect URL: {location[:200]}") from exc
    if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
        method = "GET"
    if status not in (307, 308):
        body = None
        headers = {
            name: value
            for name, value in headers.items()
            if name.lower() not in ("content-length", "content-type", "transfer-encoding")
        }
    if target.origin() != url.origin() and not _is_https_upgrade(url, target):
        headers = {name: value for name, value in headers.items() if name.lower() not in dropped}
    return method, body, headers, target


def _is_https_upgrade(old: URL, new: URL) -> bool:
    return (
        old.scheme == "http"
        and new.scheme == "https"
        and old.host == new.host
        and old.port in (80, None)
        and new.port in (443, None)
    )
