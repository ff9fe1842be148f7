"""The project's own HTTP servers on 127.0.0.1 (console, receiver) share this server class."""

from __future__ import annotations

import socketserver
from http.server import ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server for 127.0.0.1 that binds without a reverse DNS lookup.

    HTTPServer.server_bind calls getfqdn(), which can stall for seconds on a machine
    without a resolver; nothing here needs the name.
    """

    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])
