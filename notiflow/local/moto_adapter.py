"""The one module that adapts moto 5.2.5 internals into Notiflow's local Step Functions engine.

moto in execution mode interprets the real ASL, but out of the box it runs Lambda in Docker, waits
real time in Retry and Wait, re-parses the definition and builds a boto3 client for every task,
has no ``$$.Execution.RedriveCount``, no RedriveExecution and no Step Functions Local mock configs.
:func:`install` patches exactly those points, once per process; everything else is stock moto.
moto is pinned exactly (pyproject.toml) and ``tests/local/test_moto_adapter.py`` fails loudly when
an upgrade moves any of the internals below.

moto internals relied on:

Lambda (``moto.awslambda``)
- ``models.LambdaFunction._invoke_lambda(self, event) -> (payload: str, errored: bool, logs: str)``:
  replaced by an in-process call of the handler. Reads ``handler``, ``function_name``,
  ``function_arn``, ``version``, ``memory_size``, ``timeout``, ``environment_vars``,
  ``logs_group_name``, ``account_id``, ``region``.
- ``models.LambdaBackend.create_function(self, spec)``: wrapped (environment conflict check);
  ``LambdaBackend.list_functions()`` and ``LambdaBackend.get_function(name_or_arn, qualifier)``.
- ``utils.get_backend(account_id, region)``; ``exceptions.InvalidParameterValueException``.

Step Functions interpreter (``moto.stepfunctions.parser``)
- ``models.StepFunctionsParserBackend.start_execution(self, state_machine_arn, name, execution_input,
  trace_header)``: replaced (``arn#TestCase`` mock test cases, the local Execution class). Uses
  ``describe_state_machine``, ``_validate_name``, ``partition``, ``region_name``, ``account_id`` and
  ``StateMachine._handle_name_input_idempotency``, ``executions``, ``backend``, ``name``.
- ``backend.execution.Execution``: subclassed. Its ``__init__`` keywords, ``exec_worker``,
  ``exec_status``, ``stop_date``, ``error``, ``cause``, ``output``, ``input_data``, ``sm_type``,
  ``state_machine``, ``_get_start_aws_execution_details``, ``get_start_execution_details``,
  ``get_start_state_machine_details``, ``_get_start_execution_worker_comm``,
  ``_cloud_watch_logging_session``, ``_activity_store``.
- ``backend.execution_worker.ExecutionWorker``: subclassed. ``__init__`` keywords (including
  ``mock_test_case``), ``_get_evaluation_entrypoint``, ``_get_evaluation_environment``,
  ``_execution_communication``, ``env``, ``start``.
- ``asl.eval.environment.Environment``: ``states.context_object.context_object_data``,
  ``states.reset``, ``event_manager``, ``event_history_context``, ``next_state_name``,
  ``program_state_event``, ``is_running``, ``set_timed_out``.
- ``asl.eval.states.ExecutionData``: gains ``RedriveCount`` (and ``RedriveTime`` after a redrive).
- ``asl.eval.event.event_manager.EventHistoryContext(previous_event_id)``,
  ``EventManager.add_event`` and ``get_event_history``; ``asl.eval.event.event_detail.EventDetails``.
- ``asl.parse.asl_parser.AmazonStateLanguageParser.parse(definition) -> (program, tree)``.
- ``asl.component.eval_component.EvalComponent.eval`` and its lazily created ``heap_key``
  (generated up front before a parsed program is shared between executions).
- ``asl.component.program.program.Program``: ``states.states``, ``start_at.start_at_name``,
  ``timeout_seconds``.
- ``asl.component.common.retry.retrier_decl``: the module global ``time`` (its ``time.sleep`` is the
  retry back-off) and ``RetrierDecl._eval_body`` (wrapped).
- ``asl.component.state.wait.wait_function.wait_function.WaitFunction._wait_interval(self, env,
  wait_seconds)``: replaced.
- ``asl.utils.boto_client.boto_client_for(region, service, state_credentials)``: re-bound in every
  module of :data:`CLIENT_FACTORY_MODULES`.
- ``asl.component.state.exec.state_task.lambda_eval_utils._invoke_lambda_function(parameters, region,
  state_credentials)``: replaced so Lambda tasks (``lambda:invoke`` and direct ARNs alike) call the
  handler in-process without the Invoke API round trip.
- ``asl.component.state.exec.state_task.service.state_task_service_dynamodb.StateTaskServiceDynamoDB._from_error(self,
  env, ex)``: wrapped so a mocked Throw keeps its error name (moto turns it into
  ``DynamoDB.AmazonDynamoDBException``); ``asl.component.common.error_name.failure_event.FailureEventException``.
- ``mocking.mock_config``: ``MockTestCase``, ``StateMockedResponses``, ``MockedResponseReturn``,
  ``MockedResponseThrow``.
- ``api``: ``ExecutionStatus``, ``StateMachineType``, ``HistoryEventType.ExecutionRedriven``,
  ``ExecutionRedrivenEventDetails``.
- ``utils.TMP_THREADS`` (a list moto only appends to; finished threads are pruned).

DynamoDB (``moto.dynamodb``)
- ``models.DynamoDBBackend.put_item``, ``update_item``, ``delete_item``, ``transact_write_items``,
  ``batch_write_item``: wrapped in one lock. moto checks a ConditionExpression and then writes without
  locking, so two concurrent conditional writes could both win; DynamoDB makes each write atomic.

Step Functions API (``moto.stepfunctions``)
- ``responses.StepFunctionResponse``: ``describe_execution`` wrapped (redrive fields),
  ``redrive_execution`` added (moto dispatches ``RedriveExecution`` to it by name); uses
  ``_get_param`` and ``stepfunction_backend``.
- ``exceptions.InvalidName``, ``exceptions.InvalidExecutionInput``; ``moto.core.exceptions.AWSError``;
  ``moto.core.responses.ActionResult.result``.

Server and configuration
- ``moto.moto_server.werkzeug_app.DomainDispatcherApplication(create_backend_app)`` (subclassed:
  ``get_backend_for_host(host)`` cached per host) and ``MotoRequestHandler`` (subclassed: ``setup``
  sets TCP_NODELAY), served by werkzeug's ``make_server`` as ``ThreadedMotoServer`` does (built here
  so a bind error raises instead of hanging ``ThreadedMotoServer.start``).
- ``moto.core.config.default_user_config["stepfunctions"]["execute_state_machine"]`` (the value
  ``POST /moto-api/config`` sets; read here so it can be restored).
- ``moto.moto_api._internal.models.moto_api_backend.reset()`` (what ``POST /moto-api/reset`` calls).
- ``moto.core.models.botocore_stubber.enabled``, ``moto.settings.moto_server_port()``,
  ``moto.core.DEFAULT_ACCOUNT_ID``.
"""

