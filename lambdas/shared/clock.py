"""The one timestamp format of every record field and delivery outcome, and the claim lease arithmetic."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def utc_iso(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z`` (now when no moment is given), as Step Functions writes them."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """A timestamp as Step Functions or :func:`utc_iso` writes it (``Z`` or an offset; naive means UTC)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def lease_expiry(started_at: str, seconds: int) -> int:
    """Epoch seconds at which a claim made by a run started at ``started_at`` may be taken over."""
    return math.ceil(parse_iso(started_at).timestamp()) + seconds
