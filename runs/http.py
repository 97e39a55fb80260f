"""The one place that makes outbound HTTP calls: performs a request and returns an Outcome.

Timing, response capping, error classification and secret masking live here and nowhere else.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings

from calls import guard as ssrf
from calls.judge import judge as _judge
from calls.spec import (  # noqa: F401 — callers still import these from here
    KEPT_RESPONSE_HEADERS,
    USER_AGENT,
    CallSpec,
    Outcome,
    json_body,
    parse_retry_after,
)

_CHUNK = 64 * 1024
MAX_REDIRECTS = 5
_local = threading.local()


def session() -> requests.Session:
    """One Session per thread: connection reuse without sharing a Session across threads."""
    current = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        current.headers["User-Agent"] = USER_AGENT
        current.max_redirects = MAX_REDIRECTS
        # No proxies or .netrc from the environment: the guard must see the real destination.
        current.trust_env = False
        adapter = ssrf.GuardedAdapter()
        current.mount("http://", adapter)
        current.mount("https://", adapter)
        _local.session = current
    return current


def call(spec: CallSpec) -> Outcome:
    """Perform the request within `spec.timeout` seconds overall and judge the response."""
    started = time.perf_counter()
    deadline = started + spec.timeout
    request = spec.snapshot()
    phases = ssrf.new_phases()
    ssrf.time_phases(phases)
    try:
        outcome = _exchange(spec, request, deadline)
    finally:
        ssrf.time_phases(None)
    total = time.perf_counter() - started
    outcome.duration_ms = int(total * 1000)
    outcome.timing = timing(phases, total)
    if phases["tls_expires"] is not None:
        outcome.tls_expires_at = datetime.fromtimestamp(phases["tls_expires"], UTC)
    if outcome.result_summary is not None:
        outcome.result_summary["duration_ms"] = outcome.duration_ms
    return outcome


def timing(phases: dict, total: float) -> dict[str, Any]:
    """Log.timing from the connections' phases: milliseconds, None for a phase that did not
    happen (a reused connection has no dns/connect/tls) or did not complete (an error)."""
    return {
        "dns_ms": _ms(phases["dns"]),
        "connect_ms": _ms(phases["connect"]),
        "tls_ms": _ms(phases["tls"]),
        "ttfb_ms": _ms(phases["ttfb"]),
        "total_ms": _ms(total),
        "reused": phases["opened"] == 0 and phases["requests"] > 0,
        "requests": phases["requests"],
        "connections": phases["opened"],
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _exchange(spec: CallSpec, request: dict[str, Any], deadline: float) -> Outcome:
    try:
        response = session().request(
            spec.method,
            spec.url,
            headers=spec.headers,
            data=spec.body if spec.body not in (None, "") else None,
            timeout=spec.timeout,
            stream=True,
            allow_redirects=True,
            verify=settings.SCHEDULER_CA_BUNDLE or True,
        )
    except requests.RequestException as exc:
        error_class, message = classify_exception(exc, spec.timeout)
        return Outcome(ok=False, error_class=error_class, error_message=message, request=request)

    try:
        kept, total = _read_capped(response, deadline)
    except TimeoutError:
        response.close()
        return Outcome(
            ok=False,
            status_code=response.status_code,
            response_headers=_kept_headers(response),
            error_class="timeout",
            error_message=f"Timeout after {spec.timeout:g} s while reading the response",
            request=request,
        )
    except requests.RequestException as exc:
        response.close()
        error_class, message = classify_exception(exc, spec.timeout)
        return Outcome(
            ok=False,
            status_code=response.status_code,
            error_class=error_class,
            error_message=message,
            request=request,
        )

    excerpt = kept.decode(response.encoding or "utf-8", errors="replace")
    outcome = Outcome(
        ok=True,
        status_code=response.status_code,
        response_headers=_kept_headers(response),
        excerpt=excerpt,
        response_bytes=total,
        request=request,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )
    _judge(outcome, spec, kept)
    outcome.result_summary = {
        "status_code": outcome.status_code,
        "duration_ms": 0,  # set by call() once the whole call is timed
        "response_bytes": total,
    }
    return outcome


def _read_capped(response: requests.Response, deadline: float) -> tuple[bytes, int]:
    """Keep the first bytes up to the excerpt cap; count all of them; respect the deadline."""
    cap = settings.SCHEDULER_RESPONSE_EXCERPT_BYTES
    kept = bytearray()
    total = 0
    try:
        for chunk in response.iter_content(_CHUNK):
            total += len(chunk)
            if len(kept) < cap:
                kept.extend(chunk[: cap - len(kept)])
            if time.perf_counter() > deadline:
                raise TimeoutError
    finally:
        response.close()
    return bytes(kept), total


def _kept_headers(response: requests.Response) -> dict[str, str]:
    return {
        name: response.headers[name][:500]
        for name in KEPT_RESPONSE_HEADERS
        if name in response.headers
    }


def classify_exception(exc: Exception, timeout: float) -> tuple[str, str]:
    """Map a requests exception to (error class, readable message)."""
    if _caused_by(exc, ssrf.BlockedAddress):
        return "blocked", f"Refused: {_blocked_message(exc)}"
    if isinstance(exc, requests.Timeout):
        return "timeout", f"Timeout after {timeout:g} s"
    if isinstance(exc, requests.TooManyRedirects):
        return "connection", f"More than {MAX_REDIRECTS} redirects"
    if isinstance(exc, requests.exceptions.InvalidSchema | requests.exceptions.InvalidHeader):
        return "invalid", str(exc)[:500]
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", f"TLS error: {_root_message(exc)}"
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return "invalid", f"Invalid URL: {_root_message(exc)}"
    if isinstance(exc, requests.ConnectionError):
        if _caused_by(exc, socket.gaierror) or "NameResolutionError" in repr(exc):
            return "dns", f"DNS lookup failed: {_root_message(exc)}"
        return "connection", f"Connection failed: {_root_message(exc)}"
    return "connection", _root_message(exc)


def _blocked_message(exc: BaseException) -> str:
    current: BaseException | None = exc
    while current is not None and not isinstance(current, ssrf.BlockedAddress):
        current = _inner(current) or current.__cause__ or current.__context__
    return str(current) if current else str(exc)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        nested = (
            current.args[0] if current.args and isinstance(current.args[0], BaseException) else None
        )
        current = _inner(current) or nested or current.__cause__ or current.__context__
    return False


def _inner(exc: BaseException) -> BaseException | None:
    """urllib3's wrapped exception: `reason`, when that is one (ssl errors keep a string there)."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else None


def _root_message(exc: BaseException) -> str:
    """The innermost useful message (urllib3 wraps errors several levels deep)."""
    message = str(exc)
    reason = getattr(exc, "reason", None) or (exc.args[0] if exc.args else None)
    if isinstance(reason, BaseException):
        inner = getattr(reason, "reason", None) or reason
        message = str(inner)
    return message[:500]
