"""What an HTTP attempt's result means: category, retry verdict, Retry-After, the details a human needs.

Pure functions of the status, headers and what was read of the body; the transport does the
I/O and the handler decides which named error to raise. The ceiling of an honoured
Retry-After wait is not here: it comes from the workflow definition with each request
(``maxRetryAfterSeconds``) and is applied in ``lambdas/deliver/result.py``.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from lambdas.shared.clock import utc_iso
from lambdas.shared.models import Category, DeliveryOutcome

RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 429})
"""4xx answers worth retrying: request timeout and too many requests."""
EXCERPT_CHARS: Final = 1024
MAX_RETRY_AFTER_DIGITS: Final = 9
"""A longer delta (over 31 years) is read as 999,999,999 s: a representation bound, not a policy."""
_DELTA_SECONDS: Final = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class AttemptStart:
    """What every outcome of one attempt shares."""

    timestamp: str
    attempt: int
    correlationId: str | None = None

    def failed(self, category: Category, retryable: bool, details: str, elapsed_ms: int) -> DeliveryOutcome:
        """An attempt that ended without an HTTP response (or was never sent)."""
        return DeliveryOutcome(
            success=False,
            retryEligible=retryable,
            category=category,
            responseTime=elapsed_ms,
            errorDetails=details,
            timestamp=self.timestamp,
            correlationId=self.correlationId,
            attempt=self.attempt,
        )


@dataclass(frozen=True)
class BodyRead:
    """What was read of a response body: at most the cap, and why reading stopped early."""

    data: bytes
    truncated: bool
    problem: str | None = None


def classify_status(status: int) -> tuple[Category, bool]:
    """Category and retry verdict of an HTTP status (3xx is a client error: redirects are not followed)."""
    if 200 <= status < 300:
        return Category.SUCCESS, False
    if 300 <= status < 400:
        return Category.CLIENT_ERROR, False
    if 400 <= status < 500:
        return Category.CLIENT_ERROR, status in RETRYABLE_CLIENT_STATUSES
    return Category.SERVER_ERROR, True


def parse_retry_after(value: str | None, now: datetime | None = None) -> int | None:
    """Seconds a Retry-After header asks for (delta-seconds or HTTP-date; a past date is 0), else None."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return int(text) if len(text) <= MAX_RETRY_AFTER_DIGITS else 10**MAX_RETRY_AFTER_DIGITS - 1
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = math.ceil((when - (now or datetime.now(UTC))).total_seconds())
    return max(0, min(seconds, 10**MAX_RETRY_AFTER_DIGITS - 1))


def classify_response(
    start: AttemptStart,
    *,
    status: int,
    reason: str,
    headers: Mapping[str, str],
    read: BodyRead,
    encoding: str | None,
    cap: int,
    received_at: datetime,
    elapsed_ms: int,
) -> DeliveryOutcome:
    """The outcome of an attempt that got an HTTP response."""
    category, retryable = classify_status(status)
    retry_after = parse_retry_after(headers.get("Retry-After"), received_at)
    notes = []
    if category is not Category.SUCCESS:
        notes.append(f"HTTP {status} {reason}".rstrip())
        if 300 <= status < 400:
            location = headers.get("Location")
            notes.append(f"redirect to {location[:512]} not followed" if location else "redirect not followed")
        if retry_after is not None:
            notes.append(f"Retry-After {retry_after} s")
        if read.truncated:
            notes.append(f"response body larger than {cap} bytes; read stopped at the cap")
        if read.problem:
            notes.append(read.problem)
    return DeliveryOutcome(
        success=category is Category.SUCCESS,
        retryEligible=retryable,
        category=category,
        statusCode=status,
        statusText=reason or None,
        responseTime=elapsed_ms,
        errorDetails="; ".join(notes) or None,
        timestamp=start.timestamp,
        correlationId=start.correlationId,
        attempt=start.attempt,
        httpResponseReceivedAt=utc_iso(received_at),
        retryAfterSeconds=retry_after,
        responseBodyExcerpt=excerpt(read.data, encoding),
    )


def excerpt(data: bytes, encoding: str | None) -> str | None:
    """The first ``EXCERPT_CHARS`` characters of a body, decoded leniently."""
    if not data:
        return None
    try:
        text = data[: EXCERPT_CHARS * 4].decode(encoding or "utf-8", errors="replace")
    except LookupError:
        text = data[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS]