from __future__ import annotations

import collections
import copy
import datetime
import importlib
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.config import Config
from moto.awslambda import models as lambda_models
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import AWSError
from moto.core.models import botocore_stubber
from moto.core.responses import ActionResult
from moto.settings import moto_server_port
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.exceptions import InvalidExecutionInput, InvalidName
from moto.stepfunctions.parser import models as parser_models
from moto.stepfunctions.parser import utils as parser_utils
from moto.stepfunctions.parser.api import (
    ExecutionRedrivenEventDetails,
    ExecutionStatus,
    HistoryEventType,
    StateMachineType,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb import (
    StateTaskServiceDynamoDB,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.evaluation_details import EvaluationDetails
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventHistoryContext
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client as boto_client_module
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.mocking.mock_config import (
    MockedResponse,
    MockedResponseReturn,
    MockedResponseThrow,
    MockTestCase,
    StateMockedResponses,
)

LOG = logging.getLogger(__name__)

MOTO_VERSION: Final = "5.2.5"
MOCK_CONFIG_ENV: Final = "SFN_MOCK_CONFIG"
"""Same variable Step Functions Local reads: path of the mock config file."""
REDRIVE_WINDOW: Final = datetime.timedelta(days=14)
MAX_REDRIVES: Final = 1000
REDRIVABLE_STATUSES: Final = (ExecutionStatus.FAILED, ExecutionStatus.ABORTED, ExecutionStatus.TIMED_OUT)
CLIENT_FACTORY_MODULES: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sns",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk",
)

_ORIGINALS: dict[str, Any] = {}
_install_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# Options and time scale
# ---------------------------------------------------------------------------------------------


@dataclass
class AdapterOptions:
    """Runtime switches; the performance ones exist so the stock path can be measured against them."""

    cache_clients: bool = True
    cache_programs: bool = True
    direct_lambda_calls: bool = True
    fast_server: bool = True


@dataclass(frozen=True)
class WaitRecord:
    """One back-off or Wait the interpreter asked for, and what it really slept."""

    kind: str
    nominal_seconds: float
    real_seconds: float


@dataclass
class _TimeScale:
    factor: float = 1.0
    max_wait_seconds: float | None = None


options = AdapterOptions()
_time_scale = _TimeScale()
_waits: collections.deque[WaitRecord] = collections.deque(maxlen=2000)
_local = threading.local()


def configure_time(scale: float = 1.0, max_wait_seconds: float | None = None) -> None:
    """Scale every Retry back-off and Wait state by ``scale``, optionally capped per wait.

    0.01 turns the day-long production delivery schedule into minutes without touching the
    definition; tests add a small cap so exhausting 24 retries takes about a second.
    """
    if scale <= 0:
        raise ValueError("time scale must be positive")
    if max_wait_seconds is not None and max_wait_seconds < 0:
        raise ValueError("max_wait_seconds must not be negative")
    _time_scale.factor = float(scale)
    _time_scale.max_wait_seconds = None if max_wait_seconds is None else float(max_wait_seconds)


def time_scale() -> tuple[float, float | None]:
    """The current (scale, max_wait_seconds)."""
    return _time_scale.factor, _time_scale.max_wait_seconds


def scaled_seconds(seconds: float) -> float:
    """Real seconds to wait for a nominal ASL wait of ``seconds``."""
    real = max(0.0, float(seconds) * _time_scale.factor)
    if _time_scale.max_wait_seconds is not None:
        real = min(real, _time_scale.max_wait_seconds)
    return real


def recent_waits() -> list[WaitRecord]:
    """The latest waits (most recent last), so tests can check scaling without timing anything."""
    return list(_waits)


def clear_recent_waits() -> None:
    """Forget recorded waits (tests start from a clean slate)."""
    _waits.clear()


def _wait_while_running(env: Environment, seconds: float) -> None:
    """Sleep up to ``seconds``, returning early when the execution stops (StopExecution, timeout)."""
    deadline = time.monotonic() + seconds
    while env.is_running():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        env.program_state_event.wait(min(remaining, 0.5))


class _RetryClock:
    """Stands in for the ``time`` module inside retrier_decl: only ``sleep`` is scaled."""

    def sleep(self, seconds: float) -> None:
        real = scaled_seconds(seconds)
        _waits.append(WaitRecord("retry", float(seconds), real))
        env = getattr(_local, "retry_env", None)
        if env is None:
            time.sleep(real)
        else:
            _wait_while_running(env, real)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _retrier_eval_body(self: Any, env: Environment) -> None:
    _local.retry_env = env
    try:
        _ORIGINALS["RetrierDecl._eval_body"](self, env)
    finally:
        _local.retry_env = None


def _scaled_wait_interval(self: WaitFunction, env: Environment, wait_seconds: int) -> None:
    real = scaled_seconds(wait_seconds)
    _waits.append(WaitRecord("wait", float(wait_seconds), real))
    _wait_while_running(env, real)


# ---------------------------------------------------------------------------------------------
# Caches: boto3 clients for tasks, parsed programs
# ---------------------------------------------------------------------------------------------

_clients: dict[tuple[str, str, str | None], Any] = {}
_clients_lock = threading.Lock()
_client_session: list[boto3.session.Session] = []


def _task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """boto3 client for a task, built once per (region, service, endpoint) and shared.

    botocore clients are thread-safe; building one costs ~6 ms, which stock moto pays per task.
    The endpoint is 127.0.0.1 rather than ``localhost`` so no IPv6 attempt precedes each connect.
    """
    if not options.cache_clients:
        return _ORIGINALS["boto_client_for"](region=region, service=service, state_credentials=state_credentials)
    endpoint = None if botocore_stubber.enabled else f"http://127.0.0.1:{moto_server_port()}"
    key = (region, service, endpoint)
    client = _clients.get(key)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if not _client_session:
                _client_session.append(boto3.session.Session())
            client = _client_session[0].client(
                service_name=service,
                region_name=region,
                endpoint_url=endpoint,
                aws_access_key_id="ak",
                aws_secret_access_key="sk",  # noqa: S106 - moto's dummy credentials
                config=Config(
                    parameter_validation=False,
                    retries={"max_attempts": 0, "total_max_attempts": 1},
                    connect_timeout=99999999,
                    read_timeout=99999999,
                    max_pool_connections=64,
                ),
            )
            _clients[key] = client
    return client


def clear_client_cache() -> None:
    """Forget cached task clients (their connection pools point at one server port)."""
    with _clients_lock:
        _clients.clear()


_programs: collections.OrderedDict[str, Program] = collections.OrderedDict()
_programs_lock = threading.Lock()
_MAX_PROGRAMS: Final = 64


def _prime_heap_keys(root: Any) -> int:
    """Generate every component's lazily created heap key now, single-threaded.

    ``EvalComponent.heap_key`` is the only state a parsed program creates while evaluating; two
    executions racing to create it could each store under a different key. Everything else an
    execution mutates lives in its own Environment.
    """
    seen: set[int] = set()
    stack = [root]
    primed = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif type(obj).__module__.startswith("moto.stepfunctions.parser") and hasattr(obj, "__dict__"):
            if isinstance(obj, EvalComponent):
                _ = obj.heap_key
                primed += 1
            stack.extend(vars(obj).values())
    return primed


def parse_program(definition: str) -> Program:
    """The parsed program for a definition, parsed once (ANTLR costs ~30 ms) and then shared."""
    if not options.cache_programs:
        return AmazonStateLanguageParser.parse(definition)[0]
    with _programs_lock:
        program = _programs.get(definition)
        if program is not None:
            _programs.move_to_end(definition)
            return program
    program = AmazonStateLanguageParser.parse(definition)[0]
    _prime_heap_keys(program)
    with _programs_lock:
        program = _programs.setdefault(definition, program)
        while len(_programs) > _MAX_PROGRAMS:
            _programs.popitem(last=False)
    return program


# ---------------------------------------------------------------------------------------------
# In-process Lambda runtime
# ---------------------------------------------------------------------------------------------


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
    request_id: str

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


_env_lock = threading.Lock()
_applied_env: dict[str, tuple[str, str]] = {}
_saved_env: dict[str, str | None] = {}
_handlers: dict[str, Callable[..., Any]] = {}
_handlers_lock = threading.Lock()


def _function_environment(function: Any) -> dict[str, str]:
    return {str(key): str(value) for key, value in (function.environment_vars or {}).items()}


def apply_function_environment(function: Any) -> None:
    """Put a function's Environment Variables into os.environ before its handler runs.

    All handlers share one process, so the functions must agree on every value they both set.
    """
    variables = _function_environment(function)
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


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _error_payload(error_type: str, message: str, request_id: str, stack: list[str]) -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack})


