"""Send a call: the one place that makes outbound HTTP requests, on aiohttp.

`Client.send(spec)` takes these steps and returns an Outcome; it never raises (but for the
caller's own cancellation):

1. Wait for one of `max_in_flight` slots: over the cap calls queue, none is dropped.
2. From then on `spec.timeout` is one total deadline (`asyncio.timeout`) over everything the
   call does: lookup, connect, TLS handshake, headers, every redirect hop and the whole body,
   whatever the target does (trickle, endless body, silence, a stalled handshake). On the
   deadline the outcome keeps what had arrived: status, headers, the excerpt and byte count
   so far, and the phases that completed.
3. Every hop passes the SSRF guard (calls.guard): an IP-literal host is checked here before
   its request; a name is looked up only by the connector's `GuardedResolver` (no DNS cache),
   which hands aiohttp nothing but checked addresses. Redirects are followed here, at most
   MAX_REDIRECTS, so each hop is checked (requests' rules for method and header changes).
4. The body is read in chunks: the first SCHEDULER_RESPONSE_EXCERPT_BYTES are kept, all counted.
5. The verdict comes from calls.judge.

Timing: calls.timing (a connector and a resolver that mark the phases of each call).

One Client per event loop: it owns one ClientSession, so connections are kept alive across
calls. `call()` is the synchronous door for code outside the engine.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import concurrent.futures
import functools
import os
import re
import ssl
import threading
import weakref
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import aiohttp
from django.conf import settings
from yarl import URL

from calls import guard
from calls.errors import ErrorClass
from calls.failures import InvalidTarget, TooManyRedirects, classify
from calls.judge import judge
from calls.masking import cross_host_dropped
from calls.preconnect import Preconnector
from calls.redirects import MAX_REDIRECTS, REDIRECT_STATUSES, next_hop
from calls.spec import KEPT_RESPONSE_HEADERS, USER_AGENT, CallSpec, Outcome, parse_retry_after
from calls.timing import CallState, GuardedConnector, current_call

_BREAKS = re.compile(r"[\r\n\0]")
_HEADER_LIMIT = 65536  # what http.client (and so requests) accepted for a line or a header


class Client:
    """Sends calls on the running asyncio loop. One per event loop (create it inside the loop)."""

    def __init__(self, *, max_in_flight: int = 1000) -> None:
        self._slots = Slots(max_in_flight)
        self._max_in_flight = max_in_flight
        self._session: aiohttp.ClientSession | None = None
        self._preconnector: Preconnector | None = None

    def expect(self, url: str, instant: datetime) -> None:
        """A call to `url` will be sent at `instant`: open its connection shortly before
        (calls.preconnect)."""
        if self._preconnector is None:
            tls = _tls_context(settings.SCHEDULER_CA_BUNDLE or None)
            self._preconnector = Preconnector(self._open_session(), tls, self._max_in_flight)
        self._preconnector.expect(url, instant)

    async def send(self, spec: CallSpec) -> Outcome:
        await self._slots.acquire()
        try:
            return await self._send(spec)
        finally:
            self._slots.release()

    def waiting(self) -> int:
        """Calls waiting for one of the `max_in_flight` slots (read from any thread)."""
        return self._slots.waiting

    async def close(self) -> None:
        if self._preconnector is not None:
            await self._preconnector.close()
        if self._session is not None:
            await self._session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=GuardedConnector(),
                headers={"User-Agent": USER_AGENT},
                # A body is sent as given: no Content-Type the endpoint did not set.
                skip_auto_headers=("Content-Type",),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # no proxies or .netrc: the guard must see the real target
                timeout=aiohttp.ClientTimeout(total=None),  # the deadline is send()'s own
                max_line_size=_HEADER_LIMIT,
                max_field_size=_HEADER_LIMIT,
            )
        return self._session

    async def _send(self, spec: CallSpec) -> Outcome:
        state = CallState()
        token = current_call.set(state)
        started = perf_counter()
        deadline = asyncio.timeout(spec.timeout)
        try:
            async with deadline:
                outcome = await _exchange(self._open_session(), spec, state)
        except TimeoutError:
            outcome = _failed(spec, state, ErrorClass.TIMEOUT, _timeout_message(spec, state))
        except Exception as exc:  # every failure is an outcome, not an exception
            if deadline.expired():
                outcome = _failed(spec, state, ErrorClass.TIMEOUT, _timeout_message(spec, state))
            else:
                outcome = _failed(spec, state, *classify(exc))
        finally:
            current_call.reset(token)
            if state.response is not None:
                state.response.close()  # no-op once released; drops a half-read connection
        total = perf_counter() - started
        outcome.duration_ms = int(total * 1000)
        outcome.timing = state.timing(total)
        if state.tls_expires is not None:
            outcome.tls_expires_at = datetime.fromtimestamp(state.tls_expires, UTC)
        if outcome.result_summary is not None:
            outcome.result_summary["duration_ms"] = outcome.duration_ms
        return outcome


class Slots:
    """At most `size` holders at once, the others served in arrival order.

    asyncio.Semaphore (Python 3.11) scans all its waiters on every release: with thousands of
    calls queued at one instant that was the largest cost of sending them (profiled).
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next in line
                return
        self._free += 1


