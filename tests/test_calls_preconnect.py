"""Connections for an instant's calls are opened just before it (calls/preconnect.py): at the
instant only the requests go out, and each call's timing still shows its connection's phases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from calls.client import Client
from calls.spec import CallSpec
from tests import hostile


def _at(instant: datetime, spec: CallSpec, expected: int, calls: int):
    async def main():
        client = Client(max_in_flight=10)
        try:
            for _ in range(expected):
                client.expect(spec.url, instant)
            await asyncio.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))
            return await asyncio.gather(*(client.send(spec) for _ in range(calls)))
        finally:
            await client.close()

    return asyncio.run(main())


def test_an_instants_connections_are_open_before_it_and_its_requests_go_at_it(serve):
    server = serve(hostile.answer(b"ok", keep_alive=True))
    instant = datetime.now(UTC) + timedelta(seconds=0.8)
    spec = CallSpec(method="GET", url=server.url("/due"), timeout=5)

    outcomes = _at(instant, spec, expected=3, calls=3)

    assert [outcome.ok for outcome in outcomes] == [True, True, True]
    assert len(server.accepted_at) == 3  # no call opened one of its own
    assert all(at < instant.timestamp() for at in server.accepted_at)
    assert all(at >= instant.timestamp() for at in server.heads_at)
    for outcome in outcomes:
        assert outcome.timing["connections"] == 1 and outcome.timing["connect_ms"] is not None
        assert outcome.timing["reused"] is False


def test_an_instant_too_close_is_left_to_the_calls(serve):
    server = serve(hostile.answer(b"ok", keep_alive=True))
    instant = datetime.now(UTC) + timedelta(seconds=0.05)
    spec = CallSpec(method="GET", url=server.url("/due"), timeout=5)

    outcomes = _at(instant, spec, expected=2, calls=2)

    assert [outcome.ok for outcome in outcomes] == [True, True]
    assert all(at >= instant.timestamp() for at in server.accepted_at)


def test_no_connection_is_opened_where_a_call_may_not_go(serve, settings):
    settings.SCHEDULER_ALLOWED_NETWORKS = []  # loopback is private: refused
    server = serve(hostile.answer(b"ok", keep_alive=True))
    instant = datetime.now(UTC) + timedelta(seconds=0.4)
    spec = CallSpec(method="GET", url=server.url("/due"), timeout=5)

    (outcome,) = _at(instant, spec, expected=1, calls=1)

    assert not outcome.ok and outcome.error_class == "blocked"
    assert server.accepted_at == []


def test_an_origin_with_idle_connections_gets_the_rest_opened_too(serve):
    """One connection is idle in the pool from an earlier call: the instant's three calls still
    find three open connections (the idle one reused, two opened), none opened at the instant."""
    server = serve(hostile.answer(b"ok", keep_alive=True))
    spec = CallSpec(method="GET", url=server.url("/due"), timeout=5)

    async def main():
        client = Client(max_in_flight=10)
        try:
            first = await client.send(spec)
            instant = datetime.now(UTC) + timedelta(seconds=0.8)
            for _ in range(3):
                client.expect(spec.url, instant)
            await asyncio.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))
            return instant, first, await asyncio.gather(*(client.send(spec) for _ in range(3)))
        finally:
            await client.close()

    instant, first, outcomes = asyncio.run(main())

    assert first.ok and all(outcome.ok for outcome in outcomes)
    assert len(server.accepted_at) == 3  # the earlier call's, and two opened for the instant
    assert all(at < instant.timestamp() for at in server.accepted_at)
    assert sorted(outcome.timing["reused"] for outcome in outcomes) == [False, False, True]
