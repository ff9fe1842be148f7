"""RedriveExecution with AWS's semantics, and the redrive fields of DescribeExecution.

A redrive keeps the execution ARN, counts ``redriveCount`` (``$$.Execution.RedriveCount`` in the
context object), appends an ``ExecutionRedriven`` event to the same history and resumes at the
top-level state the run was in when it stopped, with the input that state received (states that
exited are not re-run; a Map or Parallel state re-runs as a whole). AWS refuses, with
``ExecutionNotRedrivable``: a run that succeeded or is running, an Express run, one stopped more
than 14 days ago, or one already redriven 1,000 times.
"""

from __future__ import annotations

import copy
import datetime
import json
import threading
from collections.abc import Callable
from typing import Any, Final, cast

from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult
from moto.stepfunctions.parser.api import (
    ExecutionRedrivenEventDetails,
    ExecutionStatus,
    HistoryEventType,
    StateMachineType,
)
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventHistoryContext

from notiflow.local.engine import speed

REDRIVE_WINDOW: Final = datetime.timedelta(days=14)
MAX_REDRIVES: Final = 1000
REDRIVABLE_STATUSES: Final = (ExecutionStatus.FAILED, ExecutionStatus.ABORTED, ExecutionStatus.TIMED_OUT)


class ExecutionNotRedrivableError(AWSError):
    """Same error code as AWS for a redrive of an execution that cannot be redriven."""

    TYPE = "ExecutionNotRedrivable"
    STATUS = 400


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class Redrivable:
    """Redrive state and rules of an execution (mixed into the local Execution)."""

    exec_arn: str
    exec_status: Any
    status: str
    sm_type: Any
    stop_date: datetime.datetime | None
    input_data: Any
    state_machine: Any
    exec_worker: Any
    error: Any
    cause: Any
    output: Any

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redrive_count = 0
        self.redrive_date: datetime.datetime | None = None
        self._redrive_lock = threading.Lock()

    def not_redrivable_reason(self, now: datetime.datetime | None = None) -> str | None:
        """Why AWS would refuse to redrive this execution now, or None when it can be redriven."""
        now = now or _now()
        if self.sm_type != StateMachineType.STANDARD:
            return "Express executions cannot be redriven"
        if self.exec_status not in REDRIVABLE_STATUSES:
            return f"Execution is {self.status} and cannot be redriven"
        if self.stop_date is not None and now - self.stop_date > REDRIVE_WINDOW:
            return "Execution stopped more than 14 days ago"
        if self.redrive_count >= MAX_REDRIVES:
            return f"Execution was redriven {MAX_REDRIVES} times"
        return None

    def resume_point(self) -> tuple[str, Any]:
        """The top-level state the run was in when it stopped, with the input that state received.

        A run that failed before entering any state resumes at StartAt with the execution input.
        """
        program = speed.parse_program(self.state_machine.definition)
        top_level = set(program.states.states)
        open_state: tuple[str, str | None] | None = None
        for event in self.exec_worker.env.event_manager.get_event_history():
            entered = event.get("stateEnteredEventDetails")
            if entered and entered.get("name") in top_level:
                open_state = (entered["name"], entered.get("input"))
            exited = event.get("stateExitedEventDetails")
            if exited and open_state is not None and exited.get("name") == open_state[0]:
                open_state = None
        if open_state is None:
            return program.start_at.start_at_name, copy.deepcopy(self.input_data)
        name, state_input = open_state
        return name, json.loads(state_input) if state_input else {}

    def redrive(self) -> datetime.datetime:
        """RedriveExecution: the same ARN back to RUNNING at the state that failed; returns redriveDate."""
        with self._redrive_lock:
            now = _now()
            reason = self.not_redrivable_reason(now)
            if reason is not None or self.exec_worker is None or self.exec_worker.env is None:
                raise ExecutionNotRedrivableError(f"Execution {self.exec_arn} cannot be redriven: {reason}")
            resume_at, state_input = self.resume_point()
            self.redrive_count += 1
            self.redrive_date = now
            self.exec_status = ExecutionStatus.RUNNING
            self.stop_date = None
            self.error = None
            self.cause = None
            self.output = None
            self.exec_worker.redrive(resume_at, state_input, self.redrive_count)
            return now

    def redrive_description(self) -> dict[str, Any]:
        """DescribeExecution's redrive fields."""
        description: dict[str, Any] = {"redriveCount": self.redrive_count}
        if self.redrive_date is not None:
            description["redriveDate"] = self.redrive_date
        reason = self.not_redrivable_reason()
        description["redriveStatus"] = "REDRIVABLE" if reason is None else "NOT_REDRIVABLE"
        if reason is not None:
            description["redriveStatusReason"] = reason
        return description


def continued_environment(worker: Any, resume_at: str, state_input: Any, redrive_count: int) -> Environment:
    """A fresh Environment for ``worker``'s run that continues the previous history at ``resume_at``."""
    previous = worker.env
    env: Environment = worker._get_evaluation_environment()
    if previous is not None:
        env.event_manager = previous.event_manager
        last_id = max((event["id"] for event in previous.event_manager.get_event_history()), default=0)
        env.event_history_context = EventHistoryContext(previous_event_id=last_id)  # type: ignore[misc]  # Final in moto
    env.event_manager.add_event(
        context=env.event_history_context,
        event_type=HistoryEventType.ExecutionRedriven,
        event_details=cast(
            EventDetails,
            {"executionRedrivenEventDetails": ExecutionRedrivenEventDetails(redriveCount=redrive_count)},
        ),
    )
    env.next_state_name = resume_at
    env.states.reset(input_value=state_input)
    return env


def describe_execution(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap StepFunctionResponse.describe_execution: add the redrive fields."""

    def describe(self: Any) -> Any:
        result = original(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        if isinstance(execution, Redrivable) and isinstance(result, ActionResult):
            cast(dict[str, Any], result.result).update(execution.redrive_description())
        return result

    return describe


def redrive_execution(self: Any) -> ActionResult:
    """RedriveExecution on the local endpoint (moto has none)."""
    arn = self._get_param("executionArn")
    execution = self.stepfunction_backend.describe_execution(arn)
    if not isinstance(execution, Redrivable):
        raise ExecutionNotRedrivableError(f"Execution {arn} cannot be redriven: execution mode is off")
    return ActionResult({"redriveDate": execution.redrive()})
