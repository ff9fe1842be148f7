"""Operator views of runs: filtered lists and one run's full story, read without scanning the table.

FAILED, REJECTED and PROCESSING records come from the sparse operator index (a Query whose cost grows
with what it returns); runs that ended without a record of their own (they failed before the claim, or
stopped while PROCESSING and nothing closed the record) come from ListExecutions with a status filter;
everything else is a page of ListExecutions joined with its records by BatchGetItem. Pure functions
over a RunStore, so the CLI, bulk redrive and the console show the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from lambdas.shared.clock import utc_iso
from lambdas.shared.constants import ExecutionStatus, RecordStatus
from lambdas.shared.errors import InvalidNotificationError
from lambdas.shared.models import notification_id_of_input
from lambdas.shared.record import NotificationRecord
from notiflow.operate.runs import (
    Pass,
    RunStore,
    StateVisit,
    record_json,
    run_passes,
    summarize_history,
)

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
INDEXED: Final = frozenset({RecordStatus.PROCESSING, RecordStatus.FAILED, RecordStatus.REJECTED})
"""Record statuses the operator index holds (SUCCESS records are not indexed)."""
STOPPED_RUN_STATUSES: Final = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED)
DEFAULT_PAGE: Final = 50
DESCRIBE_THREADS: Final = 8


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'6h', '30m', '2d' or an ISO 8601 time -> an aware UTC datetime (that long ago, or that time)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"a time takes a duration like 6h, 30m, 2d or an ISO time, not {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_time(value: str | None) -> datetime | None:
    """A record timestamp (or any ISO 8601 time) as an aware datetime; None when absent or malformed."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunFilter:
    """What `runs list` (and bulk redrive) select.

    ``since`` and ``older_than`` bound the time a run reached its status: for indexed statuses the
    record's ``opsSince``, for runs without a record of their own the execution's start.
    """

    status: RecordStatus | None = None
    since: datetime | None = None
    older_than: datetime | None = None
    host: str | None = None
    error: str | None = None

    def keeps(self, row: RunRow) -> bool:
        """Whether a row passes the host and error filters (status and time are applied by the query)."""
        if self.host and (row.target_host or "") != self.host.lower():
            return False
        return not (self.error and row.error_name != self.error)


@dataclass
class RunRow:
    """One run as `runs list`, bulk redrive and the console's list show it."""

    notification_id: str
    execution_arn: str | None
    status: str | None
    """The record's status; None when the run has no record of its own."""
    run_status: str | None = None
    attempts: int | None = None
    last_status_code: int | None = None
    started: datetime | None = None
    ended: datetime | None = None
    status_since: str | None = None
    redrives: int = 0
    error_name: str | None = None
    target_host: str | None = None
    reconciled: bool = False
    fast_path_execution_arn: str | None = None
    execution: dict[str, Any] | None = field(default=None, repr=False)
    record: NotificationRecord | None = field(default=None, repr=False)
    """The record the row was read from (the list's attributes only)."""

    @property
    def duration_seconds(self) -> float | None:
        """From the run's start to its end (or to now while it runs): what the run really took."""
        if self.started is None:
            return None
        return round(((self.ended or datetime.now(UTC)) - self.started).total_seconds(), 3)

    @property
    def when(self) -> datetime:
        """The time the run reached its status: what lists are ordered by, newest first."""
        return parse_time(self.status_since) or self.ended or self.started or datetime.min.replace(tzinfo=UTC)

    @classmethod
    def from_record(cls, record: NotificationRecord) -> RunRow:
        result = record.deliveryResult
        return cls(
            notification_id=record.notificationId,
            execution_arn=record.executionArn,
            status=record.status,
            attempts=record.attempts,
            last_status_code=result.statusCode if result else None,
            status_since=record.opsSince,
            error_name=record.errorName,
            target_host=record.targetHost,
            reconciled=record.reconciledAt is not None,
            redrives=record.redriveCount or 0,
            fast_path_execution_arn=record.fastPathExecutionArn,
            record=record,
        )

    def with_execution(self, execution: dict[str, Any]) -> RunRow:
        """Fill in what the execution says: run status, start, end and redrive count."""
        self.execution = execution
        self.run_status = execution["status"]
        self.started = execution.get("startDate")
        self.ended = execution.get("stopDate")
        self.redrives = execution.get("redriveCount", self.redrives) or 0
        if self.status is None and self.error_name is None:
            self.error_name = execution.get("error")
        return self

    def as_json(self) -> dict[str, Any]:
        """The row for ``runs list --json`` (keys as they were before, new ones added)."""
        return {
            "notification_id": self.notification_id,
            "status": self.status,
            "run_status": self.run_status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "started": utc_iso(self.started) if self.started else None,
            "ended": utc_iso(self.ended) if self.ended else None,
            "duration_seconds": self.duration_seconds,
            "status_since": self.status_since,
            "redrives": self.redrives,
            "error_name": self.error_name,
            "target_host": self.target_host,
            "execution_arn": self.execution_arn,
            "fast_path_execution_arn": self.fast_path_execution_arn,
            "reconciled": self.reconciled,
        }


