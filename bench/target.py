"""The loopback target for the benchmarks: a small asyncio HTTP/1.1 server in its own process.

    python bench/target.py --port 8765 [--delay-ms 0]      # serve
    python bench/target.py --ceiling --port 8765          # load it (aiohttp client), print figures

It answers every path with 200 {"ok":true} (after --delay-ms, or /delay/<ms>/… for that path),
keeps connections alive, and records when each request's headers arrived (time.time()), its
path and its Idempotency-Key header. `GET /__arrivals` returns them as JSON ([[path, t], …];
`/__arrivals?keys=1`: [[path, t, key], …]); `POST /__reset` forgets them.

Hostile paths (DESIGN §9 neighbours), each recorded like any request:

    /slow/<s>/…     200 after s seconds
    /trickle/…      headers with Content-Length: 1000, then one byte every 0.5 s
    /endless/…      a chunked body that never ends (a 1 KiB chunk every 0.1 s)
    /silent/…       reads the request, never answers

For the hostile ones the target also notes when the client hung up: `GET /__hangups` returns
[[path, key, arrived, hung_up_at or null], …] (null: the client is still connected).
It must never be the bottleneck: `--ceiling` measures it with a tight aiohttp client loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

BODY = b'{"ok":true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    + BODY
)
TRICKLE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
ENDLESS_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)
ENDLESS_CHUNK = b"400\r\n" + b"x" * 1024 + b"\r\n"
HOSTILE = ("/trickle", "/endless", "/silent")


class Recorder:
    def __init__(self, delay_ms: float) -> None:
        self.delay = delay_ms / 1000
        self.arrivals: list[tuple[str, float, str]] = []
        # index into self.hangups by id(writer) while a hostile request is connected
        self.hangups: list[list] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                request_line, _, header_block = head.partition(b"\r\n")
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers = header_block.lower()
                length = _content_length(headers)
                if length:
                    await reader.readexactly(length)
                if path.startswith("/__"):
                    writer.write(self.control(method, path))
                    await writer.drain()
                    continue
                key = _header(headers, b"idempotency-key:")
                self.arrivals.append((path, arrived, key))
                if path.startswith(HOSTILE):
                    await self.hostile(path, key, arrived, reader, writer)
                    break
                delay = self.delay
                if path.startswith("/delay/"):
                    delay = float(path.split("/")[2]) / 1000
                elif path.startswith("/slow/"):
                    delay = float(path.split("/")[2])
                if delay:
                    await asyncio.sleep(delay)
                writer.write(RESPONSE)
                await writer.drain()
                if b"connection: close" in headers:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def hostile(self, path, key, arrived, reader, writer) -> None:
        """Misbehave until the client hangs up; note when it did."""
        row = [path, key, arrived, None]
        self.hangups.append(row)
        # Nothing more is sent by a client that waits for our answer: read() ends at its EOF.
        gone = asyncio.ensure_future(reader.read(65536))
        try:
            if path.startswith("/silent"):
                await gone
            elif path.startswith("/trickle"):
                writer.write(TRICKLE_HEAD)
                for _ in range(1000):
                    if await _hung_up(gone, writer, 0.5):
                        break
                    writer.write(b" ")
            else:
                writer.write(ENDLESS_HEAD)
                while not await _hung_up(gone, writer, 0.1):
                    writer.write(ENDLESS_CHUNK)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if gone.done() or writer.transport.is_closing():
                row[3] = time.time()
            gone.cancel()

    def control(self, method: str, path: str) -> bytes:
        if path == "/__reset":
            self.arrivals.clear()
            self.hangups.clear()
            body = b"{}"
        elif path == "/__ceiling":
            return RESPONSE
        elif path == "/__hangups":
            body = json.dumps(self.hangups).encode()
        elif path == "/__arrivals?keys=1":
            body = json.dumps(self.arrivals).encode()
        else:
            body = json.dumps([(p, at) for p, at, _ in self.arrivals]).encode()
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )


async def _hung_up(gone: asyncio.Future, writer: asyncio.StreamWriter, wait: float) -> bool:
    """True once the client has closed; otherwise after `wait` seconds, False."""
    await asyncio.wait([gone], timeout=wait)
    return gone.done() or writer.transport.is_closing()


def _header(headers: bytes, marker: bytes) -> str:
    at = headers.find(marker)
    if at < 0:
        return ""
    end = headers.find(b"\r\n", at)
    return headers[at + len(marker) : end if end >= 0 else None].strip().decode("latin-1")


def _content_length(headers: bytes) -> int:
    return int(_header(headers, b"content-length:") or 0)


async def serve(port: int, delay_ms: float) -> None:
    recorder = Recorder(delay_ms)
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


async def ceiling(port: int, connections: int, seconds: float) -> dict:
    """A tight aiohttp client loop: `connections` keep-alive connections, each sending its next
    request as soon as the last answer is read, for `seconds`. Requests/s and this process's CPU
    per request (the aiohttp client's cost)."""
    import aiohttp

    done = 0
    url = f"http://127.0.0.1:{port}/__ceiling"
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(stop_at: float) -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                async with session.get(url) as response:
                    await response.read()
                done += 1

        await asyncio.gather(*(client(time.monotonic() + 0.3) for _ in range(connections)))
        done = 0
        cpu, started = time.process_time(), time.monotonic()
        await asyncio.gather(*(client(started + seconds) for _ in range(connections)))
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    return {
        "requests": done,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(done / elapsed),
        "client_cpu_ms_per_request": round(cpu * 1000 / done, 4) if done else None,
        "client_cpu_cores": round(cpu / elapsed, 2),
        "connections": connections,
    }


def _loop_policy() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay-ms", type=float, default=0)
    parser.add_argument("--ceiling", action="store_true", help="measure a running target")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.ceiling:
        # The client runs on asyncio's own loop, as the execution engine's would.
        print(json.dumps(asyncio.run(ceiling(args.port, args.connections, args.seconds))))
    else:
        _loop_policy()
        asyncio.run(serve(args.port, args.delay_ms))


if __name__ == "__main__":
    main()