# --- one call, hop by hop ---------------------------------------------------------------------


async def _exchange(session: aiohttp.ClientSession, spec: CallSpec, state: CallState) -> Outcome:
    method, url, headers = spec.method.upper(), _parse(spec.url), _checked(spec.headers)
    body = spec.body.encode() if isinstance(spec.body, str) else spec.body
    tls = _tls_context(settings.SCHEDULER_CA_BUNDLE or None)
    for hop in range(MAX_REDIRECTS + 1):
        literal = _check_hop(url)
        state.new_hop(https=url.scheme == "https", literal=literal)
        response = await session.request(
            method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            ssl=tls,
        )
        state.headers_received(response)
        location = response.headers.get("Location")
        if response.status not in REDIRECT_STATUSES or not location:
            return await _read(response, spec, state)
        response.release()
        state.response = None  # what arrives next is the next hop's
        if hop == MAX_REDIRECTS:
            raise TooManyRedirects(MAX_REDIRECTS)
        method, body, headers, url = next_hop(
            response.status, method, body, headers, url, location,
            dropped=cross_host_dropped(spec.secret_headers),
        )  # fmt: skip
    raise AssertionError("unreachable")


def _parse(text: str) -> URL:
    try:
        url = URL(text)
    except (ValueError, TypeError) as exc:
        raise InvalidTarget(f"Invalid URL: {exc}") from exc
    return url


def _checked(headers: dict[str, str]) -> dict[str, str]:
    """A copy of the headers, refused whole (as requests did) if one could split the request."""
    for name, value in headers.items():
        if not (isinstance(name, str) and isinstance(value, str)) or _BREAKS.search(name + value):
            raise InvalidTarget(f"Invalid header {str(name)[:100]!r}: text without line breaks")
    return dict(headers)


def _check_hop(url: URL) -> bool:
    """Refuse what cannot or may not be called; True if the host is an IP literal."""
    if url.scheme not in ("http", "https"):
        raise InvalidTarget(f"Only http:// or https:// URLs can be called, not {str(url)[:200]}")
    if not url.raw_host:
        raise InvalidTarget(f"Invalid URL: no host in {str(url)[:200]}")
    # aiohttp never asks the resolver about an IP literal.
    return guard.check_literal(url.raw_host)


