"""Shared pieces of the project's own local servers and browser runs (console, receiver, tests)."""

from __future__ import annotations

import socketserver
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Final

CHROMIUM: Final = Path("/usr/bin/chromium")
"""Debian's Chromium: the browser tests and the screenshot step drive it (no browser download)."""
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps calling out to Google's hosts, which this offline machine refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server for 127.0.0.1 that binds without a reverse DNS lookup.

    HTTPServer.server_bind calls getfqdn(), which can stall for seconds on a machine
    without a resolver; nothing here needs the name.
    """

    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])
