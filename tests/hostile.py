"""Misbehaving HTTP servers on 127.0.0.1, for the client's deadline and cap.

Raw sockets, one thread per connection, so that a server can do what no real framework lets
it: stop mid-header, trickle a body, never finish a TLS handshake. Each behaviour is a
function of (connection, request head) that returns when it is done or the server closes.

trickle        200 with Content-Length: 1000, then one byte every 0.5 s
endless        200, chunked, chunks for ever
silent         reads the request, never answers
slow_headers   the status line, then one header byte every 0.3 s
slow_tls       accepts TCP and sends nothing: a client's TLS handshake never completes
slow_redirects 302 to the next hop after 0.6 s, for ever (a chain no deadline per hop stops)
redirect_loop  302 to itself at once
answer(...)    a well-behaved response (a given status, headers, body), closing or kept alive
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

Behaviour = Callable[["Connection", bytes], None]


class Connection:
    def __init__(self, sock: socket.socket, server: HostileServer) -> None:
        self.sock, self.server = sock, server

    def send(self, data: bytes) -> bool:
        """False once the client is gone or the server is closing."""
        if self.server.closing.is_set():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def pause(self, seconds: float) -> bool:
        """Wait, unless the server closes meanwhile (then False)."""
        return not self.server.closing.wait(seconds)

    def read_head(self) -> bytes:
        """One request's head (through the blank line); b"" if the client closed. A request
        body, if any, is read too and dropped."""
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return b""
            if not chunk:
                return b""
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = _content_length(head)
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return head


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or 0)
    return 0


class HostileServer:
    """Serves `behaviour` on every connection; `heads` are the request heads it received
    (`heads_at` when, and `accepted_at` when each connection came), `in_flight_peak` the most
    connections it was answering at once."""

    def __init__(self, behaviour: Behaviour, *, scheme: str = "http") -> None:
        self.behaviour, self.scheme = behaviour, scheme
        self.closing = threading.Event()
        self.heads: list[bytes] = []
        self.heads_at: list[float] = []
        self.accepted_at: list[float] = []
        self.in_flight = self.in_flight_peak = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._socks.append(sock)
                self.accepted_at.append(time.time())
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        connection = Connection(sock, self)
        try:
            while not self.closing.is_set():
                head = b"" if self.scheme == "https" else connection.read_head()
                if self.scheme == "http" and not head:
                    return
                with self._lock:
                    self.heads.append(head)
                    self.heads_at.append(time.time())
                    self.in_flight += 1
                    self.in_flight_peak = max(self.in_flight_peak, self.in_flight)
                try:
                    keep_alive = self.behaviour(connection, head)
                finally:
                    with self._lock:
                        self.in_flight -= 1
                if not keep_alive:
                    return
        finally:
            sock.close()

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        with self._lock:
            for sock in self._socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def path_of(head: bytes) -> str:
    return head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "/"


# --- behaviours (return True to read the next request on the same connection) ---------------


def trickle(connection: Connection, head: bytes) -> bool:
    connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        if not (connection.pause(0.5) and connection.send(b"x")):
            break
    return False


def endless(connection: Connection, head: bytes) -> bool:
    connection.send(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (16384, b"y" * 16384)
    while connection.send(chunk) and connection.pause(0.005):
        pass
    return False


def silent(connection: Connection, head: bytes) -> bool:
    while connection.pause(0.1):
        pass
    return False


def slow_headers(connection: Connection, head: bytes) -> bool:
    connection.send(b"HTTP/1.1 200 OK\r\n")
    for byte in b"X-Slow: " + b"z" * 1000:
        if not (connection.pause(0.3) and connection.send(bytes([byte]))):
            break
    return False


slow_tls = silent  # served on an https:// URL: the ClientHello is never answered


def slow_redirects(connection: Connection, head: bytes) -> bool:
    hop = int(path_of(head).rsplit("/", 1)[-1] or 0)  # /hop/<n>
    if connection.pause(0.6):
        connection.send(
            f"HTTP/1.1 302 Found\r\nLocation: /hop/{hop + 1}\r\nContent-Length: 0\r\n\r\n".encode()
        )
    return True


def redirect_loop(connection: Connection, head: bytes) -> bool:
    connection.send(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")
    return True


def answer(
    body: bytes = b"ok",
    *,
    status: str = "200 OK",
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
    keep_alive: bool = False,
) -> Behaviour:
    """A proper response, after `delay` seconds; with keep_alive the connection serves on."""
    fields = {"Content-Length": str(len(body)), **(headers or {})}
    if not keep_alive:
        fields["Connection"] = "close"
    response = f"HTTP/1.1 {status}\r\n".encode()
    response += b"".join(f"{name}: {value}\r\n".encode() for name, value in fields.items())
    response += b"\r\n" + body

    def behaviour(connection: Connection, head: bytes) -> bool:
        if delay and not connection.pause(delay):
            return False
        connection.send(response)
        return keep_alive

    return behaviour


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
