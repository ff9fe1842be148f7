"""Reading runs back: notification records and execution histories, through plain boto3.

The demo table, the ``notiflow runs`` commands and the local console all read
what happened from here, from the DynamoDB record and the execution history, so
none of them can show what a caller merely expected.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from lambdas.shared.constants import FINISHED_EXECUTION_STATUSES, OPS_INDEX_PROJECTION, RecordStatus
from lambdas.shared.dal.notifications import NotificationStore, OpsPage, get_many, query_ops_page
from lambdas.shared.models import notification_id_of_input
from lambdas.shared.record import NotificationRecord
from notiflow.shared.waiting import wait_until

_TASK_FAILURES = ("TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskSubmitFailed")
_RUN_FAILURES = ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut")
_RUN_ENDS = (*_RUN_FAILURES, "ExecutionSucceeded")
LIST_ATTRIBUTES: Final = (*OPS_INDEX_PROJECTION, "opsStatus", "opsSince", "failureReason")
"""What a list row reads of a record (the index's projection, plus the reason): never the attempt log."""


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives the execution called ``name`` of that state machine."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


@dataclass
class StateVisit:
    """One entry into a state during a run, with what happened inside it."""

    name: str
    type: str
    entered: datetime
    exited: datetime | None = None
    attempts: int = 0
    errors: list[dict[str, str | None]] = field(default_factory=list)
    outcome: str = "running"  # succeeded | retried | caught | failed | running
    input: Any = None
    output: Any = None
    pass_number: int = 1
    """1 for the run as started, 2 for its first redrive, and so on."""

    @property
    def retries(self) -> int:
        """Extra task attempts made by Retry (0 for non-Task states)."""
        return max(self.attempts - 1, 0)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["entered"] = self.entered.isoformat()
        data["exited"] = self.exited.isoformat() if self.exited else None
        data["retries"] = self.retries
        data["pass"] = data.pop("pass_number")
        return data


@dataclass
class Pass:
    """One pass of a run: as started, or one redrive of it, with how it ended."""

    number: int
    started: datetime
    ended: datetime | None = None
    status: str = "RUNNING"
    error: str | None = None
    cause: str | None = None
    resumed_in: str | None = None
    """The state a redrive resumed in (the first state it entered); None for the first pass until it starts."""

    @property
    def redrive(self) -> int:
        """0 for the first pass, else which redrive this is."""
        return self.number - 1

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "redrive": self.redrive,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat() if self.ended else None,
            "status": self.status,
            "error": self.error,
            "cause": self.cause,
            "resumedIn": self.resumed_in,
        }


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def event_details(event: dict[str, Any]) -> dict[str, Any]:
    """The ``...EventDetails`` member of a history event (each event type names its own), or {}."""
    found: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails") and v), {})
    return found


def summarize_history(events: list[dict[str, Any]]) -> list[StateVisit]:
    """Fold an execution history into state visits: attempts, errors and how each ended."""
    visits: list[StateVisit] = []
    current: StateVisit | None = None
    pass_number = 1
    for event in events:
        kind: str = event["type"]
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            current = StateVisit(
                name=details.get("name", "?"),
                type=kind.removesuffix("StateEntered"),
                entered=event["timestamp"],
                input=_loads(details.get("input")),
                pass_number=pass_number,
            )
            visits.append(current)
        elif current is None:
            continue
        elif kind == "TaskScheduled":
            current.attempts += 1
        elif kind in _TASK_FAILURES:
            details = event_details(event)
            current.errors.append({"error": details.get("error"), "cause": details.get("cause")})
        elif kind.endswith("StateExited"):
            details = event.get("stateExitedEventDetails", {})
            current.exited = event["timestamp"]
            current.output = _loads(details.get("output"))
            last_failed = bool(current.errors) and current.attempts == len(current.errors)
            if last_failed:
                current.outcome = "caught"
            else:
                current.outcome = "retried" if current.errors else "succeeded"
        elif kind in _RUN_FAILURES:
            details = event_details(event)
            if current.exited is None:
                current.outcome = "failed"
                current.exited = event["timestamp"]
                if details.get("error") and not current.errors:
                    current.errors.append({"error": details.get("error"), "cause": details.get("cause")})
        elif kind == "ExecutionRedriven":
            current = None
            pass_number += 1
    return visits


