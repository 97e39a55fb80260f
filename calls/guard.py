"""The SSRF guard: targets must be http(s) and resolve to public addresses.

An address outside the public internet (loopback, private, link-local, multicast, reserved,
unspecified; IPv4-mapped IPv6 counts as its IPv4 address) is refused unless it lies inside
SCHEDULER_ALLOWED_NETWORKS. The check happens twice:

- on save (`url_problem`), to tell the user at once; a name that does not resolve yet passes;
- at connect time, in `calls.client`: `GuardedResolver` is the only name lookup its connections
  make (aiohttp's DNS cache off), checks every answer and hands aiohttp only checked addresses,
  so there is no second lookup for a rebinding DNS server to answer differently. aiohttp never
  asks a resolver about an IP literal, so the client checks each hop's host with
  `check_literal` first (every redirect hop is its own request).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings

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
    return _forbidden_reason(address, allowed_networks())


@functools.lru_cache(maxsize=4096)  # every call checks its host: parse each address once
def _forbidden_reason(address: str, allowed: tuple) -> str | None:
    ip = _normalize(address)
    if any(ip in network for network in allowed):
        return None
    # 6to4 (2002::/16) and Teredo (2001::/32) carry an IPv4 address: judged by it, as
    # ::ffff:a.b.c.d is (a relay would forward to it).
    embedded = _embedded_ipv4(ip)
    if embedded is not None and (reason := _forbidden_reason(str(embedded), allowed)):
        return f"{address} embeds {embedded}: {reason}"
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


def _embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip.teredo[1] if ip.teredo is not None else None


def checked_addresses(host: str, port: int) -> list[str]:
    """Resolve `host` once and return the addresses to connect to, or raise BlockedAddress.

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
        _refuse_if_forbidden(host, address, literal=_normalize_or_none(bare) is not None)
    return addresses


def checked_address(host: str, port: int) -> str:
    return checked_addresses(host, port)[0]


@functools.lru_cache(maxsize=4096)
def literal_address(host: str) -> str | None:
    """The address an IP-literal host means, in any form a socket accepts (`127.1`,
    `2130706433`, `0x7f000001`, `0177.0.0.1`, `[::ffff:127.0.0.1]`); None for a name."""
    bare = host.strip("[]").rstrip(".")
    ip = _normalize_or_none(bare)
    if ip is not None:
        return str(ip)
    try:
        return socket.inet_ntoa(socket.inet_aton(bare))
    except (OSError, ValueError):
        return None


def check_literal(host: str) -> bool:
    """Raise BlockedAddress if `host` is an IP literal that may not be called; True if it is
    one that may."""
    address = literal_address(host)
    if address is None:
        return False
    _refuse_if_forbidden(host, address, literal=True)
    return True


def _refuse_if_forbidden(host: str, address: str, *, literal: bool) -> None:
    reason = forbidden_reason(address)
    if reason:
        where = reason if literal else f"{host} → {reason}"
        raise BlockedAddress(
            f"{where}; targets must be public addresses (or inside SCHEDULER_ALLOWED_NETWORKS)"
        )


# Whitespace (U+2028, U+0085 and the rest) and control characters: a URL carries them
# percent-encoded or not at all.
_URL_BAD_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as a target, for a form or API error; None if nothing."""
    if bad := _URL_BAD_RE.search(url or ""):
        return f"The URL contains U+{ord(bad.group()):04X} (a space, line separator or control)."
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


class GuardedResolver(AbstractResolver):
    """aiohttp's name lookup through the guard: one lookup, every answer checked.

    Only checked addresses reach the connector, so the connection goes where the check looked.
    The lookup (`resolver`, blocking getaddrinfo or a test's fake DNS) runs in the loop's
    default executor, as aiohttp's own ThreadedResolver does.
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        addresses = await loop.run_in_executor(None, checked_addresses, host, port)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": socket.IPPROTO_TCP,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass
