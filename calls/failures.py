"""What went wrong with a call, in words a user reads: the exceptions calls.client raises for a
target it may not or cannot call, and `classify`, which names any exception a call raised."""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

import aiohttp

from calls import guard
from calls.errors import ErrorClass


class InvalidTarget(Exception):
    """The URL (or a redirect's Location) cannot be called at all."""


class TooManyRedirects(Exception):
    """More hops than calls.redirects.MAX_REDIRECTS."""


def classify(exc: BaseException) -> tuple[ErrorClass, str]:
    """(error class, readable message) for what a call raised."""
    blocked = _cause(exc, guard.BlockedAddress)
    if blocked is not None:
        return ErrorClass.BLOCKED, f"Refused: {blocked}"
    if isinstance(exc, TooManyRedirects):
        return ErrorClass.CONNECTION, f"More than {exc.args[0]} redirects"
    if isinstance(exc, InvalidTarget):
        return ErrorClass.INVALID, str(exc)[:500]
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ErrorClass.TLS, f"TLS error: {exc.certificate_error}"[:500]
    if isinstance(exc, aiohttp.ClientSSLError):
        return ErrorClass.TLS, f"TLS error: {exc.os_error}"[:500]
    if isinstance(exc, ssl.SSLError):
        return ErrorClass.TLS, f"TLS error: {exc}"[:500]
    lookup = _cause(exc, socket.gaierror)
    if lookup is not None or isinstance(exc, aiohttp.ClientConnectorDNSError):
        error = lookup or exc.os_error
        where = f"{exc.host}: " if isinstance(exc, aiohttp.ClientConnectorError) else ""
        return ErrorClass.DNS, f"DNS lookup failed: {where}{error.strerror or error}"[:500]
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ErrorClass.CONNECTION, f"Connection failed: {_os_message(exc.os_error)}"[:500]
    if isinstance(exc, aiohttp.InvalidURL):
        return ErrorClass.INVALID, f"Invalid URL: {exc}"[:500]
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ErrorClass.CONNECTION, f"Connection failed: {exc or type(exc).__name__}"[:500]
    if isinstance(exc, ValueError | TypeError | UnicodeError | LookupError):
        return ErrorClass.INVALID, f"Invalid request: {exc}"[:500]  # a header value aiohttp refuses
    return ErrorClass.CONNECTION, f"{type(exc).__name__}: {exc}"[:500]


def _os_message(error: OSError) -> str:
    """`[Errno 111] Connection refused`: asyncio words it "Connect call failed (address)"."""
    return f"[Errno {error.errno}] {os.strerror(error.errno)}" if error.errno else str(error)


def _cause(exc: BaseException, kind: type[BaseException]) -> Any:
    """The first exception of `kind` in the chain (aiohttp keeps the OSError in `os_error`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return None
