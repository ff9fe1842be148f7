"""The in-process Lambda runtime: a moto function's handler called in this process, as the Python runtime would.

Every in-process invocation takes one path: moto's ``LambdaFunction.invoke`` (the Invoke API, the
SQS poller and Lambda tasks of the interpreter all reach it) calls ``_invoke_lambda``, which the
engine replaces with :func:`moto_invoke_lambda` and so with :func:`invoke`.

What the runtime reproduces: the handler's exception becomes an errored payload whose ``errorType``
is the exception class name (Retry and Catch match it as on AWS); a result that is not JSON is
``Runtime.MarshalError``; a bad Handler string is an init error; the function's Environment is put
into ``os.environ``; the context has the function's name, version, memory, request id and deadline;
an invocation that outlasts the function's Timeout reports ``Sandbox.Timedout``.

The handler runs on the calling thread (no thread per invocation), so a Timeout is reported when the
handler returns: the run still fails with ``Sandbox.Timedout`` after the same number of attempts,
but a handler that never returns holds its worker (handlers bound their own I/O with timeouts).
The first invocation of each function runs alone, like the init phase of one warm environment, so
concurrent first calls do not each build the clients and providers handler code caches.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.core import DEFAULT_ACCOUNT_ID

from notiflow.local.engine import fault_seams

DEFAULT_TIMEOUT_SECONDS: Final = 3


class EnvironmentConflictError(RuntimeError):
    """Two functions want different values for one environment variable of this shared process."""


@dataclass(frozen=True)
class LambdaContext:
    """The context object the Python Lambda runtime passes to a handler."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """One handler run as the Invoke API reports it: the payload text and whether it errored."""

    payload: str
    errored: bool

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)

    @property
    def error_type(self) -> str | None:
        """``errorType`` of an errored invocation (what Retry and Catch match on)."""
        if not self.errored:
            return None
        try:
            return self.json().get("errorType")
        except (ValueError, AttributeError):
            return None


class _RuntimeInitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


# ---------------------------------------------------------------------------------------------
# Environment: one os.environ shared by every function
# ---------------------------------------------------------------------------------------------

_env_lock = threading.Lock()
_applied_env: dict[str, tuple[str, str]] = {}
_saved_env: dict[str, str | None] = {}


def function_environment(function: Any) -> dict[str, str]:
    """A moto function's Environment Variables."""
    return {str(key): str(value) for key, value in (function.environment_vars or {}).items()}


def apply_function_environment(function: Any) -> None:
    """Put a function's Environment Variables into os.environ before its handler runs.

    All handlers share one process, so the functions must agree on every value they both set.
    """
    variables = function_environment(function)
    with _env_lock:
        for key, value in variables.items():
            previous = _applied_env.get(key)
            if previous is not None and previous[0] != value and previous[1] != function.function_arn:
                raise EnvironmentConflictError(
                    f"environment variable {key} is {previous[0]!r} for {previous[1]} but {value!r} for "
                    f"{function.function_arn}; in-process functions share one environment"
                )
        for key, value in variables.items():
            if key not in _saved_env:
                _saved_env[key] = os.environ.get(key)
            _applied_env[key] = (value, function.function_arn)
            if os.environ.get(key) != value:
                os.environ[key] = value


def restore_environment() -> None:
    """Undo every variable the functions applied, restoring the values from before."""
    with _env_lock:
        for key, value in _saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _saved_env.clear()
        _applied_env.clear()