def describe_all(store: RunStore, arns: Iterable[str]) -> dict[str, dict[str, Any]]:
    """DescribeExecution of each ARN, a few at a time; runs that no longer exist are left out."""

    def describe(arn: str) -> tuple[str, dict[str, Any] | None]:
        try:
            return arn, store.describe(arn)
        except store.sfn.exceptions.ExecutionDoesNotExist:
            return arn, None

    unique = list(dict.fromkeys(arns))
    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=min(DESCRIBE_THREADS, len(unique))) as pool:
        return {arn: described for arn, described in pool.map(describe, unique) if described is not None}


def list_runs(store: RunStore, run_filter: RunFilter, limit: int | None = None) -> list[RunRow]:
    """Matching runs, newest first (by the time each reached its status), at most ``limit``.

    Indexed statuses read the operator index, plus the runs it cannot hold (see :func:`unindexed_rows`).
    SUCCESS and "any status" read pages of ListExecutions (``limit``, default 50).
    """
    status = RecordStatus(run_filter.status) if run_filter.status else None
    if status in INDEXED:
        rows = _indexed_rows(store, status, run_filter, limit)
        known = {row.execution_arn for row in rows}
        rows += unindexed_rows(store, status, run_filter, known, limit)
    else:
        wanted = RecordStatus.SUCCESS if status is RecordStatus.SUCCESS else None
        rows = _execution_rows(store, run_filter, limit or DEFAULT_PAGE, wanted)
    rows.sort(key=lambda row: (row.when, row.notification_id), reverse=True)
    return rows[:limit] if limit else rows


def _indexed_rows(store: RunStore, status: RecordStatus, run_filter: RunFilter, limit: int | None) -> list[RunRow]:
    since = utc_iso(run_filter.since) if run_filter.since else None
    before = utc_iso(run_filter.older_than) if run_filter.older_than else None
    rows: list[RunRow] = []
    start_key: dict[str, Any] | None = None
    while limit is None or len(rows) < limit:
        page_size = 100 if limit is None else min(100, max(limit - len(rows), 10))
        page = store.ops_page(status, since=since, before=before, limit=page_size, start_key=start_key)
        rows += [row for row in map(RunRow.from_record, page.records) if run_filter.keeps(row)]
        if page.next_key is None:
            break
        start_key = page.next_key
    rows = rows[:limit] if limit else rows
    described = describe_all(store, [row.execution_arn for row in rows if row.execution_arn])
    for row in rows:
        if row.execution_arn in described:
            row.with_execution(described[row.execution_arn])
    return rows


RUN_STATUSES_OF: Final = {
    RecordStatus.FAILED: STOPPED_RUN_STATUSES,
    RecordStatus.REJECTED: STOPPED_RUN_STATUSES,
    RecordStatus.PROCESSING: (ExecutionStatus.RUNNING,),
}
"""The run statuses a record status goes with, where runs the index cannot hold are looked for."""


def belongs_outside_index(status: RecordStatus, execution: dict[str, Any], record: NotificationRecord | None) -> bool:
    """Whether this run counts as ``status`` although the operator index does not hold it.

    FAILED: the run stopped and has no record at all (it failed before the claim), or its own record
    is still PROCESSING (nothing closed it). Any status: its own record has the status but no
    ``opsStatus`` (written before the index existed, or by a writer that does not keep it yet).
    """
    arn = execution["executionArn"]
    own = record is not None and arn in (record.executionArn, record.fastPathExecutionArn)
    stopped = status is RecordStatus.FAILED and execution["status"] in STOPPED_RUN_STATUSES
    if stopped and (record is None or (own and record.status is RecordStatus.PROCESSING)):
        return True
    return own and record is not None and record.status is status and record.opsStatus is None


def unindexed_rows(
    store: RunStore, status: RecordStatus, run_filter: RunFilter, known: set[str | None], limit: int | None
) -> list[RunRow]:
    """Runs of ``status`` the index does not hold, from ListExecutions of the matching run statuses.

    The cost follows the runs in those statuses within the window (``since`` bounds their start),
    never the table.
    """
    executions = [
        execution
        for run_status in RUN_STATUSES_OF[status]
        for execution in store.executions(run_status, limit=limit, started_after=run_filter.since)
        if execution["executionArn"] not in known
        and (run_filter.older_than is None or execution["startDate"] < run_filter.older_than)
    ]
    resolved = resolve_records(store, executions)
    matches = [
        (execution, *resolved[execution["executionArn"]])
        for execution in executions
        if belongs_outside_index(status, execution, resolved[execution["executionArn"]][1])
    ]
    described = describe_all(store, [execution["executionArn"] for execution, _, _ in matches])
    rows: list[RunRow] = []
    for execution, notification_id, record in matches:
        full = described.get(execution["executionArn"], execution)
        if record is None and full.get("error") == InvalidNotificationError.__name__:
            continue  # a rejected message whose record another run holds: a replay, not a redrive, can help
        row = RunRow.from_record(record) if record else RunRow(notification_id, execution["executionArn"], None)
        row.with_execution(full)
        if row.status_since is None:
            row.status_since = utc_iso(full["stopDate"]) if full.get("stopDate") else utc_iso(full["startDate"])
        if run_filter.keeps(row):
            rows.append(row)
    return rows


def resolve_records(
    store: RunStore, executions: list[dict[str, Any]]
) -> dict[str, tuple[str, NotificationRecord | None]]:
    """Each execution's notification id and that notification's record (possibly another run's), by ARN.

    An execution is named after its notification id unless the id needed escaping or the run is a
    replay; those few are resolved through the execution input (DescribeExecution, cached: inputs
    never change). Two BatchGetItem rounds at most, whatever the number of executions.
    """
    by_name = store.records([execution["name"] for execution in executions])
    resolved: dict[str, tuple[str, NotificationRecord | None]] = {}
    unresolved: list[dict[str, Any]] = []
    for execution in executions:
        arn = execution["executionArn"]
        record = by_name.get(execution["name"])
        if record is not None and arn in (record.executionArn, record.fastPathExecutionArn):
            resolved[arn] = (record.notificationId, record)
        else:
            unresolved.append(execution)
    ids = {execution["executionArn"]: store.input_notification_id(execution) for execution in unresolved}
    by_id = store.records([notification_id for notification_id in ids.values() if notification_id])
    for execution in unresolved:
        notification_id = ids[execution["executionArn"]] or execution["name"]
        resolved[execution["executionArn"]] = (notification_id, by_id.get(notification_id))
    return resolved


def _execution_rows(
    store: RunStore, run_filter: RunFilter, limit: int, record_status: RecordStatus | None
) -> list[RunRow]:
    run_status = ExecutionStatus.SUCCEEDED if record_status is RecordStatus.SUCCESS else None
    executions = store.executions(run_status, limit=limit, started_after=run_filter.since)
    resolved = resolve_records(store, executions)
    rows: list[RunRow] = []
    for execution in executions:
        notification_id, record = resolved[execution["executionArn"]]
        owned = record is not None and execution["executionArn"] in (record.executionArn, record.fastPathExecutionArn)
        if record_status is not None and not (owned and record is not None and record.status is record_status):
            continue
        row = RunRow.from_record(record) if owned and record else RunRow(notification_id, None, None)
        row.execution_arn = execution["executionArn"]
        row.with_execution(execution)
        if run_filter.keeps(row):
            rows.append(row)
    return rows


@dataclass
class RunStory:
    """Everything about one notification: record, execution, its passes and the state-by-state timeline."""

    record: dict[str, Any] | None
    execution: dict[str, Any] | None
    timeline: list[StateVisit]
    passes: list[Pass]

    def as_json(self) -> dict[str, Any]:
        execution = None
        if self.execution:
            execution = {
                k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in self.execution.items()
                if k != "ResponseMetadata"
            }
        return {
            "record": self.record,
            "execution": execution,
            "passes": [p.as_json() for p in self.passes],
            "timeline": [v.as_json() for v in self.timeline],
        }


def show_run(store: RunStore, ident: str) -> RunStory:
    """Look a run up by notification id or execution ARN."""
    record: dict[str, Any] | None
    if ident.startswith("arn:"):
        try:
            execution: dict[str, Any] | None = store.describe(ident)
        except store.sfn.exceptions.ExecutionDoesNotExist:
            raise LookupError(f"no execution {ident}") from None
        notification_id = notification_id_of_input((execution or {}).get("input"))
        record = store.record(notification_id) if notification_id else None
    else:
        record = store.record(ident)
        execution_arn = (record or {}).get("executionArn") or store.execution_arn(ident)
        try:
            execution = store.describe(execution_arn)
        except store.sfn.exceptions.ExecutionDoesNotExist:
            execution = None
    if record is None and execution is None:
        raise LookupError(f"no notification or execution called {ident}")
    events = store.history(execution["executionArn"]) if execution else []
    return RunStory(record=record, execution=execution, timeline=summarize_history(events), passes=run_passes(events))


__all__ = [
    "DEFAULT_PAGE",
    "INDEXED",
    "RunFilter",
    "RunRow",
    "RunStory",
    "list_runs",
    "parse_since",
    "parse_time",
    "record_json",
    "resolve_records",
    "show_run",
]