def run_passes(events: list[dict[str, Any]]) -> list[Pass]:
    """The passes of a run from its history: each starts at ExecutionStarted or ExecutionRedriven."""
    passes: list[Pass] = []
    for event in events:
        kind: str = event["type"]
        if kind in ("ExecutionStarted", "ExecutionRedriven"):
            passes.append(Pass(number=len(passes) + 1, started=event["timestamp"]))
        elif not passes:
            continue
        elif kind.endswith("StateEntered") and passes[-1].resumed_in is None:
            passes[-1].resumed_in = event.get("stateEnteredEventDetails", {}).get("name")
        elif kind in _RUN_ENDS:
            details = event_details(event)
            current = passes[-1]
            current.ended = event["timestamp"]
            current.status = {
                "ExecutionSucceeded": "SUCCEEDED",
                "ExecutionFailed": "FAILED",
                "ExecutionAborted": "ABORTED",
                "ExecutionTimedOut": "TIMED_OUT",
            }[kind]
            current.error = details.get("error")
            current.cause = details.get("cause")
    return passes


def history_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every history event as a row: its details, the state it happened in and the time since the start."""
    first = events[0]["timestamp"] if events else None
    state: str | None = None
    rows = []
    for event in events:
        details = event_details(event)
        kind = event["type"]
        if kind.endswith("StateEntered"):
            state = details.get("name")
        row_state = details.get("name") if kind.endswith(("StateEntered", "StateExited")) else state
        if kind.startswith("Execution"):
            row_state = None
        rows.append(
            {
                "id": event["id"],
                "previousEventId": event.get("previousEventId"),
                "type": kind,
                "state": row_state,
                "timestamp": event["timestamp"].isoformat(),
                "elapsedMs": round((event["timestamp"] - first).total_seconds() * 1000) if first else 0,
                "details": details,
            }
        )
        if kind.endswith("StateExited"):
            state = None
    return rows


def state_colours(visits: list[StateVisit], all_states: list[str], pass_number: int | None = None) -> dict[str, str]:
    """How each state went in one pass (the latest by default); within a pass the last visit of a state wins."""
    if pass_number is None:
        pass_number = max((visit.pass_number for visit in visits), default=1)
    colours = dict.fromkeys(all_states, "not-reached")
    for visit in visits:
        if visit.pass_number == pass_number:
            colours[visit.name] = visit.outcome
    return colours


def earlier_failures(visits: list[StateVisit]) -> dict[str, list[int]]:
    """States that failed or caught an error in a pass before the latest one, with those pass numbers."""
    latest = max((visit.pass_number for visit in visits), default=1)
    found: dict[str, list[int]] = {}
    for visit in visits:
        if visit.pass_number < latest and visit.outcome in ("failed", "caught"):
            passes = found.setdefault(visit.name, [])
            if visit.pass_number not in passes:
                passes.append(visit.pass_number)
    return found


class RunStore:
    """Records and runs of one Notiflow deployment (AWS or the embedded stack).

    Records are read through the data-access module (``lambdas/shared/dal/notifications.py``) and its
    one record model; runs through the Step Functions API. Nothing here reads the whole table.
    """

    def __init__(self, dynamodb: Any, stepfunctions: Any, table_name: str, state_machine_arn: str) -> None:
        self.dynamodb = dynamodb
        self.sfn = stepfunctions
        self.table_name = table_name
        self.state_machine_arn = state_machine_arn
        self.notifications = NotificationStore(table_name, client=dynamodb)
        self._input_ids: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def input_notification_id(self, execution: dict[str, Any]) -> str | None:
        """The notification id in an execution's input (DescribeExecution once per run: inputs never change)."""
        arn = execution["executionArn"]
        with self._lock:
            if arn in self._input_ids:
                return self._input_ids[arn]
        if "input" in execution:
            found = notification_id_of_input(execution.get("input"))
        else:
            try:
                found = notification_id_of_input(self.describe(arn).get("input"))
            except self.sfn.exceptions.ExecutionDoesNotExist:
                return None
        with self._lock:
            self._input_ids[arn] = found
        return found

    def record_model(self, notification_id: str) -> NotificationRecord | None:
        """The notification's record, read consistently, as the record model."""
        return self.notifications.get(notification_id)

    def record(self, notification_id: str) -> dict[str, Any] | None:
        """The notification's record, read consistently, as JSON values (absent attributes left out)."""
        record = self.record_model(notification_id)
        return record_json(record) if record else None

    def records(self, notification_ids: list[str], *, full: bool = False) -> dict[str, NotificationRecord]:
        """Records of these ids that exist (BatchGetItem); a list row's attributes unless ``full``."""
        return get_many(self.notifications, notification_ids, attributes=None if full else LIST_ATTRIBUTES)

    def ops_page(
        self,
        status: RecordStatus,
        *,
        since: str | None = None,
        before: str | None = None,
        limit: int = 50,
        start_key: dict[str, Any] | None = None,
    ) -> OpsPage:
        """One page of the operator index: records in ``status``, newest first."""
        return query_ops_page(self.notifications, status, since=since, before=before, limit=limit, start_key=start_key)

    def executions_page(
        self, status: str | None = None, *, limit: int = 50, token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One ListExecutions page, newest first, and the token of the next."""
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn, "maxResults": limit}
        if status:
            kwargs["statusFilter"] = status
        if token:
            kwargs["nextToken"] = token
        response = self.sfn.list_executions(**kwargs)
        return list(response["executions"]), response.get("nextToken")

    def executions(
        self, status: str | None = None, limit: int | None = None, started_after: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Executions newest first, as ListExecutions returns them: at most ``limit``, none started before
        ``started_after`` (paging stops there, so the cost follows the window, not the history)."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page_size = 1000 if limit is None else max(1, min(1000, limit - len(found)))
            page, token = self.executions_page(status, limit=page_size, token=token)
            for execution in page:
                if started_after is not None and execution["startDate"] < started_after:
                    return found
                found.append(execution)
                if limit is not None and len(found) >= limit:
                    return found
            if not token:
                return found

    def execution_arn(self, name: str) -> str:
        """The ARN of this state machine's execution called ``name``."""
        return execution_arn(self.state_machine_arn, name)

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """DescribeExecution."""
        described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
        return described

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every event of the run, oldest first."""
        pages = self.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        return [event for page in pages for event in page["events"]]

    def wait_for_finish(self, execution_arn: str, timeout: float, interval: float = 0.1) -> dict[str, Any]:
        """DescribeExecution once the run has finished (waiting for it to exist first); WaitTimeoutError after
        ``timeout`` seconds. The interval grows up to 2 s, so a long wait against AWS stays cheap."""

        def describe() -> dict[str, Any] | None:
            try:
                return self.describe(execution_arn)
            except self.sfn.exceptions.ExecutionDoesNotExist:
                return None

        finished: dict[str, Any] | None = wait_until(
            describe,
            lambda execution: execution is not None and execution["status"] in FINISHED_EXECUTION_STATUSES,
            timeout=timeout,
            interval=interval,
            max_interval=2.0,
            describe=lambda execution: f"{execution_arn} to finish; it is {execution and execution['status']}",
        )
        if finished is None:  # wait_until returns only a value that passed the check above
            raise RuntimeError(f"{execution_arn} vanished")
        return finished


def record_json(record: NotificationRecord) -> dict[str, Any]:
    """A record as the JSON the CLI and the console show: attributes it does not have are left out."""
    dumped: dict[str, Any] = record.model_dump(mode="json", exclude_none=True)
    return dumped