def refuse_conflicting_environment(create_function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap LambdaBackend.create_function: refuse an Environment that contradicts another function's."""

    def checked_create_function(self: Any, spec: dict[str, Any]) -> Any:
        variables = {str(k): str(v) for k, v in ((spec.get("Environment") or {}).get("Variables") or {}).items()}
        for other in self.list_functions():
            if other.function_name == spec.get("FunctionName"):
                continue
            for key, value in function_environment(other).items():
                if key in variables and variables[key] != value:
                    raise InvalidParameterValueException(
                        f"Environment variable {key}={variables[key]!r} contradicts {key}={value!r} of function "
                        f"{other.function_name}: the local engine runs every handler in one process"
                    )
        return create_function(self, spec)

    return checked_create_function


# ---------------------------------------------------------------------------------------------
# Handlers and cold starts
# ---------------------------------------------------------------------------------------------

_handlers: dict[str, Callable[..., Any]] = {}
_handlers_lock = threading.Lock()
_warm: set[str] = set()
_init_locks: dict[str, threading.Lock] = {}


def _resolve_handler(handler: str | None) -> Callable[..., Any]:
    cached = _handlers.get(handler or "")
    if cached is not None:
        return cached
    module_name, _, attribute = (handler or "").rpartition(".")
    if not module_name or not attribute:
        raise _RuntimeInitError("Runtime.MalformedHandlerName", f"Bad handler '{handler}': not enough values to unpack")
    with _handlers_lock:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise _RuntimeInitError(
                "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
            ) from exc
        function = getattr(module, attribute, None)
        if not callable(function):
            raise _RuntimeInitError(
                "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'"
            )
        _handlers[handler or ""] = function
    return function


def cold_start(package_prefixes: tuple[str, ...] = ("lambdas",)) -> int:
    """Clear module-level functools caches of handler code already imported, as a new container would.

    Handlers cache boto3 clients and settings; a cache filled under another endpoint (a unit test's
    mock, an earlier stack) must not leak into this one. Returns how many caches were cleared.
    """
    _warm.clear()
    cleared = 0
    for name, module in list(sys.modules.items()):
        if module is None or not any(name == p or name.startswith(p + ".") for p in package_prefixes):
            continue
        for value in list(vars(module).values()):
            if getattr(value, "__module__", None) == name and callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
                cleared += 1
    powertools_parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters.base")
    if powertools_parameters is not None:
        # Powertools keeps one provider (and its boto3 client) per process for get_secret & co.
        powertools_parameters.clear_caches()
        cleared += 1
    return cleared


# ---------------------------------------------------------------------------------------------
# Invocation
# ---------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _error_payload(error_type: str, message: str, request_id: str, stack: list[str]) -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack})


def _run_handler(function: Any, event: Any, context: LambdaContext) -> Invocation:
    request_id = context.aws_request_id
    try:
        apply_function_environment(function)
        handler = _resolve_handler(function.handler)
        result = handler(event, context)
    except _RuntimeInitError as failure:
        return Invocation(_error_payload(failure.error_type, str(failure), request_id, []), True)
    except Exception as exc:
        stack = traceback.format_list(traceback.extract_tb(exc.__traceback__))
        return Invocation(_error_payload(type(exc).__name__, str(exc), request_id, stack), True)
    try:
        return Invocation(json.dumps(result, default=_json_default), False)
    except (TypeError, ValueError) as exc:
        message = f"Unable to marshal response: {exc}"
        return Invocation(_error_payload("Runtime.MarshalError", message, request_id, []), True)


def invoke(function: Any, event: Any, *, invoked_function_arn: str | None = None) -> Invocation:
    """Run a moto LambdaFunction's handler on this thread, reporting like the Python runtime."""
    request_id = str(uuid.uuid4())
    timeout = float(function.timeout or DEFAULT_TIMEOUT_SECONDS)
    now = datetime.datetime.now(tz=datetime.UTC)
    started = time.monotonic()
    context = LambdaContext(
        function_name=function.function_name,
        function_version=str(function.version),
        invoked_function_arn=invoked_function_arn or function.function_arn,
        memory_limit_in_mb=int(function.memory_size or 128),
        aws_request_id=request_id,
        log_group_name=function.logs_group_name,
        log_stream_name=f"{now:%Y/%m/%d}/[{function.version}]{request_id.replace('-', '')}",
        deadline=started + timeout,
    )
    key = function.function_arn
    invocation = None
    injected = fault_seams.before_invoke(function, event)  # raises a throttle; arms a timeout or a crash
    with fault_seams.invocation(injected):
        try:
            if key not in _warm:
                # One cold start per function; the invocations that queued behind it run concurrently once warm.
                with _init_locks.setdefault(key, threading.Lock()):
                    if key not in _warm:
                        invocation = _run_handler(function, event, context)
                        _warm.add(key)
            if invocation is None:
                invocation = _run_handler(function, event, context)
        except fault_seams.SandboxCrash:
            _warm.add(key)
    fault = fault_seams.after_invoke(injected)
    if fault == "Runtime.ExitError" or invocation is None:
        message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
        return Invocation(_error_payload("Runtime.ExitError", message, request_id, []), True)
    if fault == "Sandbox.Timedout" or time.monotonic() - started > timeout:
        message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
        return Invocation(_error_payload("Sandbox.Timedout", message, request_id, []), True)
    return invocation


def moto_invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement of ``LambdaFunction._invoke_lambda(event) -> (payload, errored, logs)``: no Docker."""
    if event is None or event == "{}":
        event = {}  # moto passes the text "{}" for an empty request body
    invocation = invoke(self, event)
    return invocation.payload, invocation.errored, ""


def invoke_moto_function(function: Any, body: str) -> Invocation:
    """Invoke a moto LambdaFunction with a JSON request body through its own ``invoke``.

    The Invoke API, the SQS poller and Lambda tasks all come here, so they share one runtime path.
    """
    response_headers: dict[str, Any] = {}
    try:
        payload = function.invoke(body, {}, response_headers)
    except fault_seams.LambdaThrottledError as refused:
        raise fault_seams.as_client_error(refused) from None
    text = payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)
    return Invocation(text, "x-amz-function-error" in response_headers)


def invoke_function(
    function_name: str, event: Any, *, account_id: str = DEFAULT_ACCOUNT_ID, region: str = "us-east-1"
) -> Invocation:
    """Invoke a function registered in moto, as an event source mapping would."""
    function = get_lambda_backend(account_id, region).get_function(function_name)
    return invoke_moto_function(function, json.dumps(event, default=_json_default))
