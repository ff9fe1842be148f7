"""A real webhook receiver on 127.0.0.1 with scripted behaviour per path, for tests and the local demo.

Each path plays a script of :class:`Step` s, one per request, the last step repeating:
status codes, delays (to trip read timeouts), Retry-After and other headers, huge bodies
(to trip the size cap), redirects, and connection resets mid-response. Every request is
recorded with its Standard Webhooks signature verdict when the receiver knows the secret.

Responses go out in one ``send`` on a TCP_NODELAY socket: with Nagle on, a keep-alive
client waits about 45 ms per request for the delayed ACK.

The receiver also measures how many requests each host (the ``Host`` header's name) had in
flight at once, from the moment a request's body was read until its response was sent:
:meth:`WebhookReceiver.peak_in_flight` says whether per-host back-pressure held.

    with WebhookReceiver(secret="whsec_...") as rx:
        rx.script("/flaky", [Step(503), Step(200)])
        ...  # deliver to rx.url("/flaky")
        assert [r.signature_valid for r in rx.requests_for("/flaky")] == [True, True]

Manual run: ``notiflow receiver --port 8080 --secret whsec_... --script /flaky=503,200`` (or
``python -m notiflow.demo.receiver`` with the same options).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from urllib.parse import urlsplit

from lambdas.deliver import signing
from notiflow.shared.loopback import LoopbackHTTPServer

HUGE_CHUNK: Final = 64 * 1024
_RESET_PREFIX: Final = b"HTTP/1.1 200 OK\r\nContent-"
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_GONE_POLL_SECONDS: Final = 0.05


@dataclass(frozen=True)
class Step:
    """How the receiver answers one request.

    ``delay`` sleeps before answering; ``drip`` sends the body one byte at a time with
    that many seconds between bytes (a slow-drip body); ``reset`` sends part of the
    status line and headers, then aborts the connection with an RST; ``huge`` sends a
    body of that many bytes; ``redirect`` answers 301 (or the given 3xx) with that Location.
    """

    status: int = 200
    delay: float = 0.0
    drip: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str = b""
    reset: bool = False
    huge: int | None = None
    redirect: str | None = None

    def __post_init__(self) -> None:
        if self.redirect is not None and not 300 <= self.status < 400:
            object.__setattr__(self, "status", 301)
        if not 100 <= self.status <= 999:
            raise ValueError(f"status must be 100..999, got {self.status}")

    @property
    def body_bytes(self) -> bytes:
        """The body as bytes (text is UTF-8 encoded)."""
        return self.body.encode() if isinstance(self.body, str) else self.body


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the receiver saw it; header names are lower-cased."""

    path: str
    query: str
    method: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool | None
    received_at: float
    client_port: int
    status: int | None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class _Server(LoopbackHTTPServer):
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log = self.server.receiver.log
        if log is not None:
            log(f"{self.address_string()} {format % args}")

    def _handle(self) -> None:
        body = self._read_body()
        if body is None:
            self.close_connection = True
            return
        if self.headers.get("Connection", "").lower() == "close":
            self.close_connection = True
        receiver = self.server.receiver
        host = receiver._enter(self.headers.get("Host", ""))
        try:
            step = receiver._take(self, body)
            self._respond(step)
        finally:
            receiver._leave(host)

    do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _handle

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _wait_unless_gone(self, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as the receiver stops or the client hung up (it gave up waiting).

        A client that timed out is no longer delivering, so the request stops counting as in flight
        then, not when its scripted delay would have ended.
        """
        stopping = self.server.receiver._stopping
        if isinstance(self.connection, ssl.SSLSocket):  # no MSG_PEEK on TLS sockets: wait the delay out
            return stopping.wait(seconds)
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if stopping.is_set():
                return True
            readable, _, _ = select.select([self.connection], [], [], min(remaining, _GONE_POLL_SECONDS))
            if readable:
                try:
                    gone = self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    return True
                return stopping.wait(max(0.0, deadline - time.monotonic()))  # bytes pending: not a hang-up
        return stopping.is_set()

    def _respond(self, step: Step) -> None:
        if step.delay and self._wait_unless_gone(step.delay):
            self.close_connection = True
            return
        try:
            if step.reset:
                self._reset()
            elif step.huge is not None:
                self._send(step, declared_length=step.huge)
                sent = 0
                while sent < step.huge:
                    size = min(HUGE_CHUNK, step.huge - sent)
                    self.wfile.write(b"x" * size)
                    sent += size
            elif step.drip:
                body = step.body_bytes
                self._send(step, declared_length=len(body))
                for index in range(len(body)):
                    if self._wait_unless_gone(step.drip):
                        self.close_connection = True
                        break
                    self.wfile.write(body[index : index + 1])
            else:
                self._send(step)
        except OSError:
            self.close_connection = True

    def _send(self, step: Step, declared_length: int | None = None) -> None:
        body = b"" if declared_length is not None or step.status in _NO_BODY_STATUSES else step.body_bytes
        try:
            phrase = HTTPStatus(step.status).phrase
        except ValueError:
            phrase = "Scripted"
        lines = [f"HTTP/1.1 {step.status} {phrase}", f"Date: {self.date_time_string()}", "Server: notiflow-receiver"]
        if step.status not in _NO_BODY_STATUSES:
            lines.append(f"Content-Length: {declared_length if declared_length is not None else len(body)}")
            if declared_length is not None or body:
                kind = "application/json" if body[:1] in (b"{", b"[") else "text/plain"
                lines.append(f"Content-Type: {kind}")
        if step.redirect is not None:
            lines.append(f"Location: {step.redirect}")
        lines.extend(f"{name}: {value}" for name, value in step.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.log_request(step.status, len(body))

    def _reset(self) -> None:
        """Abort mid-response: part of the headers, then RST (SO_LINGER 0) instead of an orderly FIN."""
        self.close_connection = True
        self.wfile.write(_RESET_PREFIX)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the buffered reader holds a reference that would delay the real close
        self.connection.close()


class WebhookReceiver:
    """Thread-safe scripted HTTP receiver; use as a context manager or call :meth:`start` / :meth:`close`."""

    def __init__(
        self,
        secret: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        enforce_signatures: bool = False,
        default: Step | None = None,
        log: Callable[[str], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._keys = signing.parse_secrets(secret) if secret else []
        self._address = (host, port)
        self._enforce = enforce_signatures
        self._default = default or Step(200)
        self.log = log
        self._ssl_context = ssl_context
        self._lock = threading.Condition()
        self._scripts: dict[str, list[Step]] = {}
        self._cursor: dict[str, int] = {}
        self._records: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._in_flight: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> WebhookReceiver:
        """Bind and serve in a background thread."""
        self._server = _Server(self._address, self)
        if self._ssl_context is not None:
            self._server.socket = self._ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, wake delayed responses and drop open keep-alive connections."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("receiver is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https`` when serving TLS)."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._address[0]}:{self.port}"

    def url(self, path: str = "/") -> str:
        """Absolute URL of ``path`` on this receiver."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def script(self, path: str, steps: Step | Iterable[Step]) -> None:
        """Answer the next requests to ``path`` with ``steps`` in order; the last one repeats."""
        script = [steps] if isinstance(steps, Step) else list(steps)
        if not script:
            raise ValueError("a script needs at least one step")
        with self._lock:
            self._scripts[path] = script
            self._cursor[path] = 0

    def fix(self, path: str, steps: Step | Iterable[Step] = Step(200)) -> None:
        """Change a path's behaviour from now on, e.g. an operator repairing an endpoint before a redrive."""
        self.script(path, steps)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Requests received for ``path`` (query string ignored)."""
        with self._lock:
            return [record for record in self._records if record.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``path`` received ``count`` requests; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                records = [record for record in self._records if record.path == path]
                if len(records) >= count:
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{path} received {len(records)} of {count} requests")
                self._lock.wait(remaining)

    def in_flight(self, host: str) -> int:
        """Requests ``host`` has in flight now (received, not yet answered, client still waiting)."""
        with self._lock:
            return self._in_flight.get(host.lower(), 0)

    def peak_in_flight(self, host: str | None = None) -> int:
        """Most requests in flight at once for ``host`` (the Host header's name, port left out), or any host."""
        with self._lock:
            if host is None:
                return max(self._peak.values(), default=0)
            return self._peak.get(host.lower(), 0)

    def _enter(self, host_header: str) -> str:
        host = urlsplit(f"//{host_header}").hostname or host_header.lower()
        with self._lock:
            self._in_flight[host] = self._in_flight.get(host, 0) + 1
            self._peak[host] = max(self._peak.get(host, 0), self._in_flight[host])
        return host

    def _leave(self, host: str) -> None:
        with self._lock:
            self._in_flight[host] -= 1

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _take(self, handler: _Handler, body: bytes) -> Step:
        """Verify, choose the step and record the request, atomically."""
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        valid = signing.verify(self._keys, headers, body) if self._keys else None
        with self._lock:
            if self._enforce and valid is False:
                step = Step(401, body="invalid signature")
            else:
                script = self._scripts.get(parts.path, [self._default])
                index = self._cursor.get(parts.path, 0)
                step = script[min(index, len(script) - 1)]
                self._cursor[parts.path] = index + 1
            self._records.append(
                RecordedRequest(
                    path=parts.path,
                    query=parts.query,
                    method=handler.command,
                    headers=headers,
                    body=body,
                    signature_valid=valid,
                    received_at=time.time(),
                    client_port=int(handler.client_address[1]),
                    status=None if step.reset else step.status,
                )
            )
            self._lock.notify_all()
        return step


def _parse_script(text: str) -> tuple[str, list[Step]]:
    path, _, tokens = text.partition("=")
    steps = [Step(reset=True) if word == "reset" else Step(int(word)) for word in tokens.split(",") if word]
    if not path.startswith("/") or not steps:
        raise argparse.ArgumentTypeError(f"expected /path=CODE[,CODE|reset...], got {text!r}")
    return path, steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The receiver's options, shared by ``notiflow receiver`` and ``python -m notiflow.demo.receiver``."""
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port, 0 picks a free one")
    parser.add_argument("--secret", help="whsec_... secret(s) to verify signatures with")
    parser.add_argument("--enforce-signatures", action="store_true", help="answer 401 to bad signatures")
    parser.add_argument("--script", type=_parse_script, action="append", default=[], help="/path=503,503,200")


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until interrupted (or ``stop`` is set), printing one line per request."""
    receiver = WebhookReceiver(
        args.secret, host=args.host, port=args.port, enforce_signatures=args.enforce_signatures, log=print
    )
    for path, steps in args.script:
        receiver.script(path, steps)
    with receiver:
        print(f"listening on {receiver.base_url} (Ctrl-C to stop)", flush=True)
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            print("stopped")
    return 0


def main(argv: list[str] | None = None) -> None:
    """``python -m notiflow.demo.receiver``: the same as ``notiflow receiver``."""
    parser = argparse.ArgumentParser(prog="python -m notiflow.demo.receiver", description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
