"""Connections opened just before an instant, so that at the instant only the requests go out.

When hundreds of calls are due at one instant, each would otherwise open its connection then:
the event loop takes every call's lookup, TCP connect and TLS handshake in turn before most of
the requests are written, and the last request leaves a few hundred milliseconds late (the
precision bench at 1,000 at once: every request 0.2–0.26 s after the slot). So the engine tells
the client, for each run held for an instant, where it will call (`Client.expect`); OPEN_BEFORE
the instant, the client opens that many connections to each origin — at most its cap of calls in
flight, OPEN_AT_ONCE at a time — and leaves them in its pool, where the calls find them.

Only checked addresses are connected to (the same guarded connector and resolver as the calls);
a connection that cannot be opened is simply left for its call to try. Its lookup, connect and
TLS phases are handed to the call that uses it (`GuardedConnector.take_opened`), so the call's
timing still shows them. Idle connections are held at most OPEN_BEFORE plus the time the calls
take to reach them: not long enough to trouble a server's keep-alive timeout (nginx 75 s,
gunicorn 2 s, Node 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import datetime

import aiohttp
from yarl import URL

from calls import guard
from calls.timing import CallState, current_call

OPEN_BEFORE = 0.5
# An instant closer than this is not worth it: the connections would race the calls.
MIN_LEAD = 0.15
OPEN_AT_ONCE = 64
CONNECT_TIMEOUT = 5.0


class Preconnector:
    def __init__(self, session: aiohttp.ClientSession, tls, cap: int) -> None:
        self._session = session
        self._tls = tls
        self._cap = cap
        self._expected: Counter[tuple[str, float]] = Counter()
        self._tasks: set[asyncio.Task] = set()

    def expect(self, url: str, instant: datetime) -> None:
        """A call to `url` is to be sent at `instant`."""
        lead = instant.timestamp() - time.time()
        origin = _origin(url)
        if origin is None or lead < MIN_LEAD:
            return
        key = (origin, instant.timestamp())
        if key not in self._expected:
            loop = asyncio.get_running_loop()
            loop.call_later(max(0.0, lead - OPEN_BEFORE), self._start, key)
        self._expected[key] += 1

    def _start(self, key: tuple[str, float]) -> None:
        task = asyncio.get_running_loop().create_task(self._open(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, key: tuple[str, float]) -> None:
        origin, _ = key
        count = min(self._expected.pop(key, 0), self._cap)
        url = URL(origin)
        try:
            literal = guard.check_literal(url.raw_host)
        except Exception:  # noqa: BLE001 — refused: the call itself says why
            return
        request = aiohttp.ClientRequest("GET", url, loop=asyncio.get_running_loop(), ssl=self._tls)

        held: list = []

        async def open_one() -> None:
            state = CallState()
            state.new_hop(https=url.scheme == "https", literal=literal)
            token = current_call.set(state)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    connection = await self._session.connector.connect(
                        request, [], aiohttp.ClientTimeout(total=CONNECT_TIMEOUT)
                    )
            except Exception:  # noqa: BLE001 — best effort: the call will connect itself
                return
            finally:
                current_call.reset(token)
            if state.opened:  # new: its call's timing shows its phases (a pooled one has none)
                self._session.connector.keep_opened(connection.protocol, state)
            held.append(connection)

        async def opener(n: int) -> None:
            for _ in range(n):
                await open_one()

        # OPEN_AT_ONCE openers, each opening its share in turn. Each connection is held until
        # all are open: released at once, the pool's idle connections would be handed out
        # again and again, and an origin already holding one would get no more.
        share, rest = divmod(count, OPEN_AT_ONCE)
        sizes = [share + (1 if i < rest else 0) for i in range(min(count, OPEN_AT_ONCE))]
        try:
            with contextlib.suppress(Exception):
                await asyncio.gather(*(opener(n) for n in sizes))
        finally:
            for connection in held:
                connection.release()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _origin(url: str) -> str | None:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        return None
    return str(parsed.origin())
