"""The loopback target for the benchmarks: a small asyncio HTTP/1.1 server in its own process.

    python bench/target.py --port 8765 [--delay-ms 0]      # serve
    python bench/target.py --ceiling --port 8765          # load it and print its requests/s

It answers every path with 200 {"ok":true} (after --delay-ms, or /delay/<ms>/… for that path),
keeps connections alive, and records when each request's headers arrived (time.time()) and its
path. `GET /__arrivals` returns them as JSON ([[path, t], …]); `POST /__reset` forgets them.
It must never be the bottleneck: `--ceiling` measures its own rate with keep-alive clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

BODY = b'{"ok":true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    + BODY
)


class Recorder:
    def __init__(self, delay_ms: float) -> None:
        self.delay = delay_ms / 1000
        self.arrivals: list[tuple[str, float]] = []

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
                else:
                    self.arrivals.append((path, arrived))
                    delay = self.delay
                    if path.startswith("/delay/"):
                        delay = float(path.split("/")[2]) / 1000
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

    def control(self, method: str, path: str) -> bytes:
        if path == "/__reset":
            self.arrivals.clear()
            body = b"{}"
        else:
            body = json.dumps(self.arrivals).encode()
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )


def _content_length(headers: bytes) -> int:
    marker = b"content-length:"
    at = headers.find(marker)
    if at < 0:
        return 0
    end = headers.find(b"\r\n", at)
    return int(headers[at + len(marker) : end if end >= 0 else None].strip() or 0)


async def serve(port: int, delay_ms: float) -> None:
    recorder = Recorder(delay_ms)
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


async def ceiling(port: int, connections: int, seconds: float) -> float:
    """Requests/s the target answers to `connections` keep-alive clients (this process's view)."""
    done = 0
    stop_at = time.monotonic() + seconds
    request = b"GET /__ceiling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def client() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(_content_length(head.lower()))
            done += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.monotonic() - started)


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
    args = parser.parse_args()
    _loop_policy()
    if args.ceiling:
        rate = asyncio.run(ceiling(args.port, args.connections, args.seconds))
        print(json.dumps({"requests_per_s": round(rate)}))
    else:
        asyncio.run(serve(args.port, args.delay_ms))


if __name__ == "__main__":
    main()
