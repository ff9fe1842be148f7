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

from lambdas.shared.constants import TABLE_PARTITION_KEY

_DESERIALIZER = TypeDeserializer()


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
        elif kind in ("TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskSubmitFailed"):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
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
        elif kind in ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            if current.exited is None:
                current.outcome = "failed"
                current.exited = event["timestamp"]
                if details.get("error") and not current.errors:
                    current.errors.append({"error": details.get("error"), "cause": details.get("cause")})
        elif kind == "ExecutionRedriven":
            current = None
    return visits


def state_colours(visits: list[StateVisit], all_states: list[str]) -> dict[str, str]:
    """How each state of the definition went in this run; the last visit of a state wins."""
    colours = dict.fromkeys(all_states, "not-reached")
    for visit in visits:
        colours[visit.name] = visit.outcome
    return colours


def plain_item(item: dict[str, Any]) -> dict[str, Any]:
    """A record as plain JSON values (Decimals become ints or floats)."""

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        if hasattr(value, "as_integer_ratio") and not isinstance(value, (bool, int, float)):
            return int(value) if value == int(value) else float(value)
        return value

    return convert(item)


class RunStore:
    """Records and histories of one Notiflow deployment (AWS or the embedded stack)."""

    def __init__(self, dynamodb: Any, stepfunctions: Any, table_name: str, state_machine_arn: str) -> None:
        self.dynamodb = dynamodb
        self.sfn = stepfunctions
        self.table_name = table_name
        self.state_machine_arn = state_machine_arn

    def record(self, notification_id: str) -> dict[str, Any] | None:
        response = self.dynamodb.get_item(
            TableName=self.table_name, Key={TABLE_PARTITION_KEY: {"S": notification_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return plain_item({k: _DESERIALIZER.deserialize(v) for k, v in item.items()}) if item else None

    def records(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table_name}
        while True:
            page = self.dynamodb.scan(**kwargs)
            items += [plain_item({k: _DESERIALIZER.deserialize(v) for k, v in it.items()}) for it in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn, "maxResults": 1000}
        if status:
            kwargs["statusFilter"] = status
        found: list[dict[str, Any]] = []
        while True:
            page = self.sfn.list_executions(**kwargs)
            found += page["executions"]
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]

    def execution_arn(self, name: str) -> str:
        return execution_arn(self.state_machine_arn, name)

    def describe(self, execution_arn: str) -> dict[str, Any]:
        return self.sfn.describe_execution(executionArn=execution_arn)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]
