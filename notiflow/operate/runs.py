"""Reading runs back: notification records and execution histories, through plain boto3.

The demo table, the ``notiflow runs`` commands and the local console all read
what happened from here, from the DynamoDB record and the execution history, so
none of them can show what a caller merely expected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from lambdas.shared.constants import FINISHED_EXECUTION_STATUSES, TABLE_PARTITION_KEY
from notiflow.shared.jsonutil import plain
from notiflow.shared.waiting import wait_until

_DESERIALIZER = TypeDeserializer()
_TASK_FAILURES = ("TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskSubmitFailed")
_RUN_FAILURES = ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut")


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

    @property
    def retries(self) -> int:
        """Extra task attempts made by Retry (0 for non-Task states)."""
        return max(self.attempts - 1, 0)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["entered"] = self.entered.isoformat()
        data["exited"] = self.exited.isoformat() if self.exited else None
        data["retries"] = self.retries
        return data


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
    for event in events:
        kind: str = event["type"]
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            current = StateVisit(
                name=details.get("name", "?"),
                type=kind.removesuffix("StateEntered"),
                entered=event["timestamp"],
                input=_loads(details.get("input")),
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
    return visits


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


def state_colours(visits: list[StateVisit], all_states: list[str]) -> dict[str, str]:
    """How each state of the definition went in this run; the last visit of a state wins."""
    colours = dict.fromkeys(all_states, "not-reached")
    for visit in visits:
        colours[visit.name] = visit.outcome
    return colours


def plain_item(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item as plain JSON values (Decimals become ints or floats)."""
    record: dict[str, Any] = plain({key: _DESERIALIZER.deserialize(value) for key, value in item.items()})
    return record


class RunStore:
    """Records and histories of one Notiflow deployment (AWS or the embedded stack)."""

    def __init__(self, dynamodb: Any, stepfunctions: Any, table_name: str, state_machine_arn: str) -> None:
        self.dynamodb = dynamodb
        self.sfn = stepfunctions
        self.table_name = table_name
        self.state_machine_arn = state_machine_arn

    def record(self, notification_id: str) -> dict[str, Any] | None:
        """The notification's record, read consistently, or None."""
        response = self.dynamodb.get_item(
            TableName=self.table_name, Key={TABLE_PARTITION_KEY: {"S": notification_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return plain_item(item) if item else None

    def records(self) -> list[dict[str, Any]]:
        """Every record of the table (a full scan: the operator views filter in memory)."""
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table_name)
        return [plain_item(item) for page in pages for item in page["Items"]]

    def executions(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Executions of the state machine, newest first as ListExecutions returns them, at most ``limit``."""
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn}
        if status:
            kwargs["statusFilter"] = status
        if limit:
            kwargs["PaginationConfig"] = {"MaxItems": limit}
        pages = self.sfn.get_paginator("list_executions").paginate(**kwargs)
        return [execution for page in pages for execution in page["executions"]]

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
