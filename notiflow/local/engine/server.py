"""moto's HTTP server on one address, the execution-mode switch and the reset of every backend.

The server is moto's WSGI dispatcher served by werkzeug as ``ThreadedMotoServer`` does, built here
so a bind error raises instead of hanging ``ThreadedMotoServer.start``, with two fixes for
throughput: the backend for a host is looked up once (moto lists its package directory and matches
hundreds of URL patterns under one global lock on every request), Nagle is off (werkzeug writes
headers and body separately; with Nagle a keep-alive client waits for the delayed ACK, ~40 ms), and
no access-log line is formatted while the ``werkzeug`` logger would drop it. An exception inside a
backend answers as AWS does (HTTP 500, error code ``InternalFailure``, in the request's protocol)
instead of werkzeug's HTML page, which clients cannot parse.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any, Final

from notiflow.local.engine import speed

_REQUEST_LOG = logging.getLogger("werkzeug")
LOG = logging.getLogger(__name__)
INTERNAL_FAILURE: Final = "InternalFailure"


@dataclass
class MotoServer:
    """A moto server thread on one address."""

    server: Any
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server.server_address[1])


def _server_classes() -> tuple[type, type]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler

    class CachingDispatcher(DomainDispatcherApplication):
        def __init__(self, create_app: Callable[..., Any]) -> None:
            super().__init__(create_app)
            self._backend_by_host: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if not speed.options.fast_server:
                return super().get_backend_for_host(host)
            if host not in self._backend_by_host:
                self._backend_by_host[host] = super().get_backend_for_host(host)
            return self._backend_by_host[host]

    class NoDelayRequestHandler(MotoRequestHandler):
        def setup(self) -> None:
            super().setup()
            if speed.options.fast_server:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if not speed.options.fast_server or _REQUEST_LOG.isEnabledFor(logging.INFO):
                super().log_request(code, size)

    return CachingDispatcher, NoDelayRequestHandler


def internal_failure(exc: Exception) -> Any:
    """An AWS-shaped 500 for an exception a backend raised: JSON for JSON protocols, XML for query ones."""
    from flask import request
    from werkzeug.wrappers import Response

    LOG.exception("internal error in %s %s", request.method, request.path)
    message = f"{type(exc).__name__} in the local engine: {exc}"
    content_type = request.headers.get("Content-Type", "")
    if "X-Amz-Target" in request.headers or "json" in content_type:
        body = json.dumps({"__type": INTERNAL_FAILURE, "message": message})
        return Response(body, 500, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": INTERNAL_FAILURE})
    body = (
        f"<ErrorResponse><Error><Type>Receiver</Type><Code>{INTERNAL_FAILURE}</Code>"
        f"<Message>{escape(message)}</Message></Error><RequestId>local</RequestId></ErrorResponse>"
    )
    return Response(body, 500, {"Content-Type": "text/xml"})


def _app_with_aws_errors(create_app: Callable[..., Any]) -> Callable[..., Any]:
    def create(service: Any) -> Any:
        app = create_app(service)
        app.register_error_handler(Exception, internal_failure)
        return app

    return create


def start_server(host: str, port: int) -> MotoServer:
    """Serve every moto backend on ``host:port`` (0 picks a free port) in a daemon thread."""
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.serving import make_server

    dispatcher, handler = _server_classes()
    server = make_server(
        host, port, dispatcher(_app_with_aws_errors(create_backend_app)), threaded=True, request_handler=handler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"moto-server-{port}", daemon=True
    )
    thread.start()
    return MotoServer(server=server, thread=thread)


def stop_server(moto_server: MotoServer, timeout: float = 10.0) -> None:
    """Stop serving and release the port (in-flight request threads are daemons)."""
    moto_server.server.shutdown()
    moto_server.server.server_close()
    moto_server.thread.join(timeout)


def set_execution_mode(enabled: bool) -> bool:
    """Turn moto's Step Functions execution mode on or off; returns the previous setting."""
    from moto.core.config import default_user_config

    config = default_user_config.setdefault("stepfunctions", {})
    previous = bool(config.get("execute_state_machine", False))
    config["execute_state_machine"] = enabled
    return previous


def reset_backends() -> None:
    """Empty every moto backend, as ``POST /moto-api/reset`` does."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
