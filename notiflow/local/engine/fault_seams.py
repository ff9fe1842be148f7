"""The hooks of :mod:`.faults` at the engine's seams: each asks the active injector and injects what it decides.

Lambda (:func:`before_invoke`, :func:`after_invoke`, :func:`crash_after_send`) from
:func:`.runtime.invoke`; DynamoDB (:func:`throttle_dynamodb`, :func:`throttled`) from moto's backend;
SQS (:func:`duplicates`) from the poller; the interpreter (:func:`crash_after_state`) between states.
Each is idle (one attribute read) while no faults are configured.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from moto.awslambda.exceptions import LambdaClientError
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

from notiflow.local.engine import faults, scheduler
from notiflow.local.engine.faults import (
    CRASH_AFTER_SEND,
    CRASH_AFTER_STATE,
    CRASH_AFTER_STATE_ERROR,
    DDB_THROTTLE,
    LAMBDA_THROTTLE,
    LAMBDA_TIMEOUT,
    SQS_DUPLICATE,
    FaultInjector,
)


def _execution() -> str | None:
    run = scheduler.current_run()
    return run.name if run is not None else None


def _notification(event: Any) -> str | None:
    """The notification id of a Lambda event (at its top or one level down), or those of an SQS batch's bodies."""
    if isinstance(event, dict):
        if isinstance(event.get("notificationId"), str):
            return str(event["notificationId"])
        for value in event.values():  # {"input": {...}} (Validate), {"notification": {...}} (Deliver)
            if isinstance(value, dict) and isinstance(value.get("notificationId"), str):
                return str(value["notificationId"])
        records = event.get("Records")
        if isinstance(records, list):
            ids = [_body_notification(record.get("body")) for record in records if isinstance(record, dict)]
            return ",".join(i for i in ids if i) or None
    return None


def _body_notification(body: Any) -> str | None:
    try:
        value = json.loads(body) if isinstance(body, str) else None
    except (ValueError, RecursionError):  # a hostile body (e.g. 50,000 opening brackets) names no notification
        return None
    candidate = value.get("notificationId") if isinstance(value, dict) else None
    return candidate if isinstance(candidate, str) else None


