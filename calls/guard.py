"""The SSRF guard: targets must be http(s) and resolve to public addresses.

An address outside the public internet (loopback, private, link-local, multicast, reserved,
unspecified; IPv4-mapped IPv6 counts as its IPv4 address) is refused unless it lies inside
SCHEDULER_ALLOWED_NETWORKS. The check happens twice:

- on save (`url_problem`), to tell the user at once; a name that does not resolve yet passes;
- at connect time (`GuardedAdapter`), which resolves once, checks every address and connects to
  the address it checked: no second lookup for a rebinding DNS server to answer differently.
  Every redirect hop opens its connection through the same check.

The guarded connections also time the phases of a call (`Phases`): name lookup, TCP connect,
TLS handshake, and the wait from sending the request to the response headers, and read the
certificate's expiry once per new TLS connection. A reused keep-alive connection has no lookup,
connect or handshake to time.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from time import perf_counter
from urllib.parse import urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
LOCALHOST_NAMES = ("localhost",)
_calls = threading.local()


class BlockedAddress(OSError):
    """The target resolves to an address it may not reach."""


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


# Tests replace this to play a DNS server (rebinding, names that resolve to private addresses).
resolver: Resolver = resolve


def _normalize(address: str) -> Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def _normalize_or_none(text: str) -> Address | None:
    try:
        return _normalize(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec if item.strip())


def allowed_networks():
    return _networks(tuple(settings.SCHEDULER_ALLOWED_NETWORKS))


def forbidden_reason(address: str) -> str | None:
    """Why this address may not be called, or None if it may."""
    ip = _normalize(address)
    if any(ip in network for network in allowed_networks()):
        return None
    for label, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return f"{address} is a {label} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


def checked_address(host: str, port: int) -> str:
    """Resolve `host` once and return an address to connect to, or raise BlockedAddress.

    Every address the name resolves to must be allowed: a name that mixes public and private
    answers is refused rather than raced.
    """
    bare = host.strip("[]").rstrip(".").lower()
    if bare in LOCALHOST_NAMES or bare.endswith(".localhost"):
        addresses = ["127.0.0.1", "::1"]  # RFC 6761: whatever the resolver says
    else:
        addresses = resolver(bare, port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
    for address in addresses:
        reason = forbidden_reason(address)
        if reason:
            where = reason if _normalize_or_none(bare) else f"{host} → {reason}"
            raise BlockedAddress(
                f"{where}; targets must be public addresses (or inside SCHEDULER_ALLOWED_NETWORKS)"
            )
    return addresses[0]


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as a target, for a form or API error; None if nothing."""
    try:
        parts = urlsplit(url or "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"Invalid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "Only http:// or https:// URLs can be called."
    if not parts.hostname:
        return "The URL has no host."
    try:
        checked_address(parts.hostname, port)
    except BlockedAddress as exc:
        return f"Refused: {exc}."
    except (OSError, UnicodeError):
        return None  # does not resolve (yet): checked again when it is called
    return None


def time_phases(phases: dict | None) -> None:
    """Have this thread's connections add their phases to `phases` (None: stop timing).

    `phases` holds seconds under the keys dns, connect, tls, ttfb (None until one completes;
    summed over the hops of a redirect), counts of the connections `opened` and `requests`
    sent, and `tls_expires` (the certificate's notAfter, epoch seconds, of the connection the
    last request went over: read when the connection was opened, not again on reuse).
    runs.http turns it into Log.timing.
    """
    _calls.phases = phases


def new_phases() -> dict:
    return {
        "dns": None,
        "connect": None,
        "tls": None,
        "ttfb": None,
        "opened": 0,
        "requests": 0,
        "tls_expires": None,
    }


def _add(phases: dict, key: str, seconds: float) -> None:
    phases[key] = (phases[key] or 0.0) + seconds


class _GuardedConnectionMixin:
    _connected_at = 0.0
    _sending_at = 0.0
    _tls_expires: float | None = None  # read once per connection, repeated on every request

    def _new_conn(self) -> socket.socket:
        phases = getattr(_calls, "phases", None)
        if phases is not None:
            phases["opened"] += 1
        name = self._dns_host
        started = perf_counter()
        try:
            address = checked_address(name, self.port)
        except BlockedAddress as exc:
            raise NewConnectionError(self, str(exc)) from exc
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        resolved = perf_counter()
        if phases is not None:
            _add(phases, "dns", resolved - started)
        # Connect to the checked address; Host, SNI and certificate checks still use the name.
        self._dns_host = address
        try:
            sock = super()._new_conn()
        finally:
            self._dns_host = name
        self._connected_at = perf_counter()
        if phases is not None:
            _add(phases, "connect", self._connected_at - resolved)
        return sock

    def request(self, *args, **kwargs) -> None:
        self._sending_at = perf_counter()
        phases = getattr(_calls, "phases", None)
        if phases is not None:
            phases["requests"] += 1
            if self._tls_expires is not None:
                phases["tls_expires"] = self._tls_expires
        super().request(*args, **kwargs)

    def getresponse(self):
        response = super().getresponse()
        phases = getattr(_calls, "phases", None)
        if phases is not None and self._sending_at:
            # Plain HTTP connects inside request(): the wait starts once connected.
            _add(phases, "ttfb", perf_counter() - max(self._sending_at, self._connected_at))
        return response


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    def connect(self) -> None:
        self._tls_expires = None
        super().connect()  # _new_conn, then the handshake: only ever for a new connection
        phases = getattr(_calls, "phases", None)
        if phases is not None:
            _add(phases, "tls", perf_counter() - self._connected_at)
        # Once per connection (a verified one; unverified reports no certificate); request()
        # hands it to every call made over this connection.
        cert = self.sock.getpeercert() if hasattr(self.sock, "getpeercert") else None
        if cert and cert.get("notAfter"):
            try:
                self._tls_expires = ssl.cert_time_to_seconds(cert["notAfter"])
            except ValueError:
                pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through the guard."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }
