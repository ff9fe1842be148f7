"""Debian's Chromium, as the browser tests and the console screenshot drive it (no browser download)."""

from __future__ import annotations

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
