"""Express state machines: StartExecution without name deduplication, StartSyncExecution, the startExecution task.

A state machine created with ``type=EXPRESS`` runs the same definition on the same interpreter and
worker pool as a Standard one; what differs is what AWS documents for the workflow type:

- StartExecution is asynchronous and at-least-once on AWS: names do not deduplicate, so every call
  starts a new run, whose ARN is ``arn:aws:states:<region>:<account>:express:<machine>:<name>:<id>``.
- StartSyncExecution (moto 5.2.5 has none) starts a run and answers when it ends, with ``status``
  (SUCCEEDED, FAILED or TIMED_OUT), ``output`` or ``error``/``cause``, and ``billingDetails``: the
  duration rounded up to the next 100 ms, and the memory in 64 MB chunks. AWS does not publish how
  it measures an Express run's memory (it grows with the definition and the payloads); the engine
  counts the definition plus the largest of input and output, so a run below 64 MB bills one chunk.
- A run lasts at most five minutes (then TIMED_OUT), whatever the definition's TimeoutSeconds says.
- RedriveExecution refuses an Express run (``ExecutionNotRedrivable``, see :mod:`.redrive`).

Where the local engine is more generous than AWS: AWS keeps no Express run (ListExecutions,
DescribeExecution, GetExecutionHistory and StopExecution answer that Express is not supported; only
CloudWatch Logs has what happened). Locally Express runs stay listable and describable, with their
history, until they fall out of their own retention (``StackSettings.express_retention``, the most
recent 1,000 finished runs, see :mod:`.retention`), and StopExecution stops one.

The ``arn:aws:states:::states:startExecution`` task (Request Response) calls StartExecution in
process; stock moto hands the ASL parameter names (``StateMachineArn``, ``Name``, ``Input``) to boto
and boto's lower-case answer back to the state, so the engine maps both, as the service does. A
name already used answers ``StepFunctions.ExecutionAlreadyExistsException``, the error a Catch sees.
"""

from __future__ import annotations

import datetime
import json
import math
import threading
import uuid
from collections.abc import Callable
from typing import Any, Final

from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult
from moto.stepfunctions.exceptions import InvalidExecutionInput
from moto.stepfunctions.parser.api import ExecutionStatus, StateMachineType, SyncExecutionStatus
from moto.stepfunctions.parser.asl.eval.evaluation_details import StateMachineDetails

from notiflow.local.engine import executions

MAX_DURATION_SECONDS: Final = 300
"""An Express run's longest duration on AWS."""
BILLED_MEMORY_CHUNK_MB: Final = 64
BILLED_DURATION_STEP_MS: Final = 100
SYNC_GRACE_SECONDS: Final = 60
"""How much longer than an Express run can last a StartSyncExecution call waits before it gives up."""
_BOTO_PARAMETERS: Final = {"StateMachineArn": "stateMachineArn", "Name": "name", "Input": "input"}
_ASL_RESULT: Final = {"executionArn": "ExecutionArn", "startDate": "StartDate"}


class StateMachineTypeNotSupportedError(AWSError):
    """Same error code as AWS for StartSyncExecution of a Standard state machine."""

    TYPE = "StateMachineTypeNotSupported"
    STATUS = 400


class ExpressExecutionWorker(executions.LocalExecutionWorker):
    """The local worker with an Express run's five-minute limit."""

    max_duration_seconds = MAX_DURATION_SECONDS


class ExpressExecution(executions.LocalExecution):
    """An Express run: no name deduplication, a five-minute limit, an end a synchronous caller can wait for."""

    is_express = True
    worker_class = ExpressExecutionWorker

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ended = threading.Event()

    def ended(self) -> None:
        self._ended.set()

    def wait(self, timeout: float) -> bool:
        """Block until the run ends; False when ``timeout`` seconds passed first."""
        return self._ended.wait(timeout)

    def get_start_state_machine_details(self) -> StateMachineDetails:
        details = super().get_start_state_machine_details()
        details.typ = StateMachineType.EXPRESS  # type: ignore[misc]  # moto builds it as Standard
        return details


def express_execution_arn(state_machine_arn: str, name: str) -> str:
    """``arn:...:express:<machine>:<name>:<id>``: unique per run, as AWS makes them."""
    prefix, _, machine = state_machine_arn.partition(":stateMachine:")
    return f"{prefix}:express:{machine}:{name}:{uuid.uuid4()}"


def start_express(
    backend: Any, state_machine: Any, name: str | None, execution_input: str | None, trace_header: str | None
) -> ExpressExecution:
    """Start an Express run of ``state_machine`` (called by the engine's StartExecution for Express machines).

    The caller validated the name and chose the mock test case; the input is checked here.
    """
    input_text = "{}" if execution_input is None else execution_input
    try:
        json.loads(input_text)
    except ValueError as exc:
        raise InvalidExecutionInput(f"Invalid State Machine Execution Input: '{exc}'") from None
    name = name or str(uuid.uuid4())
    snapshot = executions.SNAPSHOT_COPY.deepcopy(
        state_machine, {id(state_machine.executions): [], id(state_machine.backend): state_machine.backend}
    )
    execution = ExpressExecution(
        name=name,
        sm_type=StateMachineType.EXPRESS,
        role_arn=snapshot.roleArn,
        exec_arn=express_execution_arn(state_machine.arn, name),
        account_id=backend.account_id,
        region_name=backend.region_name,
        state_machine=snapshot,
        start_date=datetime.datetime.now(tz=datetime.UTC),
        cloud_watch_logging_session=None,
        input_data=input_text,
        trace_header=trace_header,
        activity_store={},
    )
    execution.owner_executions = state_machine.executions
    state_machine.executions.append(execution)
    execution.start()
    return execution


