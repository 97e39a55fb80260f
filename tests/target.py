"""A real HTTP server on 127.0.0.1 for tests: records what it receives, answers by path.

/ok                  200 {"ok": true}
/status/<code>       that status (a Retry-After header on 429/503: ?retry_after=N, default 0)
/slow/<seconds>      waits, then 200
/big/<bytes>         a body of that many bytes
/text/<words>        200 with the words as the body
/flaky/<n>           500 for the first n calls, then 200
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

XSS_BODY = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)
    # When the answer was written (how many requests it held at once: tests/test_flow_clusters.py)
    done: float | None = None

    def json(self):
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    # Dozens of runs connect at one instant: with the default backlog of 5 the kernel drops the
    # rest of the SYNs, and they arrive a second later (the client's retransmission).
    request_queue_size = 128


class Target:
    def __init__(self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        """`tls`: a server context to speak HTTPS with (the handshake runs in the handler);
        `host`: the loopback address to listen on (127.0.0.2 is another host)."""
        self.received: list[Received] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received = Received(self.command, self.path, dict(self.headers.items()), body)
                with target._lock:
                    target.received.append(received)
                    target._counts[self.path] = target._counts.get(self.path, 0) + 1
                    count = target._counts[self.path]
                target.respond(self, count)
                received.done = time.time()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        self.host = host
        self.server = _Server((host, 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if tls is not None else "http"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/ok") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def respond(self, request: BaseHTTPRequestHandler, count: int) -> None:
        parts = request.path.split("?")[0].strip("/").split("/")
        route, arg = parts[0], (parts[1] if len(parts) > 1 else "")
        status, body, headers = 200, b'{"ok": true}', {"Content-Type": "application/json"}
        if route == "status":
            status = int(arg)
            body = json.dumps({"status": status}).encode()
            if status in (429, 503):
                query = parse_qs(urlsplit(request.path).query)
                headers["Retry-After"] = query.get("retry_after", ["0"])[0]
        elif route == "slow":
            time.sleep(float(arg))
        elif route == "big":
            body = b"x" * int(arg)
            headers = {"Content-Type": "text/plain"}
        elif route == "text":
            body = arg.encode()
            headers = {"Content-Type": "text/plain"}
        elif route == "flaky":
            status = 500 if count <= int(arg) else 200
        elif route == "redirect":
            query = parse_qs(urlsplit(request.path).query)
            status, body = int(query.get("status", ["302"])[0]), b""
            headers = {"Location": query["to"][0]}
        elif route == "loop":
            status, body, headers = 302, b"", {"Location": "/loop"}
        elif route == "html":
            body = XSS_BODY.encode()
            headers = {"Content-Type": "text/html"}
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            try:
                request.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A port with nothing listening on it (for connection-refused tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