async def _read(response: aiohttp.ClientResponse, spec: CallSpec, state: CallState) -> Outcome:
    state.reading = True
    cap = settings.SCHEDULER_RESPONSE_EXCERPT_BYTES
    content = response.content
    while chunk := await content.readany():
        state.received += len(chunk)
        room = cap - len(state.kept)
        if room > 0:
            state.kept += chunk[:room]
    response.release()
    outcome = Outcome(ok=True, request=spec.snapshot(), **_what_arrived(state))
    outcome.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    judge(outcome, spec, bytes(state.kept))
    outcome.result_summary = {
        "status_code": outcome.status_code,
        "duration_ms": 0,  # set once the whole call is timed
        "response_bytes": state.received,
    }
    return outcome


def _failed(spec: CallSpec, state: CallState, error_class: ErrorClass, message: str) -> Outcome:
    return Outcome(
        ok=False,
        error_class=error_class,
        error_message=message,
        request=spec.snapshot(),
        **_what_arrived(state),
    )


def _what_arrived(state: CallState) -> dict[str, Any]:
    response = state.response
    if response is None:
        return {}
    headers = response.headers
    return {
        "status_code": response.status,
        "response_headers": {
            name: ", ".join(headers.getall(name))[:500]
            for name in KEPT_RESPONSE_HEADERS
            if name in headers
        },
        "excerpt": bytes(state.kept).decode(_encoding(headers), errors="replace"),
        "response_bytes": state.received if state.reading else None,
    }


def _encoding(headers) -> str:
    """The charset requests would have decoded the excerpt with."""
    content_type = headers.get("Content-Type", "")
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                return _codec(value.strip("\"' "))
            except LookupError:
                break
    return "ISO-8859-1" if "text" in content_type else "utf-8"


@functools.lru_cache(maxsize=32)
def _codec(name: str) -> str:
    return codecs.lookup(name).name


def _timeout_message(spec: CallSpec, state: CallState) -> str:
    message = f"Timeout after {spec.timeout:g} s"
    return message + " while reading the response" if state.response is not None else message


@functools.lru_cache(maxsize=8)
def _tls_context(bundle: str | None) -> ssl.SSLContext:
    """requests' `verify=SCHEDULER_CA_BUNDLE or True`: that bundle (a file or a directory),
    else certifi's bundle as requests used (the system's when certifi is not installed)."""
    if bundle and os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    if bundle:
        return ssl.create_default_context(cafile=bundle)
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


# --- the synchronous door ----------------------------------------------------------------------


def call(spec: CallSpec) -> Outcome:
    """Synchronous send for code outside the engine (a handler's thread, notifications, previews,
    the foreground `runjob`). Works from any thread, including one that has no event loop.

    Each thread gets its own loop and Client, kept while the thread lives, so the calls one
    thread makes reuse kept-alive connections (as requests' per-thread Session did). From a
    thread whose loop is running (sync code called from async code), the call is made on a
    spare thread, since a loop cannot run inside another.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _thread_loop().send(spec)
    return _spare_threads().submit(call, spec).result()


class _ThreadLoop:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.client = Client(max_in_flight=1)
        weakref.finalize(self, _close_loop, self.loop, self.client)

    def send(self, spec: CallSpec) -> Outcome:
        # The loop sat still since the last call: let it take in the closes that arrived
        # meanwhile, so a connection the target dropped is not picked from the pool.
        self.loop.run_until_complete(asyncio.sleep(0))
        return self.loop.run_until_complete(self.client.send(spec))


def _close_loop(loop: asyncio.AbstractEventLoop, client: Client) -> None:
    if loop.is_closed() or loop.is_running():
        return
    try:
        loop.run_until_complete(client.close())
    except RuntimeError:  # another loop runs in the thread that collects this one
        return
    loop.close()


_local = threading.local()


def _thread_loop() -> _ThreadLoop:
    current: _ThreadLoop | None = getattr(_local, "loop", None)
    if current is None or current.pid != os.getpid():  # a forked child must not share epoll
        current = _local.loop = _ThreadLoop()
    return current


@functools.cache
def _spare_threads() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="calls-sync")
