"""Reading billable facts out of execution histories, as GetExecutionHistory returns them.

Standard workflows bill state transitions: each state entered counts, and each retry of a state
counts again (AWS: "state transitions, retries included"). In a history a retry is a second
``*Scheduled`` event within one state entry, so :func:`transitions` counts ``*StateEntered`` events
plus every ``*Scheduled`` after the first in the same entry.

Express workflows bill one request per run and its duration, rounded up to 100 ms, times its memory
in 64 MB chunks (:func:`express_billing`). The duration is the run's own: from its first to its last
event, or StartSyncExecution's ``billingDetails`` when the run reported them. A local stack runs
waits on a shortened time scale, so :func:`unscaled_duration_ms` puts a run's retry back-offs and
Wait states back to the length they would have had.

Execution logs: a state machine logging at a level writes each history event of that level to its
log group as one JSON event (without execution data here: Notiflow sets ``includeExecutionData``
false). :func:`log_event_bytes` renders those events and counts their bytes, for any level.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

LOG_LEVELS: Final = ("ALL", "ERROR", "FATAL", "OFF")
FATAL_EVENTS: Final = frozenset({"ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"})
_ERROR_SUFFIXES: Final = ("Failed", "TimedOut", "Aborted", "StartFailed", "SubmitFailed")
_DATA_FIELDS: Final = frozenset({"input", "output", "inputDetails", "outputDetails", "parameters", "cause"})
"""Fields Step Functions leaves out of a log event when execution data is not included."""

Event = Mapping[str, Any]


def _timestamp_ms(event: Event) -> float:
    value = event["timestamp"]
    if isinstance(value, datetime):
        return value.timestamp() * 1000
    if isinstance(value, int | float):
        return float(value) * (1000 if value < 1e11 else 1)
    return datetime.fromisoformat(str(value)).timestamp() * 1000


def transitions(events: Iterable[Event]) -> int:
    """Billed state transitions of one Standard run: states entered plus retries."""
    count = 0
    scheduled_in_state = 0
    for event in events:
        kind = str(event.get("type", ""))
        if kind.endswith("StateEntered"):
            count += 1
            scheduled_in_state = 0
        elif kind.endswith("Scheduled"):
            if scheduled_in_state:
                count += 1
            scheduled_in_state += 1
    return count


def states_entered(events: Iterable[Event]) -> list[str]:
    """Names of the states a run entered, in order (for reports and tests)."""
    names = []
    for event in events:
        if str(event.get("type", "")).endswith("StateEntered"):
            names.append(str((event.get("stateEnteredEventDetails") or {}).get("name", "")))
    return names


@dataclass(frozen=True)
class TaskCall:
    """One call a Task state made (a Lambda invoke, a DynamoDB write, a startExecution), with its duration."""

    state: str
    resource_type: str
    resource: str
    duration_ms: float
    failed: bool


def task_calls(events: Sequence[Event]) -> list[TaskCall]:
    """Every task call of a run, from ``TaskStarted`` to its ``TaskSucceeded``/``Failed``/``TimedOut``."""
    calls: list[TaskCall] = []
    state = ""
    started: tuple[float, str, str] | None = None
    for event in events:
        kind = str(event.get("type", ""))
        if kind.endswith("StateEntered"):
            state = str((event.get("stateEnteredEventDetails") or {}).get("name", ""))
        elif kind == "TaskStarted":
            details = event.get("taskStartedEventDetails") or {}
            started = (_timestamp_ms(event), str(details.get("resourceType", "")), str(details.get("resource", "")))
        elif kind in ("TaskSucceeded", "TaskFailed", "TaskTimedOut") and started is not None:
            calls.append(
                TaskCall(state, started[1], started[2], _timestamp_ms(event) - started[0], kind != "TaskSucceeded")
            )
            started = None
    return calls


def duration_ms(events: Sequence[Event]) -> float:
    """A run's duration: from its first event to its last."""
    if not events:
        return 0.0
    return _timestamp_ms(events[-1]) - _timestamp_ms(events[0])


def waited_ms(events: Sequence[Event]) -> float:
    """Time a run spent waiting: retry back-offs (a failure to the next schedule) and Wait states."""
    total = 0.0
    failed_at: float | None = None
    wait_entered: float | None = None
    for event in events:
        kind = str(event.get("type", ""))
        if kind in ("TaskFailed", "TaskTimedOut", "LambdaFunctionFailed", "LambdaFunctionTimedOut"):
            failed_at = _timestamp_ms(event)
        elif kind.endswith("Scheduled") and failed_at is not None:
            total += _timestamp_ms(event) - failed_at
            failed_at = None
        elif kind.endswith("StateExited") or kind.endswith("StateEntered"):
            failed_at = None
        if kind == "WaitStateEntered":
            wait_entered = _timestamp_ms(event)
        elif kind == "WaitStateExited" and wait_entered is not None:
            total += _timestamp_ms(event) - wait_entered
            wait_entered = None
    return total


def unscaled_duration_ms(events: Sequence[Event], time_scale: float) -> float:
    """A run's duration with its waits restored from ``time_scale`` (1.0: as measured)."""
    if time_scale <= 0:
        raise ValueError("time_scale must be positive")
    waits = waited_ms(events)
    return duration_ms(events) - waits + waits / time_scale