def invoke_in_process(function: Any, event: Any, *, invoked_function_arn: str | None = None) -> Invocation:
    """Run a moto LambdaFunction's handler in this process, reporting like the Python runtime.

    An exception becomes an errored payload whose ``errorType`` is the exception class name, so
    Retry and Catch match handler exceptions exactly as on AWS. The function's Timeout is enforced
    on the caller's side (``Sandbox.Timedout``); the handler thread itself cannot be killed.
    """
    request_id = str(uuid.uuid4())
    timeout = float(function.timeout or 3)
    now = datetime.datetime.now(tz=datetime.UTC)
    context = LambdaContext(
        function_name=function.function_name,
        function_version=str(function.version),
        invoked_function_arn=invoked_function_arn or function.function_arn,
        memory_limit_in_mb=int(function.memory_size or 128),
        aws_request_id=request_id,
        log_group_name=function.logs_group_name,
        log_stream_name=f"{now:%Y/%m/%d}/[{function.version}]{request_id.replace('-', '')}",
        deadline=time.monotonic() + timeout,
    )
    outcome: list[tuple[bool, str]] = []

    def run() -> None:
        try:
            apply_function_environment(function)
            handler = _resolve_handler(function.handler)
            result = handler(event, context)
        except _RuntimeInitError as failure:
            outcome.append((True, _error_payload(failure.error_type, str(failure), request_id, [])))
            return
        except Exception as exc:
            stack = traceback.format_list(traceback.extract_tb(exc.__traceback__))
            outcome.append((True, _error_payload(type(exc).__name__, str(exc), request_id, stack)))
            return
        try:
            outcome.append((False, json.dumps(result, default=_json_default)))
        except (TypeError, ValueError) as exc:
            message = f"Unable to marshal response: {exc}"
            outcome.append((True, _error_payload("Runtime.MarshalError", message, request_id, [])))

    worker = threading.Thread(target=run, name=f"lambda-{function.function_name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
        return Invocation(_error_payload("Sandbox.Timedout", message, request_id, []), True, request_id)
    errored, payload = outcome[0]
    return Invocation(payload, errored, request_id)


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement of LambdaFunction._invoke_lambda: the handler runs here, not in Docker."""
    invocation = invoke_in_process(self, {} if event is None else event)
    return invocation.payload, invocation.errored, ""


def invoke_function(
    function_name: str, event: Any, *, account_id: str = DEFAULT_ACCOUNT_ID, region: str = "us-east-1"
) -> Invocation:
    """Invoke a function registered in moto in-process, as an event source mapping would."""
    function = get_lambda_backend(account_id, region).get_function(function_name)
    return invoke_in_process(function, event)


def _create_function(self: Any, spec: dict[str, Any]) -> Any:
    """LambdaBackend.create_function, refusing an Environment that contradicts another function's."""
    variables = {str(k): str(v) for k, v in ((spec.get("Environment") or {}).get("Variables") or {}).items()}
    for other in self.list_functions():
        if other.function_name == spec.get("FunctionName"):
            continue
        for key, value in _function_environment(other).items():
            if key in variables and variables[key] != value:
                raise InvalidParameterValueException(
                    f"Environment variable {key}={variables[key]!r} contradicts {key}={value!r} of function "
                    f"{other.function_name}: the local engine runs every handler in one process"
                )
    return _ORIGINALS["LambdaBackend.create_function"](self, spec)


def cold_start(package_prefixes: tuple[str, ...] = ("lambdas",)) -> int:
    """Clear module-level functools caches of handler code already imported, as a new container would.

    Handlers cache boto3 clients and settings; a cache filled under another endpoint (a unit test's
    mock, an earlier stack) must not leak into this one. Returns how many caches were cleared.
    """
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


def _direct_function(parameters: Mapping[str, Any], region: str) -> Any | None:
    """The moto function a lambda:invoke task names, when it can be called without the Invoke API."""
    if not options.direct_lambda_calls or botocore_stubber.enabled:
        return None
    if parameters.get("InvocationType", "RequestResponse") != "RequestResponse":
        return None
    name = str(parameters.get("FunctionName", ""))
    parts = name.split(":")
    account = parts[4] if name.startswith("arn:") and len(parts) > 4 else DEFAULT_ACCOUNT_ID
    region = parts[3] if name.startswith("arn:") and len(parts) > 3 else region
    try:
        return get_lambda_backend(account, region).get_function(name, parameters.get("Qualifier"))
    except Exception:
        return None


def _event_from_payload(payload: Any) -> Any:
    if not payload:
        return {}
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    return json.loads(payload) if isinstance(payload, str) else payload


def _decode_payload(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _direct_invoke_lambda_function(parameters: dict[str, Any], region: str, state_credentials: Any) -> dict[str, Any]:
    """Lambda task calling the handler directly: the same in-process run the Invoke API would do."""
    function = _direct_function(parameters, region)
    if function is None:
        return _ORIGINALS["_invoke_lambda_function"](
            parameters=parameters, region=region, state_credentials=state_credentials
        )
    invocation = invoke_in_process(function, _event_from_payload(parameters.get("Payload")))
    response: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": _decode_payload(invocation.payload),
        "ExecutedVersion": str(function.version),
    }
    if invocation.errored:
        response["FunctionError"] = "Unhandled"
    return response


# ---------------------------------------------------------------------------------------------
# Step Functions Local mock configs
# ---------------------------------------------------------------------------------------------

_mock_config: dict[str, Any] | None = None
_mock_config_cache: dict[tuple[str, float], dict[str, Any]] = {}


class MockConfigError(ValueError):
    """The mock config file is malformed or lacks the requested test case."""


def set_mock_config(config: Mapping[str, Any] | str | os.PathLike[str] | None) -> None:
    """Use this mock config (a mapping or a JSON file path) for ``arn#TestCase`` starts; None clears it.

    Without one, the file named by ``SFN_MOCK_CONFIG`` is used, as Step Functions Local does.
    """
    global _mock_config
    if config is None:
        _mock_config = None
    elif isinstance(config, Mapping):
        _mock_config = json.loads(json.dumps(config))
    else:
        _mock_config = json.loads(Path(config).read_text(encoding="utf-8"))


def current_mock_config() -> dict[str, Any] | None:
    """The mock config in force: the one set explicitly, else the file named by SFN_MOCK_CONFIG."""
    if _mock_config is not None:
        return _mock_config
    path = os.environ.get(MOCK_CONFIG_ENV)
    if not path:
        return None
    key = (path, Path(path).stat().st_mtime)
    if key not in _mock_config_cache:
        _mock_config_cache[key] = json.loads(Path(path).read_text(encoding="utf-8"))
    return _mock_config_cache[key]


def _parse_range(text: str) -> tuple[int, int]:
    parts = text.strip().split("-")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise MockConfigError(f"mocked response key {text!r} is not a number or a range like '1-2'") from None
    if len(numbers) == 1:
        return numbers[0], numbers[0]
    if len(numbers) == 2 and 0 <= numbers[0] <= numbers[1]:
        return numbers[0], numbers[1]
    raise MockConfigError(f"mocked response key {text!r} is not a number or a range like '1-2'")


def _mocked_responses(config: Mapping[str, Any], response_name: str) -> list[MockedResponse]:
    raw = (config.get("MockedResponses") or {}).get(response_name)
    if not isinstance(raw, Mapping) or not raw:
        raise MockConfigError(f"MockedResponses has no entry {response_name!r}")
    responses: list[MockedResponse] = []
    for key, spec in raw.items():
        start, end = _parse_range(key)
        if not isinstance(spec, Mapping) or ("Return" in spec) == ("Throw" in spec):
            raise MockConfigError(f"{response_name}[{key}] must hold exactly one of Return or Throw")
        if "Return" in spec:
            responses.append(MockedResponseReturn(range_start=start, range_end=end, payload=spec["Return"]))
        else:
            throw = spec["Throw"]
            if not isinstance(throw, Mapping) or "Error" not in throw:
                raise MockConfigError(f"{response_name}[{key}].Throw needs an Error")
            responses.append(
                MockedResponseThrow(
                    range_start=start, range_end=end, error=str(throw["Error"]), cause=str(throw.get("Cause", ""))
                )
            )
    return responses


def _dynamodb_from_error(self: Any, env: Environment, ex: Exception) -> FailureEvent:
    """A mocked Throw on a DynamoDB task fails with the mocked error name, as in Step Functions Local."""
    if isinstance(ex, FailureEventException):
        return ex.failure_event
    return _ORIGINALS["StateTaskServiceDynamoDB._from_error"](self, env, ex)


def mock_test_case_for(state_machine_name: str, test_case_name: str) -> MockTestCase:
    """Build moto's MockTestCase from the Step Functions Local format.

    ``StateMachines.<name>.TestCases.<TestCase>.<State> -> <MockedResponseName>`` and
    ``MockedResponses.<MockedResponseName>.{"0": {"Return": ...}, "1-2": {"Throw": {...}}}``, where
    the keys count the state's retries.
    """
    config = current_mock_config()
    if config is None:
        raise MockConfigError(f"no mock config is loaded (set_mock_config or {MOCK_CONFIG_ENV})")
    machine = (config.get("StateMachines") or {}).get(state_machine_name)
    if not isinstance(machine, Mapping):
        raise MockConfigError(f"mock config has no state machine {state_machine_name!r}")
    test_case = (machine.get("TestCases") or {}).get(test_case_name)
    if not isinstance(test_case, Mapping):
        raise MockConfigError(f"mock config has no test case {test_case_name!r} for {state_machine_name!r}")
    try:
        states = [
            StateMockedResponses(
                state_name=state_name,
                mocked_response_name=response_name,
                mocked_responses=_mocked_responses(config, response_name),
            )
            for state_name, response_name in test_case.items()
        ]
        return MockTestCase(
            state_machine_name=state_machine_name, test_case_name=test_case_name, state_mocked_responses_list=states
        )
    except (RuntimeError, ValueError) as exc:
        raise MockConfigError(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# Executions: RedriveCount, mock test cases, cached programs, redrive
# ---------------------------------------------------------------------------------------------


class ExecutionNotRedrivableError(AWSError):
    """Same error code as AWS for a redrive of an execution that cannot be redriven."""

    TYPE = "ExecutionNotRedrivable"
    STATUS = 400


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


_listeners: list[Callable[[LocalExecution], None]] = []


def add_execution_listener(listener: Callable[[LocalExecution], None]) -> Callable[[], None]:
    """Call ``listener(execution)`` whenever a run ends (also after a redrive); returns a remover.

    Lets in-process callers (the benchmark) wait for runs without polling the API.
    """
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def _notify_listeners(execution: LocalExecution) -> None:
    for listener in list(_listeners):
        try:
            listener(execution)
        except Exception:
            LOG.exception("execution listener failed")


class LocalExecutionWorker(ExecutionWorker):
    """ExecutionWorker with a cached program, RedriveCount in the context object, and redrive."""

    def __init__(self, *, execution: LocalExecution, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._execution = execution

    def _get_evaluation_entrypoint(self) -> Program:
        return parse_program(self._evaluation_details.state_machine_details.definition)

    def _get_evaluation_environment(self) -> Environment:
        env = super()._get_evaluation_environment()
        execution_data = env.states.context_object.context_object_data["Execution"]
        execution_data["RedriveCount"] = self._execution.redrive_count
        if self._execution.redrive_date is not None:
            execution_data["RedriveTime"] = self._execution.redrive_date.isoformat()
        return env

    def start(self) -> None:
        _prune_finished_threads()
        super().start()

    def _execution_logic(self) -> None:
        try:
            super()._execution_logic()
        finally:
            _notify_listeners(self._execution)

    def redrive(self, resume_at: str, state_input: Any, redrive_count: int) -> None:
        """Continue the run at ``resume_at`` with the input that state had, in the same history."""
        previous = self.env
        env = self._get_evaluation_environment()
        if previous is not None:
            env.event_manager = previous.event_manager
            last_id = max((event["id"] for event in previous.event_manager.get_event_history()), default=0)
            env.event_history_context = EventHistoryContext(previous_event_id=last_id)
        env.event_manager.add_event(
            context=env.event_history_context,
            event_type=HistoryEventType.ExecutionRedriven,
            event_details=EventDetails(
                executionRedrivenEventDetails=ExecutionRedrivenEventDetails(redriveCount=redrive_count)
            ),
        )
        env.next_state_name = resume_at
        env.states.reset(input_value=state_input)
        self.env = env
        thread = threading.Thread(target=self._redriven_logic, args=(env,), daemon=True)
        parser_utils.TMP_THREADS.append(thread)
        thread.start()

    def _redriven_logic(self, env: Environment) -> None:
        program = self._get_evaluation_entrypoint()
        timeout = program.timeout_seconds.timeout_seconds if program.timeout_seconds else None
        # Program.eval would restart at StartAt; the component-level eval continues at next_state_name.
        worker = threading.Thread(target=EvalComponent.eval, args=(program, env), daemon=True)
        parser_utils.TMP_THREADS.append(worker)
        worker.start()
        worker.join(timeout=timeout)
        if worker.is_alive():
            env.set_timed_out()
        try:
            self._execution_communication.terminated()
        finally:
            _notify_listeners(self._execution)


class LocalExecution(Execution):
    """A Standard execution that knows its mock test case and can be redriven."""

    def __init__(self, *, mock_test_case: MockTestCase | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mock_test_case = mock_test_case
        self.redrive_count = 0
        self.redrive_date: datetime.datetime | None = None
        self._redrive_lock = threading.Lock()

    def _get_start_execution_worker(self) -> LocalExecutionWorker:
        return LocalExecutionWorker(
            execution=self,
            evaluation_details=self._evaluation_details(),
            exec_comm=self._get_start_execution_worker_comm(),
            cloud_watch_logging_session=self._cloud_watch_logging_session,
            activity_store=self._activity_store,
            mock_test_case=self.mock_test_case,
        )

    def _evaluation_details(self) -> EvaluationDetails:
        return EvaluationDetails(
            aws_execution_details=self._get_start_aws_execution_details(),
            execution_details=self.get_start_execution_details(),
            state_machine_details=self.get_start_state_machine_details(),
        )

    def not_redrivable_reason(self, now: datetime.datetime | None = None) -> str | None:
        """Why AWS would refuse to redrive this execution now, or None when it can be redriven."""
        now = now or _now()
        if self.sm_type != StateMachineType.STANDARD:
            return "Express executions cannot be redriven"
        if self.exec_status not in REDRIVABLE_STATUSES:
            return f"Execution is {self.status}"
        if self.stop_date is not None and now - self.stop_date > REDRIVE_WINDOW:
            return "Execution stopped more than 14 days ago"
        if self.redrive_count >= MAX_REDRIVES:
            return f"Execution was redriven {MAX_REDRIVES} times"
        return None

    def resume_point(self) -> tuple[str, Any]:
        """The top-level state the run was in when it stopped, with the input that state received.

        States that exited are not re-run. A run that failed before entering any state resumes at
        StartAt with the execution input. Map and Parallel states re-run as a whole.
        """
        program = parse_program(self.state_machine.definition)
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
        """RedriveExecution: same ARN back to RUNNING at the state that failed; returns redriveDate."""
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


_starts = 0


def _prune_finished_threads() -> None:
    """moto keeps every interpreter thread in TMP_THREADS forever; drop finished ones now and then."""
    global _starts
    _starts += 1
    if _starts % 200 == 0:
        parser_utils.TMP_THREADS[:] = [thread for thread in parser_utils.TMP_THREADS if thread.is_alive()]


def _start_execution(
    self: Any,
    state_machine_arn: str,
    name: str | None = None,
    execution_input: str | None = None,
    trace_header: str | None = None,
) -> Execution:
    """StepFunctionsParserBackend.start_execution with ``arn#TestCase`` and the local Execution class."""
    base_arn, _, test_case_name = state_machine_arn.partition("#")
    if name:
        self._validate_name(name)
    name = name or str(uuid.uuid4())
    state_machine = self.describe_state_machine(base_arn)
    mock_test_case = None
    if test_case_name:
        try:
            mock_test_case = mock_test_case_for(state_machine.name, test_case_name)
        except (MockConfigError, OSError) as exc:
            raise InvalidName(f"Invalid mock test case name '{test_case_name}': {exc}") from None
    existing = state_machine._handle_name_input_idempotency(name, execution_input)
    if existing is not None:
        return existing
    clone = copy.deepcopy(
        state_machine, {id(state_machine.executions): [], id(state_machine.backend): state_machine.backend}
    )
    input_data = "{}" if execution_input is None else execution_input
    try:
        json.loads(input_data)
    except ValueError as exc:
        raise InvalidExecutionInput(f"Invalid State Machine Execution Input: '{exc}'") from None
    execution = LocalExecution(
        name=name,
        sm_type=clone.sm_type,
        role_arn=clone.roleArn,
        exec_arn=f"arn:{self.partition}:states:{self.region_name}:{self.account_id}:execution:{clone.name}:{name}",
        account_id=self.account_id,
        region_name=self.region_name,
        state_machine=clone,
        start_date=_now(),
        cloud_watch_logging_session=None,
        input_data=input_data,
        trace_header=trace_header,
        activity_store={},
        mock_test_case=mock_test_case,
    )
    state_machine.executions.append(execution)
    execution.start()
    return execution


def _describe_execution(self: Any) -> ActionResult:
    result = _ORIGINALS["StepFunctionResponse.describe_execution"](self)
    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    if isinstance(execution, LocalExecution) and isinstance(result, ActionResult):
        result.result.update(execution.redrive_description())
    return result


def _redrive_execution(self: Any) -> ActionResult:
    """RedriveExecution on the local endpoint (moto has none)."""
    arn = self._get_param("executionArn")
    execution = self.stepfunction_backend.describe_execution(arn)
    if not isinstance(execution, LocalExecution):
        raise ExecutionNotRedrivableError(f"Execution {arn} cannot be redriven: execution mode is off")
    return ActionResult({"redriveDate": execution.redrive()})


# ---------------------------------------------------------------------------------------------
# Atomic DynamoDB writes
# ---------------------------------------------------------------------------------------------

DYNAMODB_WRITES: Final = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_dynamodb_lock = threading.RLock()


def _atomic(key: str) -> Callable[..., Any]:
    def write(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _dynamodb_lock:
            return _ORIGINALS[key](self, *args, **kwargs)

    write.__name__ = key.rsplit(".", 1)[-1]
    write.__doc__ = "Condition check and write as one step, as DynamoDB does."
    return write


# ---------------------------------------------------------------------------------------------
# Server and configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class MotoServer:
    """A moto server thread on one address."""

    server: Any
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server.server_address[1])


def _server_classes() -> tuple[type, type]:
    """moto's WSGI dispatcher and request handler, each with one fix for throughput.

    The dispatcher resolves the backend for every request under one global lock, listing moto's
    package directory and matching hundreds of URL patterns; the answer per host never changes,
    so it is cached. The handler disables Nagle: werkzeug writes headers and body separately,
    and with Nagle on a keep-alive client waits for the delayed ACK (~40 ms) on every response.
    """
    import socket

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler

    class CachingDispatcher(DomainDispatcherApplication):
        def __init__(self, create_app: Callable[..., Any]) -> None:
            super().__init__(create_app)
            self._backend_by_host: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if not options.fast_server:
                return super().get_backend_for_host(host)
            if host not in self._backend_by_host:
                self._backend_by_host[host] = super().get_backend_for_host(host)
            return self._backend_by_host[host]

    class NoDelayRequestHandler(MotoRequestHandler):
        def setup(self) -> None:
            super().setup()
            if options.fast_server:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    return CachingDispatcher, NoDelayRequestHandler


def start_server(host: str, port: int) -> MotoServer:
    """Serve every moto backend on ``host:port`` (0 picks a free port) in a daemon thread."""
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.serving import make_server

    dispatcher, handler = _server_classes()
    server = make_server(host, port, dispatcher(create_backend_app), threaded=True, request_handler=handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"moto-server-{port}", daemon=True
    )
    thread.start()
    return MotoServer(server=server, thread=thread)


def stop_server(moto_server: MotoServer, timeout: float = 10.0) -> None:
    """Stop serving and release the port (in-flight request threads are daemons)."""
    moto_server.server.shutdown()
    moto_server.server.server_close()
    moto_server.thread.join(timeout)


def set_execution_mode(enabled: bool) -> bool:
    """Turn moto's Step Functions execution mode on or off; returns the previous setting."""
    from moto.core.config import default_user_config

    config = default_user_config.setdefault("stepfunctions", {})
    previous = bool(config.get("execute_state_machine", False))
    config["execute_state_machine"] = enabled
    return previous


def reset_backends() -> None:
    """Empty every moto backend, as ``POST /moto-api/reset`` does."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


# ---------------------------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------------------------


def _replace(owner: Any, attribute: str, replacement: Any, key: str) -> None:
    _ORIGINALS[key] = getattr(owner, attribute)
    setattr(owner, attribute, replacement)


def is_installed() -> bool:
    """Whether :func:`install` has patched moto in this process."""
    return bool(_ORIGINALS)


def install() -> None:
    """Apply every patch once per process (idempotent, thread-safe)."""
    import moto

    with _install_lock:
        if _ORIGINALS:
            return
        if moto.__version__ != MOTO_VERSION:
            raise RuntimeError(f"notiflow.local supports moto {MOTO_VERSION} exactly, found {moto.__version__}")
        _replace(lambda_models.LambdaFunction, "_invoke_lambda", _invoke_lambda, "LambdaFunction._invoke_lambda")
        _replace(lambda_models.LambdaBackend, "create_function", _create_function, "LambdaBackend.create_function")
        _replace(parser_models.StepFunctionsParserBackend, "start_execution", _start_execution, "start_execution")
        _replace(retrier_decl, "time", _RetryClock(), "retrier_decl.time")
        _replace(retrier_decl.RetrierDecl, "_eval_body", _retrier_eval_body, "RetrierDecl._eval_body")
        _replace(WaitFunction, "_wait_interval", _scaled_wait_interval, "WaitFunction._wait_interval")
        _ORIGINALS["boto_client_for"] = boto_client_module.boto_client_for
        for module_name in CLIENT_FACTORY_MODULES:
            module = importlib.import_module(module_name)
            if module.boto_client_for is not _ORIGINALS["boto_client_for"]:
                raise RuntimeError(f"{module_name}.boto_client_for is not moto's client factory")
            module.boto_client_for = _task_client
        _replace(
            lambda_eval_utils, "_invoke_lambda_function", _direct_invoke_lambda_function, "_invoke_lambda_function"
        )
        _replace(StateTaskServiceDynamoDB, "_from_error", _dynamodb_from_error, "StateTaskServiceDynamoDB._from_error")
        _replace(
            sfn_responses.StepFunctionResponse,
            "describe_execution",
            _describe_execution,
            "StepFunctionResponse.describe_execution",
        )
        sfn_responses.StepFunctionResponse.redrive_execution = _redrive_execution
        from moto.dynamodb.models import DynamoDBBackend

        for method in DYNAMODB_WRITES:
            key = f"DynamoDBBackend.{method}"
            _replace(DynamoDBBackend, method, _atomic(key), key)
