"""The one timestamp format of every record field and delivery outcome."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z`` (now when no moment is given), as Step Functions writes them."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
