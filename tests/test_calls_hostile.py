"""Every call ends by its total deadline, whatever the target does (tests/hostile.py).

Elapsed times are behaviour checks with a generous margin (deadline + 1 s), not benchmarks.
"""

from __future__ import annotations

import asyncio
import threading
import time

from calls.client import Client, call
from calls.spec import CallSpec, Outcome
from tests import hostile

DEADLINE = 2.0
MARGIN = 1.0


def timed_call(url: str, timeout: float = DEADLINE) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = call(CallSpec(method="GET", url=url, timeout=timeout))
    return outcome, time.monotonic() - started


def assert_ended_by_the_deadline(outcome: Outcome, elapsed: float) -> None:
    assert outcome.error_class == "timeout", (outcome.error_class, outcome.error_message)
    assert DEADLINE - 0.05 <= elapsed <= DEADLINE + MARGIN, elapsed
    assert outcome.timing["total_ms"] >= DEADLINE * 1000 - 50


def test_a_trickled_body_ends_at_the_deadline_keeping_what_arrived(serve):
    outcome, elapsed = timed_call(serve(hostile.trickle).url())

    assert_ended_by_the_deadline(outcome, elapsed)
    assert outcome.error_message == "Timeout after 2 s while reading the response"
    assert outcome.status_code == 200
    assert outcome.response_headers["content-length"] == "1000"
    assert 2 <= outcome.response_bytes <= 5  # one byte every 0.5 s for 2 s
    assert outcome.excerpt == "x" * outcome.response_bytes
    assert outcome.timing["ttfb_ms"] is not None and outcome.timing["connect_ms"] is not None


def test_an_endless_body_ends_at_the_deadline_counting_every_byte(serve, settings):
    settings.SCHEDULER_RESPONSE_EXCERPT_BYTES = 1000

    outcome, elapsed = timed_call(serve(hostile.endless).url())

    assert_ended_by_the_deadline(outcome, elapsed)
    assert outcome.status_code == 200
    assert outcome.response_bytes > 100_000  # counted, not kept
    assert outcome.excerpt == "y" * 1000


def test_a_silent_target_ends_at_the_deadline(serve):
    outcome, elapsed = timed_call(serve(hostile.silent).url())

    assert_ended_by_the_deadline(outcome, elapsed)
    assert outcome.error_message == "Timeout after 2 s"
    assert outcome.status_code is None and outcome.response_bytes is None
    assert outcome.timing["connect_ms"] is not None and outcome.timing["ttfb_ms"] is None


def test_headers_sent_one_byte_at_a_time_end_at_the_deadline(serve):
    outcome, elapsed = timed_call(serve(hostile.slow_headers).url())

    assert_ended_by_the_deadline(outcome, elapsed)
    assert outcome.status_code is None and outcome.timing["ttfb_ms"] is None


def test_a_tls_handshake_that_never_completes_ends_at_the_deadline(serve):
    outcome, elapsed = timed_call(serve(hostile.slow_tls, scheme="https").url())

    assert_ended_by_the_deadline(outcome, elapsed)
    assert outcome.timing["connect_ms"] is not None  # TCP was up
    assert outcome.timing["tls_ms"] is None and outcome.tls_expires_at is None


def test_the_deadline_covers_every_hop_of_a_slow_redirect_chain(serve):
    server = serve(hostile.slow_redirects)

    outcome, elapsed = timed_call(server.url())

    # 0.6 s a hop: a deadline per hop would let all 6 hops through (3.6 s).
    assert_ended_by_the_deadline(outcome, elapsed)
    assert 3 <= len(server.heads) <= 4
    assert outcome.timing["requests"] == len(server.heads)


def test_a_fast_redirect_loop_ends_at_the_redirect_limit(serve):
    server = serve(hostile.redirect_loop)

    outcome, elapsed = timed_call(server.url("/loop"))

    assert (outcome.error_class, outcome.error_message) == ("connection", "More than 5 redirects")
    assert len(server.heads) == 6 and elapsed < 1


# --- the cap and the loop --------------------------------------------------------------------


def test_calls_over_the_cap_queue_and_all_complete(serve):
    # Counted by the target, and uncounted before each reply: no call can start before the
    # call it waited for is uncounted (the server's own count lags a reply, and saw 51).
    answering, peak, lock, reply = 0, 0, threading.Lock(), hostile.answer(b"done")

    def counted(connection, head: bytes) -> bool:
        nonlocal answering, peak
        with lock:
            answering += 1
            peak = max(peak, answering)
        time.sleep(0.05)
        with lock:
            answering -= 1
        return reply(connection, head)

    server = serve(counted)

    async def main() -> list[Outcome]:
        client = Client(max_in_flight=50)
        try:
            spec = CallSpec(method="GET", url=server.url(), timeout=10)
            return await asyncio.gather(*(client.send(spec) for _ in range(200)))
        finally:
            await client.close()

    outcomes = asyncio.run(main())

    assert [o.error_message for o in outcomes if not o.ok] == []
    assert len(outcomes) == 200 and len(server.heads) == 200
    assert 10 <= peak <= 50


def test_the_deadline_starts_when_the_call_gets_its_slot(serve):
    server = serve(hostile.answer(b"done", delay=0.6))

    async def main() -> list[Outcome]:
        client = Client(max_in_flight=1)
        try:
            spec = CallSpec(method="GET", url=server.url(), timeout=1.5)
            return await asyncio.gather(*(client.send(spec) for _ in range(3)))
        finally:
            await client.close()

    started = time.monotonic()
    outcomes = asyncio.run(main())

    # The third waited 1.2 s for its slot, with its own 0.6 s more than its timeout, and still
    # succeeded (0.9 s to spare on a loaded machine).
    assert time.monotonic() - started >= 1.8
    assert [o.ok for o in outcomes] == [True, True, True]
    assert server.in_flight_peak == 1


def test_an_instant_call_beside_silent_ones_completes_at_once(serve, target):
    silent = serve(hostile.silent)

    async def main() -> tuple[Outcome, float]:
        client = Client(max_in_flight=100)
        stuck = [
            asyncio.create_task(client.send(CallSpec(method="GET", url=silent.url(), timeout=5)))
            for _ in range(20)
        ]
        try:
            while len(silent.heads) < 20:  # all 20 are in flight, waiting for an answer
                await asyncio.sleep(0.01)
            started = time.monotonic()
            outcome = await client.send(CallSpec(method="GET", url=target.url("/ok"), timeout=5))
            return outcome, time.monotonic() - started
        finally:
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
            await client.close()

    outcome, elapsed = asyncio.run(main())

    assert outcome.ok and outcome.status_code == 200
    assert elapsed < 0.5, elapsed
