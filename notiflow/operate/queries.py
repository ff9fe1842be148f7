"""Operator views of runs: filtered lists and one run's full story.

Pure functions over a RunStore, so the CLI and the local console show the same thing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from notiflow.operate.runs import RunStore, StateVisit, summarize_history

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'6h', '30m', '2d' or an ISO 8601 time -> an aware UTC datetime."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since takes a duration like 6h, 30m, 2d or an ISO time, not {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class RunFilter:
    """What `runs list` (and bulk redrive) select."""

    status: str | None = None
    since: datetime | None = None
    host: str | None = None
    error: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        if self.status and record.get("status") != self.status.upper():
            return False
        created = parse_time(record.get("createdAt") or record.get("lastUpdatedAt"))
        if self.since and (created is None or created < self.since):
            return False
        if self.host and (record.get("targetHost") or "") != self.host.lower():
            return False
        return not (self.error and record.get("errorName") != self.error)


@dataclass(frozen=True)
class RunRow:
    """One line of `runs list`."""

    notification_id: str
    status: str
    attempts: int
    last_status_code: int | None
    started: str
    duration_seconds: float | None
    error_name: str | None
    execution_arn: str | None
    target_host: str | None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunRow:
        created = parse_time(record.get("createdAt"))
        updated = parse_time(record.get("lastUpdatedAt"))
        result = record.get("deliveryResult") or {}
        return cls(
            notification_id=record["notificationId"],
            status=record.get("status", "?"),
            attempts=int(record.get("attempts") or 0),
            last_status_code=result.get("statusCode"),
            started=record.get("createdAt", ""),
            duration_seconds=(updated - created).total_seconds() if created and updated else None,
            error_name=record.get("errorName"),
            execution_arn=record.get("executionArn"),
            target_host=record.get("targetHost"),
        )


def list_runs(store: RunStore, run_filter: RunFilter, limit: int | None = None) -> list[RunRow]:
    """Matching notifications, oldest first (the order bulk redrive uses)."""
    rows = [RunRow.from_record(r) for r in store.records() if run_filter.matches(r)]
    rows.sort(key=lambda row: (row.started, row.notification_id))
    return rows[:limit] if limit else rows


@dataclass
class RunStory:
    """Everything about one notification: record, execution and the state-by-state timeline."""

    record: dict[str, Any] | None
    execution: dict[str, Any] | None
    timeline: list[StateVisit]

    def as_json(self) -> dict[str, Any]:
        execution = None
        if self.execution:
            execution = {
                k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in self.execution.items()
                if k != "ResponseMetadata"
            }
        return {"record": self.record, "execution": execution, "timeline": [v.as_json() for v in self.timeline]}


def show_run(store: RunStore, ident: str) -> RunStory:
    """Look a run up by notification id or execution ARN."""
    record: dict[str, Any] | None
    if ident.startswith("arn:"):
        execution = store.describe(ident)
        notification_id = (json.loads(execution.get("input") or "{}") or {}).get("notificationId")
        record = store.record(notification_id) if notification_id else None
        execution_arn = ident
    else:
        record = store.record(ident)
        execution_arn = (record or {}).get("executionArn") or store.execution_arn(ident)
        try:
            execution = store.describe(execution_arn)
        except store.sfn.exceptions.ExecutionDoesNotExist:
            execution = None
    if record is None and execution is None:
        raise LookupError(f"no notification or execution called {ident}")
    timeline = summarize_history(store.history(execution["executionArn"])) if execution else []
    return RunStory(record=record, execution=execution, timeline=timeline)