def _digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class LambdaThrottledError(LambdaClientError):
    """What the Invoke API answers to a throttled invocation (HTTP 429)."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


class SandboxCrash(BaseException):
    """Raised inside a handler after its HTTP request was sent; a BaseException so handler code cannot catch it."""


@dataclass
class InvocationFaults:
    """The faults armed for one invocation."""

    function: str
    execution: str | None
    notification: str | None
    timeout: bool = False
    crash_after_send: bool = False
    crashed: bool = False


_armed: contextvars.ContextVar[InvocationFaults | None] = contextvars.ContextVar("notiflow_fault", default=None)


def before_invoke(function: Any, event: Any) -> InvocationFaults | None:
    """Decide the Lambda faults of one invocation; raises :class:`LambdaThrottledError` for a throttle."""
    injector = faults.current()
    if injector is None:
        return None
    name = str(function.function_name)
    execution, notification = _execution(), _notification(event)
    subject = f"{name}|{notification or execution or _digest(event)}"
    about = {"function": name, "execution": execution, "notification": notification}
    if injector.decide(LAMBDA_THROTTLE, subject):
        injector.record(LAMBDA_THROTTLE, "TooManyRequestsException", "lambda-invoke", **about)
        raise LambdaThrottledError()
    return InvocationFaults(
        name,
        execution,
        notification,
        timeout=injector.decide(LAMBDA_TIMEOUT, subject),
        crash_after_send=injector.decide(CRASH_AFTER_SEND, subject),
    )


_IDLE = contextlib.nullcontext()


def invocation(armed: InvocationFaults | None) -> contextlib.AbstractContextManager[None]:
    """Arm ``armed`` for the handler running in this block (this thread or greenlet); idle when None."""
    return _IDLE if armed is None else _arming(armed)


@contextlib.contextmanager
def _arming(armed: InvocationFaults) -> Iterator[None]:
    token = _armed.set(armed)
    try:
        yield
    finally:
        _armed.reset(token)


def after_invoke(armed: InvocationFaults | None) -> str | None:
    """The error type the invocation ends with instead of its result: a crash, then an injected timeout."""
    if armed is None:
        return None
    injector = faults.current()
    about = {"function": armed.function, "execution": armed.execution, "notification": armed.notification}
    if armed.crashed:
        if injector is not None:
            injector.record(CRASH_AFTER_SEND, "Runtime.ExitError", "requests-send", **about)
        return "Runtime.ExitError"
    if armed.timeout and injector is not None:
        injector.record(LAMBDA_TIMEOUT, "Sandbox.Timedout", "lambda-invoke", **about)
        return "Sandbox.Timedout"
    return None


def crash_after_send(send: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``requests.adapters.HTTPAdapter.send``: an armed invocation dies once its request got an answer."""

    def send_then_crash(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = send(self, request, *args, **kwargs)
        armed = _armed.get()
        if armed is not None and armed.crash_after_send and not armed.crashed:
            armed.crashed = True
            response.close()
            raise SandboxCrash(f"sandbox died after {request.method} was answered {response.status_code}")
        return response

    return send_then_crash


def as_client_error(error: LambdaClientError, operation: str = "Invoke") -> ClientError:
    """The botocore error an in-process caller of the Invoke API sees for a refused invocation."""
    return ClientError(
        {
            "Error": {"Code": error.error_type, "Message": error.message},
            "ResponseMetadata": {"HTTPStatusCode": error.code, "RequestId": _digest(id(error))},
        },
        operation,
    )


class DynamoDBThrottledError(DynamodbException):
    """ProvisionedThroughputExceededException, as DynamoDB answers a throttled request (HTTP 400)."""

    def __init__(self) -> None:
        super().__init__(
            ERROR_TYPE_PREFIX + "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. "
            "Consider increasing your provisioning level with the UpdateTable API.",
        )


def _item_key(backend: Any, table_name: str, item: Any) -> str:
    try:
        table = backend.get_table(table_name)
        names = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
        values = [next(iter(item[name].values())) for name in names if name in item]
        return "/".join(str(value) for value in values)
    except Exception:  # a request moto itself will reject: let it
        return ""


def throttle_dynamodb(backend: Any, operation: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`DynamoDBThrottledError` when ``ddb-throttle`` hits this request to ``operation``."""
    injector = faults.current()
    if injector is None or injector.spec.probability(DDB_THROTTLE) <= 0.0:
        return
    values = list(args) + list(kwargs.values())
    table = values[0] if values and isinstance(values[0], str) else ""
    key = _item_key(backend, table, values[1]) if len(values) > 1 and isinstance(values[1], dict) else ""
    if not injector.decide(DDB_THROTTLE, f"{operation}|{table}|{key}"):
        return
    injector.record(
        DDB_THROTTLE,
        "ProvisionedThroughputExceededException",
        "dynamodb-backend",
        execution=_execution(),
        notification=key or None,
        detail=f"{operation} {table}".strip(),
    )
    raise DynamoDBThrottledError()


def throttled(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a DynamoDBBackend read (GetItem, Query) so ``ddb-throttle`` can refuse it."""
    operation = method.__name__

    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        throttle_dynamodb(self, operation, args, kwargs)
        return method(self, *args, **kwargs)

    read.__name__ = read.__qualname__ = operation
    read.__doc__ = method.__doc__
    return read


def duplicates(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The received messages ``sqs-duplicate`` hands to the function a second time."""
    injector = faults.current()
    if injector is None or injector.spec.probability(SQS_DUPLICATE) <= 0.0:
        return []
    chosen = []
    for message in messages:
        body = message.get("Body", "")
        if injector.decide(SQS_DUPLICATE, _digest(body)):
            chosen.append(message)
            injector.record(
                SQS_DUPLICATE,
                "DuplicateDelivery",
                "sqs-poller",
                notification=_body_notification(body),
                detail=f"message {message.get('MessageId')}",
            )
    return chosen


def _execution_input(env: Any) -> Any:
    try:
        return env.states.context_object.context_object_data["Execution"]["Input"]
    except (AttributeError, KeyError, TypeError):
        return None


def crash_after_state(eval_body: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """Wrap ``CommonStateField._eval_body``: a run may be lost right after a state completed."""

    def evaluate(self: Any, env: Any) -> None:
        eval_body(self, env)
        injector = faults.current()
        if injector is None or env.is_frame() or not env.is_running():
            return
        _crash_if_hit(injector, self.name, env)

    return evaluate


def _crash_if_hit(injector: FaultInjector, state: str, env: Any) -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, StateMachineType

    try:
        execution = str(env.states.context_object.context_object_data["Execution"]["Name"])
    except (AttributeError, KeyError, TypeError):
        execution = _execution() or ""
    notification = _notification(_execution_input(env))
    once = injector.take_crash_once(state, (notification, execution))
    probability = injector.spec.crash_after_state.get(state, 0.0)
    if not once and not injector.decide(CRASH_AFTER_STATE, f"{state}|{notification or execution}", probability):
        return
    express = env.execution_type == StateMachineType.EXPRESS
    injector.record(
        CRASH_AFTER_STATE,
        CRASH_AFTER_STATE_ERROR,
        "interpreter",
        state=state,
        execution=execution,
        notification=notification,
        outcome="failed" if express else "resumed",
    )
    if express:
        env.set_error(
            ExecutionFailedEventDetails(
                error=CRASH_AFTER_STATE_ERROR,
                cause=f"Injected fault: the run was lost after state {state} completed",
            )
        )
