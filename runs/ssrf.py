"""The SSRF guard: targets must be http(s) and resolve to public addresses.

An address outside the public internet (loopback, private, link-local, multicast, reserved,
unspecified; IPv4-mapped IPv6 counts as its IPv4 address) is refused unless it lies inside
SCHEDULER_ALLOWED_NETWORKS. The check happens twice:

- on save (`url_problem`), to tell the user at once; a name that does not resolve yet passes;
- at connect time (`GuardedAdapter`), which resolves once, checks every address and connects to
  the address it checked: no second lookup for a rebinding DNS server to answer differently.
  Every redirect hop opens its connection through the same check.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
LOCALHOST_NAMES = ("localhost",)


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


class _GuardedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        name = self._dns_host
        try:
            address = checked_address(name, self.port)
        except BlockedAddress as exc:
            raise NewConnectionError(self, str(exc)) from exc
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        # Connect to the checked address; Host, SNI and certificate checks still use the name.
        self._dns_host = address
        try:
            return super()._new_conn()
        finally:
            self._dns_host = name


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
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
