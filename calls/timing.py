"""The phases of a call (lookup, TCP connect, TLS handshake, wait for the headers) and the
connector and resolver that mark them, finding the call's state in `current_call`.

aiohttp reports a new connection as one step, so the connector marks the moment TCP is up (the
protocol factory runs right after the TCP connect, before the TLS handshake) and reads the
certificate once per new connection. No aiohttp TraceConfig: its signals are sent for every
request whether listened to or not, a quarter of the client's CPU a call (measured).
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
import weakref
from time import perf_counter
from typing import Any

import aiohttp

from calls import guard

current_call: contextvars.ContextVar[CallState | None] = contextvars.ContextVar(
    "call", default=None
)


def _add(total: float | None, seconds: float) -> float:
    return (total or 0.0) + seconds


class CallState:
    """One call's progress: its phases (seconds, summed over hops; None until one completes),
    the response whose headers arrived last, and the body read so far."""

    __slots__ = (
        "dns",
        "connect",
        "tls",
        "ttfb",
        "opened",
        "requests",
        "tls_expires",
        "https",
        "literal",
        "mark",
        "ready",
        "response",
        "reading",
        "kept",
        "received",
        "started",
    )

    def __init__(self) -> None:
        self.dns = self.connect = self.tls = self.ttfb = None
        self.opened = self.requests = 0
        self.tls_expires: float | None = None
        self.https = self.literal = False
        self.mark = 0.0
        self.ready: float | None = None  # when this hop's connection was ready to send on
        self.response: aiohttp.ClientResponse | None = None
        self.reading = False
        self.kept = bytearray()
        self.received = 0
        self.started = perf_counter()  # for a duration assertion judged before the call ends

    def new_hop(self, *, https: bool, literal: bool) -> None:
        self.https, self.literal, self.ready = https, literal, None
        self.requests += 1

    def headers_received(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        if self.ready is not None:
            self.ttfb = _add(self.ttfb, perf_counter() - self.ready)

    def timing(self, total: float) -> dict[str, Any]:
        """Log.timing: milliseconds, None for a phase that did not happen (a reused connection
        has no dns/connect/tls) or did not complete (an error)."""
        return {
            "dns_ms": _ms(self.dns),
            "connect_ms": _ms(self.connect),
            "tls_ms": _ms(self.tls),
            "ttfb_ms": _ms(self.ttfb),
            "total_ms": _ms(total),
            "reused": self.opened == 0 and self.requests > 0,
            "requests": self.requests,
            "connections": self.opened,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class TimedResolver(guard.GuardedResolver):
    """The guard's lookup, timed into the call's state."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        state = current_call.get()
        if state is not None:
            state.mark = perf_counter()
        addresses = await super().resolve(host, port, family)
        if state is not None:
            now = perf_counter()
            state.dns = _add(state.dns, now - state.mark)
            state.mark = now
        return addresses


class GuardedConnector(aiohttp.TCPConnector):
    """Connects only to addresses the guard checked; marks TCP-up and reads the certificate."""

    def __init__(self) -> None:
        super().__init__(
            resolver=TimedResolver(),
            use_dns_cache=False,  # a cached answer would skip the check of the next lookup
            limit=0,  # Client's semaphore is the cap
            limit_per_host=0,
        )
        self._tls_expiry: weakref.WeakKeyDictionary[Any, float | None] = weakref.WeakKeyDictionary()
        # Connections opened before their call (calls.preconnect), with the phases it took.
        self._opened: weakref.WeakKeyDictionary[Any, CallState] = weakref.WeakKeyDictionary()

    def keep_opened(self, protocol, state: CallState) -> None:
        if protocol is not None:
            self._opened[protocol] = state

    async def _wrap_create_connection(self, factory, *args, **kwargs):
        state = current_call.get()

        def tcp_is_up():
            # asyncio builds the protocol right after the TCP connect, before any handshake.
            if state is not None:
                now = perf_counter()
                state.connect = _add(state.connect, now - state.mark)
                state.mark = now
            return factory()

        transport, protocol = await super()._wrap_create_connection(tcp_is_up, *args, **kwargs)
        if kwargs.get("ssl"):
            self._tls_expiry[protocol] = _not_after(transport)
        return transport, protocol

    async def _create_connection(self, req, traces, timeout):
        # Only for a new connection (a pooled one is handed out by connect() without this).
        state = current_call.get()
        if state is not None:
            state.opened += 1
            if state.literal:
                state.dns = state.dns or 0.0  # an IP literal needs no lookup: 0, not "none"
            state.mark = perf_counter()
        protocol = await super()._create_connection(req, traces, timeout)
        if state is not None and state.https:
            state.tls = _add(state.tls, perf_counter() - state.mark)  # since TCP was up
        return protocol

    async def connect(self, req, traces, timeout):
        connection = await super().connect(req, traces, timeout)
        state = current_call.get()
        if state is not None:
            state.ready = perf_counter()  # new or reused, the request can go from here
            protocol = connection.protocol
            opened = self._opened.pop(protocol, None) if protocol is not None else None
            if opened is not None:  # opened for this call, before its instant: its phases
                state.opened += 1
                state.dns = _add(state.dns, opened.dns) if opened.dns is not None else state.dns
                state.connect = _add(state.connect, opened.connect or 0.0)
                if opened.tls is not None:
                    state.tls = _add(state.tls, opened.tls)
            if connection.protocol is not None:
                expires = self._tls_expiry.get(connection.protocol)
                if expires is not None:  # the certificate of the connection this hop uses
                    state.tls_expires = expires
        return connection


def _not_after(transport: asyncio.BaseTransport) -> float | None:
    cert = transport.get_extra_info("peercert")
    if cert and cert.get("notAfter"):
        try:
            return ssl.cert_time_to_seconds(cert["notAfter"])
        except ValueError:
            return None
    return None
