"""calls.client: what one call sends and what its Outcome holds (real loopback servers)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time

import pytest

from calls import failures, guard
from calls.client import Client, call
from calls.spec import USER_AGENT, CallSpec
from tests import hostile
from tests.target import free_port


def get(url: str, **fields) -> CallSpec:
    return CallSpec(method=fields.pop("method", "GET"), url=url, **{"timeout": 5, **fields})


def test_a_successful_call_records_status_kept_headers_excerpt_and_summary(target, settings):
    settings.SCHEDULER_RESPONSE_EXCERPT_BYTES = 100

    outcome = call(get(target.url("/big/5000")))

    assert outcome.ok and outcome.error_class == ""
    assert outcome.status_code == 200
    assert outcome.response_headers["content-type"] == "text/plain"
    assert outcome.response_headers["content-length"] == "5000"
    assert "set-cookie" not in outcome.response_headers
    assert outcome.excerpt == "x" * 100 and outcome.response_bytes == 5000
    assert outcome.result_summary == {
        "status_code": 200,
        "duration_ms": outcome.duration_ms,
        "response_bytes": 5000,
    }
    assert outcome.request["url"] == target.url("/big/5000")
    assert set(outcome.timing) == {
        "dns_ms",
        "connect_ms",
        "tls_ms",
        "ttfb_ms",
        "total_ms",
        "reused",
        "requests",
        "connections",
    }
    assert target.received[0].headers["User-Agent"] == USER_AGENT


def test_a_body_is_sent_as_given_without_an_invented_content_type(target):
    call(get(target.url("/ok"), method="POST", body=b'{"a": 1}'))
    call(get(target.url("/ok"), method="PUT", body="é", headers={"Content-Type": "text/plain"}))

    raw, text = target.received
    assert (raw.method, raw.body) == ("POST", b'{"a": 1}')
    assert "Content-Type" not in raw.headers
    assert (text.body, text.headers["Content-Type"]) == ("é".encode(), "text/plain")


def test_status_and_must_contain_are_judged(target):
    failed = call(get(target.url("/status/503")))
    assert (failed.ok, failed.error_class, failed.error_message) == (
        False,
        "http_status",
        "HTTP 503; expected 200-299",
    )
    assert failed.retry_after == 0.0 and failed.retryable

    missing = call(get(target.url("/text/hello"), must_contain="bye"))
    assert (missing.ok, missing.error_class) == (False, "assertion")
    assert call(get(target.url("/text/hello"), must_contain="ell")).ok


def test_a_gzipped_body_is_decompressed_as_requests_did(serve):
    body = b"compressible " * 200
    server = serve(hostile.answer(gzip.compress(body), headers={"Content-Encoding": "gzip"}))

    outcome = call(get(server.url()))

    assert outcome.ok and outcome.excerpt.startswith("compressible compressible")
    assert outcome.response_bytes == len(body)
    assert outcome.response_headers["content-encoding"] == "gzip"


def test_cookies_are_not_kept_between_calls(serve):
    server = serve(hostile.answer(headers={"Set-Cookie": "session=abc; Path=/"}))

    async def twice():
        one = Client()
        try:
            for _ in range(2):
                await one.send(get(server.url()))
        finally:
            await one.close()

    asyncio.run(twice())

    assert len(server.heads) == 2 and b"cookie" not in server.heads[1].lower()


def test_a_303_after_a_post_is_followed_with_a_get_and_no_body(target):
    spec = get(
        target.url(f"/redirect?to={target.url('/ok')}"),
        method="POST",
        body=b"payload",
        headers={"Content-Type": "application/json"},
    )

    outcome = call(spec)

    assert outcome.ok and outcome.timing["requests"] == 2
    first, second = target.received
    assert (first.method, first.body) == ("POST", b"payload")
    assert (second.method, second.body, second.path) == ("GET", b"", "/ok")
    assert "Content-Type" not in second.headers


def test_a_refused_connection_is_a_connection_error():
    outcome = call(get(f"http://127.0.0.1:{free_port()}/"))

    assert (outcome.ok, outcome.error_class) == (False, "connection")
    assert outcome.error_message == "Connection failed: [Errno 111] Connection refused"
    assert outcome.retryable


def test_a_name_that_does_not_resolve_is_a_dns_error(monkeypatch):
    def no_such_host(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(guard, "resolver", no_such_host)

    outcome = call(get("https://no-such-host.example/x"))

    assert (outcome.error_class, outcome.error_message) == (
        "dns",
        "DNS lookup failed: no-such-host.example: Name or service not known",
    )
    assert outcome.timing["dns_ms"] is None and outcome.timing["connect_ms"] is None


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("ftp://example.com/", {}),
        ("http:///no-host", {}),
        ("http://127.0.0.1:9/", {"X-Evil": "a\r\nInjected: yes"}),
    ],
)
def test_what_cannot_be_sent_is_invalid(url, headers):
    outcome = call(get(url, headers=headers))

    assert (outcome.ok, outcome.error_class) == (False, "invalid"), outcome.error_message
    assert not outcome.retryable


def test_a_closed_client_answers_with_an_outcome(target):
    async def main():
        closed = Client()
        await closed.send(get(target.url("/ok")))
        await closed.close()
        return await closed.send(get(target.url("/ok")))

    outcome = asyncio.run(main())

    assert (outcome.ok, outcome.error_class) == (False, "connection")


# --- the synchronous door ---------------------------------------------------------------------


def test_call_works_from_a_thread_without_a_loop_and_reuses_its_connection(target):
    results = []

    def in_a_thread():
        results.extend(call(get(target.url("/ok"))) for _ in range(2))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(10)

    first, second = results
    assert first.ok and second.ok
    assert first.timing["reused"] is False and first.timing["connections"] == 1
    assert second.timing["reused"] is True and second.timing["connections"] == 0


def test_call_works_from_inside_a_running_loop(target):
    async def sync_code_called_from_async_code():
        return call(get(target.url("/ok")))

    assert asyncio.run(sync_code_called_from_async_code()).ok


def test_a_connection_the_target_closed_while_idle_is_not_reused_for_a_post(serve):
    # Kept alive, then closed by the server 0.1 s later: a POST sent on it would be lost.
    def answer_then_hang_up(connection, head) -> bool:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        connection.pause(0.1)
        return False

    server = serve(answer_then_hang_up)
    results = []

    def in_a_thread():
        results.append(call(get(server.url(), method="POST", body=b"1")))
        assert hostile.wait_until(lambda: server.in_flight == 0)
        time.sleep(0.05)  # the FIN is on its way to the idle client
        results.append(call(get(server.url(), method="POST", body=b"2")))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(10)

    first, second = results
    assert first.ok and second.ok, second.error_message
    assert second.timing["connections"] == 1  # a new connection, not the dead one


def test_a_client_keeps_connections_alive_across_calls(target):
    async def main():
        one = Client()
        try:
            return [await one.send(get(target.url("/ok"))) for _ in range(3)]
        finally:
            await one.close()

    outcomes = asyncio.run(main())

    assert [o.timing["reused"] for o in outcomes] == [False, True, True]
    assert [o.timing["connections"] for o in outcomes] == [1, 0, 0]


def test_the_classifier_never_raises_on_unexpected_errors():
    assert failures.classify(RuntimeError("boom")) == ("connection", "RuntimeError: boom")