# ---------------------------------------------------------------------------------------------
# StartSyncExecution
# ---------------------------------------------------------------------------------------------


def billing_details(execution: Any) -> dict[str, int]:
    """What AWS bills for an Express run: duration rounded up to 100 ms, memory in 64 MB chunks."""
    stop = execution.stop_date or datetime.datetime.now(tz=datetime.UTC)
    elapsed_ms = max(0.0, (stop - execution.start_date).total_seconds() * 1000)
    billed_ms = max(1, math.ceil(elapsed_ms / BILLED_DURATION_STEP_MS)) * BILLED_DURATION_STEP_MS
    payload = max(len(execution.execution_input or ""), len(json.dumps(execution.output, default=str)))
    used_mb = (len(execution.state_machine.definition) + payload) / (1024 * 1024)
    chunks = max(1, math.ceil(used_mb / BILLED_MEMORY_CHUNK_MB))
    return {"billedMemoryUsedInMB": chunks * BILLED_MEMORY_CHUNK_MB, "billedDurationInMilliseconds": billed_ms}


def sync_output(execution: Any) -> dict[str, Any]:
    """The StartSyncExecution answer for an ended run."""
    status = {
        ExecutionStatus.SUCCEEDED: SyncExecutionStatus.SUCCEEDED,
        ExecutionStatus.TIMED_OUT: SyncExecutionStatus.TIMED_OUT,
    }.get(execution.exec_status, SyncExecutionStatus.FAILED)
    response: dict[str, Any] = {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "startDate": execution.start_date,
        "stopDate": execution.stop_date,
        "status": status.value,
        "input": execution.execution_input,
        "inputDetails": {"included": True},
        "billingDetails": billing_details(execution),
    }
    if status is SyncExecutionStatus.SUCCEEDED:
        response["output"] = json.dumps(execution.output, separators=(",", ":"))
        response["outputDetails"] = {"included": True}
    if execution.error is not None:
        response["error"] = execution.error
    if execution.cause is not None:
        response["cause"] = execution.cause
    if execution.trace_header:
        response["traceHeader"] = execution.trace_header
    return response


def start_sync_execution(self: Any) -> ActionResult:
    """StartSyncExecution on the local endpoint: start an Express run and answer when it has ended."""
    arn = self._get_param("stateMachineArn")
    backend = self.stepfunction_backend
    state_machine = backend.describe_state_machine(arn.partition("#")[0] if arn else arn)
    if getattr(state_machine, "type", None) != StateMachineType.EXPRESS:
        raise StateMachineTypeNotSupportedError("This operation is not supported by this type of state machine")
    execution = backend.start_execution(
        arn, self._get_param("name"), self._get_param("input", if_none="{}"), self._get_param("traceHeader")
    )
    if not isinstance(execution, ExpressExecution):
        raise StateMachineTypeNotSupportedError("StartSyncExecution needs the engine's execution mode")
    if not execution.wait(MAX_DURATION_SECONDS + SYNC_GRACE_SECONDS):
        execution.stop(stop_date=datetime.datetime.now(tz=datetime.UTC), error="States.Timeout", cause=None)
        execution.wait(SYNC_GRACE_SECONDS)
        execution.exec_status = ExecutionStatus.TIMED_OUT
    return ActionResult(sync_output(execution))


def validate_execution_arn(original: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    """Wrap the backend's execution ARN check: an Express run's ARN names it too."""

    def validate(self: Any, execution_arn: str) -> None:
        original(self, execution_arn.replace(":express:", ":execution:", 1) if execution_arn else execution_arn)

    return validate


# ---------------------------------------------------------------------------------------------
# The states:startExecution task
# ---------------------------------------------------------------------------------------------


def startexecution_parameters(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap StateTaskServiceSfn._normalise_parameters: ASL names (StateMachineArn, Name, Input) to boto's."""

    def normalise(
        self: Any, parameters: dict[str, Any], boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        original(self, parameters, boto_service_name, service_action_name)
        if service_action_name is None and self._get_boto_service_action() == "start_execution":
            for asl_name, boto_name in _BOTO_PARAMETERS.items():
                if asl_name in parameters:
                    parameters[boto_name] = parameters.pop(asl_name)

    return normalise


def startexecution_result(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap StateTaskServiceSfn._normalise_response: boto's answer as the state sees it (ExecutionArn, StartDate)."""

    def normalise(self: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None) -> None:
        original(self, response, boto_service_name, service_action_name)
        if (
            service_action_name is None
            and isinstance(response, dict)
            and self._get_boto_service_action() == "start_execution"
        ):
            for boto_name, asl_name in _ASL_RESULT.items():
                if boto_name in response:
                    value = response.pop(boto_name)
                    response[asl_name] = value.isoformat() if isinstance(value, datetime.datetime) else value

    return normalise
