"""How operator output shows times, durations, delivery results and run causes: one format for each.

Times are UTC with a ``Z`` everywhere in the CLI (``2026-11-30 10:04:05Z``, milliseconds where events
are close together), so rows from the table and from Step Functions read the same.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def as_datetime(value: datetime | str | None) -> datetime | None:
    """A datetime from a datetime or an ISO 8601 string (record timestamps), aware in UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fmt_utc(value: datetime | str | None, *, ms: bool = False) -> str | None:
    """``2026-11-30 10:04:05Z`` (``...05.123Z`` with ``ms``); None when there is no time."""
    moment = as_datetime(value)
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if ms:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def fmt_clock(value: datetime | str | None) -> str | None:
    """``10:04:05.123Z``: a time of day in UTC with milliseconds, for rows of one run."""
    text = fmt_utc(value, ms=True)
    return text.split(" ", 1)[1] if text else None


def fmt_duration(seconds: float | None) -> str | None:
    """``850 ms``, ``12.3 s``, ``4 min 5 s``, ``2 h 3 min``, ``1 d 4 h``."""
    if seconds is None:
        return None
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def delivery_fields(result: dict[str, Any]) -> list[tuple[str, str]]:
    """A delivery result (or the outcome in a run's cause) as labelled fields, in reading order."""
    status = " ".join(str(part) for part in (result.get("statusCode"), result.get("statusText")) if part)
    fields: list[tuple[str, Any]] = [
        ("outcome", "delivered" if result.get("success") else "not delivered"),
        ("category", result.get("category")),
        ("HTTP status", status or None),
        ("response time", f"{result['responseTime']} ms" if result.get("responseTime") is not None else None),
        ("retry eligible", _yes_no(result.get("retryEligible"))),
        ("details", result.get("errorDetails")),
        ("attempted at", fmt_utc(result.get("timestamp"), ms=True)),
        ("response at", fmt_utc(result.get("httpResponseReceivedAt"), ms=True)),
        ("correlation id", result.get("correlationId")),
    ]
    return [(label, str(value)) for label, value in fields if value is not None and value != ""]


def cause_fields(error: str | None, cause: str | None) -> list[tuple[str, str]]:
    """A run's error and cause as labelled fields: a Lambda error's message, a delivery outcome's fields.

    The FailureGate fails with the last delivery outcome as JSON inside the Lambda error's message;
    that outcome is shown field by field instead of as escaped JSON.
    """
    fields: list[tuple[str, str]] = [("error", error)] if error else []
    if not cause:
        return fields
    message: Any = cause
    parsed = _json(cause)
    if isinstance(parsed, dict):
        if parsed.get("errorType") and parsed.get("errorType") != error:
            fields.append(("error type", str(parsed["errorType"])))
        message = parsed.get("errorMessage", parsed)
    inner = _json(message) if isinstance(message, str) else message
    if isinstance(inner, dict):
        nested = inner.get("outcome")
        outcome: dict[str, Any] = nested if isinstance(nested, dict) else inner
        if "category" in outcome or "statusCode" in outcome:
            return fields + delivery_fields(outcome)
        return [*fields, ("cause", json.dumps(inner, sort_keys=True))]
    return [*fields, ("cause", " ".join(str(message).split()))]


def _yes_no(value: Any) -> str | None:
    return None if value is None else ("yes" if value else "no")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def labelled(fields: list[tuple[str, str]], indent: str = "  ") -> str:
    """Fields as aligned ``label   value`` lines."""
    if not fields:
        return ""
    width = max(len(label) for label, _ in fields)
    return "\n".join(f"{indent}{label.ljust(width)}  {value}" for label, value in fields)