@dataclass(frozen=True)
class ExpressBilling:
    """What one Express run bills: one request, and its duration and memory rounded up."""

    duration_ms: float
    billed_ms: int
    billed_memory_mb: int
    measured_memory: bool

    @property
    def gb_seconds(self) -> float:
        """Billed duration times billed memory."""
        return self.billed_ms / 1000 * self.billed_memory_mb / 1024


def express_billing(
    duration: float, *, step_ms: int, memory_mb: float, billing_details: Mapping[str, Any] | None = None
) -> ExpressBilling:
    """An Express run's billing: StartSyncExecution's ``billingDetails`` when given, else rounded up here."""
    if billing_details and billing_details.get("billedDurationInMilliseconds") is not None:
        return ExpressBilling(
            duration_ms=duration,
            billed_ms=int(billing_details["billedDurationInMilliseconds"]),
            billed_memory_mb=int(billing_details.get("billedMemoryUsedInMB") or _chunks(memory_mb)),
            measured_memory=billing_details.get("billedMemoryUsedInMB") is not None,
        )
    billed = max(step_ms, math.ceil(duration / step_ms) * step_ms)
    return ExpressBilling(duration, billed, _chunks(memory_mb), measured_memory=False)


def _chunks(memory_mb: float) -> int:
    return max(64, math.ceil(memory_mb / 64) * 64)


def event_level(kind: str) -> str:
    """The most selective level that still logs an event type: FATAL, ERROR or ALL."""
    if kind in FATAL_EVENTS:
        return "FATAL"
    if kind.endswith(_ERROR_SUFFIXES):
        return "ERROR"
    return "ALL"


def logged_at(kind: str, level: str) -> bool:
    """Whether a state machine logging at ``level`` writes an event of type ``kind``."""
    if level == "OFF":
        return False
    order = {"FATAL": 0, "ERROR": 1, "ALL": 2}
    return order[event_level(kind)] <= order[level]


def log_event(event: Event, execution_arn: str, redrive_count: int = 0) -> str:
    """The CloudWatch Logs event Step Functions writes for one history event, without execution data."""
    details: dict[str, Any] = {}
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            details = {k: v for k, v in value.items() if k not in _DATA_FIELDS}
    body = {
        "id": str(event.get("id", "")),
        "type": str(event.get("type", "")),
        "details": details,
        "previous_event_id": str(event.get("previousEventId", 0)),
        "event_timestamp": str(int(_timestamp_ms(event))),
        "execution_arn": execution_arn,
        "redrive_count": str(redrive_count),
    }
    return json.dumps(body, separators=(",", ":"), default=str)


def log_event_bytes(events: Iterable[Event], execution_arn: str, level: str, overhead: int = 0) -> int:
    """Bytes a state machine logging at ``level`` ingests for one run's events."""
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    return sum(
        len(log_event(event, execution_arn).encode("utf-8")) + overhead
        for event in events
        if logged_at(str(event.get("type", "")), level)
    )


@dataclass(frozen=True)
class Retry:
    """One retry a run made: the state, the error that caused it, and its number within that state entry."""

    state: str
    error: str
    number: int


def retries(events: Sequence[Event]) -> list[Retry]:
    """Every retry of a run, in order (a failed task followed by a new schedule in the same state entry)."""
    found: list[Retry] = []
    state = ""
    number = 0
    error: str | None = None
    for event in events:
        kind = str(event.get("type", ""))
        if kind.endswith("StateEntered"):
            state = str((event.get("stateEnteredEventDetails") or {}).get("name", ""))
            number, error = 0, None
        elif kind in ("TaskFailed", "TaskTimedOut", "LambdaFunctionFailed", "LambdaFunctionTimedOut"):
            details = next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, Mapping)), {})
            error = str(details.get("error", "States.TaskFailed" if "Failed" in kind else "States.Timeout"))
        elif kind.endswith("Scheduled") and error is not None:
            number += 1
            found.append(Retry(state, error, number))
            error = None
    return found


def expected_backoff_ms(definition: Mapping[str, Any], retry: Retry) -> float:
    """The back-off a retry waits on average, from its state's retrier in the definition.

    FULL jitter draws the wait uniformly below its bound, so the mean is half the bound. Used where a
    local run's waits were shortened by the engine's time scale and cannot be measured at full length.
    """
    state = (definition.get("States") or {}).get(retry.state) or {}
    for retrier in state.get("Retry") or ():
        errors = retrier.get("ErrorEquals") or ()
        if retry.error in errors or "States.ALL" in errors:
            bound = float(retrier.get("IntervalSeconds", 1)) * float(retrier.get("BackoffRate", 2.0)) ** (
                retry.number - 1
            )
            if retrier.get("MaxDelaySeconds") is not None:
                bound = min(bound, float(retrier["MaxDelaySeconds"]))
            return bound * 1000 * (0.5 if retrier.get("JitterStrategy") == "FULL" else 1.0)
    return 0.0


def full_scale_duration_ms(events: Sequence[Event], definition: Mapping[str, Any], time_scale: float) -> float:
    """A run's duration as it would take on AWS: measured as is at time scale 1, else its busy time
    (the run minus its shortened waits) plus each retry's expected back-off from the definition."""
    if time_scale == 1.0:
        return duration_ms(events)
    busy = duration_ms(events) - waited_ms(events)
    return busy + sum(expected_backoff_ms(definition, retry) for retry in retries(events))
