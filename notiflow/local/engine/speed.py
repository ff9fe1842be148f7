"""Speed: what stock moto recomputes or round-trips on every run, done once or in-process.

Each switch of :data:`options` exists so ``bench/engine_modes.py`` can measure stock moto against
every step; all are on by default.

- ``cache_programs``: a definition is parsed once (ANTLR, ~30 ms) and the program shared by its
  runs; each component's lazily created heap key is generated before sharing.
- ``cache_jsonpath``: each JSONPath expression is parsed once (jsonpath-ng builds a PLY parser per
  parse, ~5 ms, and moto parses at every evaluation).
- ``inprocess_clients``: service integrations (``dynamodb:updateItem``) and the fallback Invoke API
  call moto's backends through a cached boto3 client that moto's own stubber answers in this process
  (as ``mock_aws`` does) instead of a new client per task and an HTTP round trip to the server.
- ``direct_lambda_tasks``: a Lambda task reaches the function through moto's ``LambdaFunction.invoke``
  without the Invoke API's serialisation and routing.
- ``share_snapshots``: executions share one snapshot of their state machine per revision.
- ``fast_copies``: the interpreter copies state data (dicts and lists) with a pickle round trip,
  about three times faster than ``copy.deepcopy``, which it calls some hundred times per run.
- ``fast_server``: the HTTP server caches its backend lookup per host, disables Nagle and formats no
  log line for a request nobody logs; moto lists a response class's methods once, not per request.

Also in moto's SQS: every send and receive computes the queue's approximate message counts by
checking each message against the clock, and moto reads the clock through naive datetimes (~2 us);
the engine's clock for SQS is ``time.time()``, the same epoch seconds. And a receive reads one queue
attribute by computing all of them three times per message; the engine reads the attribute.
"""

from __future__ import annotations

import copy
import functools
import json
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import boto3
from botocore.config import Config
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.botocore_stubber import BotocoreStubber
from moto.core.utils import unix_time
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from notiflow.local.engine import runtime

MAX_PROGRAMS: Final = 64
MAX_JSONPATHS: Final = 4096


@dataclass
class SpeedOptions:
    """The optimisations, each switchable at run time for measurement."""

    cache_programs: bool = True
    cache_jsonpath: bool = True
    inprocess_clients: bool = True
    direct_lambda_tasks: bool = True
    share_snapshots: bool = True
    fast_copies: bool = True
    fast_server: bool = True


options = SpeedOptions()


# ---------------------------------------------------------------------------------------------
# In-process clients
# ---------------------------------------------------------------------------------------------

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()
_stubber = BotocoreStubber()
_stubber.enabled = True


def inprocess_client(service_name: str, region_name: str = "us-east-1") -> Any:
    """A boto3 client whose requests moto answers in this process (no HTTP, no server thread); cached.

    botocore clients are thread-safe. Requests carry moto's default dummy credentials, so they
    reach the default account, as the interpreter's own clients do.
    """
    key = (service_name, region_name)
    client = _clients.get(key)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = boto3.session.Session().client(
                service_name,
                region_name=region_name,
                aws_access_key_id="ak",
                aws_secret_access_key="sk",  # noqa: S106 - moto's dummy credentials
                config=Config(
                    parameter_validation=False,
                    retries={"max_attempts": 0, "total_max_attempts": 1},
                    # AWS's own endpoint (what moto's stubber recognises), whatever AWS_ENDPOINT_URL says.
                    ignore_configured_endpoint_urls=True,
                ),
            )
            client.meta.events.register_first("before-send", _answer_in_process)
            _clients[key] = client
    return client


class NotAnsweredInProcessError(RuntimeError):
    """A request of an in-process client that moto did not answer; it is never sent over the network."""


def _answer_in_process(request: Any, event_name: str = "before-send", **kwargs: Any) -> Any:
    """moto's answer to the request, computed in this process; a request moto does not know is an error."""
    response = _stubber(event_name, request, **kwargs)
    if response is None:
        raise NotAnsweredInProcessError(f"moto has no in-process handler for {request.method} {request.url}")
    return response


class _TaskClients:
    """Stands in for ``boto3`` inside moto's boto_client module (``boto3.client(...)`` per task)."""

    def client(self, *args: Any, **kwargs: Any) -> Any:
        if not options.inprocess_clients:
            return boto3.client(*args, **kwargs)
        return inprocess_client(kwargs["service_name"], kwargs["region_name"])

    def __getattr__(self, name: str) -> Any:
        return getattr(boto3, name)


TASK_CLIENTS: Final = _TaskClients()


# ---------------------------------------------------------------------------------------------
# Lambda tasks
# ---------------------------------------------------------------------------------------------


def _task_function(parameters: dict[str, Any], region: str) -> Any | None:
    """The moto function a RequestResponse Lambda task names; None when only the Invoke API can tell."""
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


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def invoke_lambda_task(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Wrap lambda_eval_utils._invoke_lambda_function: call the function without the Invoke API."""

    def invoke(parameters: dict[str, Any], region: str, state_credentials: Any) -> dict[str, Any]:
        function = _task_function(parameters, region) if options.direct_lambda_tasks else None
        if function is None:
            return original(parameters=parameters, region=region, state_credentials=state_credentials)
        payload = parameters.get("Payload")
        body = payload.decode("utf-8") if isinstance(payload, bytes) else json.dumps(payload or {})
        invocation = runtime.invoke_moto_function(function, body)
        response: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": _decode(invocation.payload),
            "ExecutedVersion": str(function.version),
        }
        if invocation.errored:
            response["FunctionError"] = "Unhandled"
        return response

    return invoke


# ---------------------------------------------------------------------------------------------
# Parsing once
# ---------------------------------------------------------------------------------------------


def cached_jsonpath(parse: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a jsonpath-ng ``parse``: each expression is parsed once (parsed expressions are immutable)."""
    cached = functools.lru_cache(maxsize=MAX_JSONPATHS)(parse)

    def parse_once(path: str, *args: Any, **kwargs: Any) -> Any:
        if options.cache_jsonpath and not args and not kwargs:
            return cached(path)
        return parse(path, *args, **kwargs)

    return parse_once


_programs: dict[str, Program] = {}
_parsing: dict[str, threading.Lock] = {}
_programs_lock = threading.Lock()


def _prime_heap_keys(root: Any) -> None:
    """Generate every component's lazily created heap key now, before the program is shared.

    ``EvalComponent.heap_key`` is the only state a parsed program creates while evaluating; two
    runs racing to create it could each store under a different key. Everything else a run
    mutates lives in its own Environment.
    """
    seen: set[int] = set()
    stack = [root]
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
            stack.extend(vars(obj).values())


def parse_program(definition: str) -> Program:
    """The parsed program of a definition: parsed once, by one thread, then shared by every run."""
    if not options.cache_programs:
        return cast(Program, AmazonStateLanguageParser.parse(definition)[0])
    cached = _programs.get(definition)
    if cached is not None:
        return cached
    with _programs_lock:
        lock = _parsing.setdefault(definition, threading.Lock())
    with lock:
        cached = _programs.get(definition)
        if cached is not None:
            return cached
        program = cast(Program, AmazonStateLanguageParser.parse(definition)[0])
        _prime_heap_keys(program)
        with _programs_lock:
            if len(_programs) >= MAX_PROGRAMS:
                _programs.clear()
                _parsing.clear()
            _programs[definition] = program
    return program


def clear_caches() -> None:
    """Forget parsed programs (tests, a fresh stack)."""
    with _programs_lock:
        _programs.clear()
        _parsing.clear()


# ---------------------------------------------------------------------------------------------
# Copies of state data, per-request work of moto's responses
# ---------------------------------------------------------------------------------------------


class _StateDataCopy:
    """Stands in for the ``copy`` module in the interpreter modules that copy state data.

    State data is JSON-like dicts and lists; a pickle round trip copies them about three times
    faster than ``copy.deepcopy`` with the same result (shared and cyclic parts stay shared, types
    are kept). Scalars, other objects and anything pickle refuses go to ``copy.deepcopy``.
    """

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if options.fast_copies and memo is None and type(value) in (dict, list):
            try:
                # Data this process produced a moment ago, never input from outside.
                return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301
            except Exception:  # noqa: S110 - whatever pickle refuses, deepcopy handles
                pass
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


STATE_DATA_COPY: Final = _StateDataCopy()


def method_names_once(method_names_from_class: Callable[[Any], list[str]]) -> Callable[[Any], list[str]]:
    """Wrap moto's ``method_names_from_class`` (inspect.getmembers per request): once per class."""
    cached = functools.lru_cache(maxsize=256)(method_names_from_class)

    def method_names(clazz: Any) -> list[str]:
        return list(cached(clazz)) if options.fast_server else method_names_from_class(clazz)

    return method_names


# ---------------------------------------------------------------------------------------------
# SQS
# ---------------------------------------------------------------------------------------------


def epoch_seconds(unix_time: Callable[..., float]) -> Callable[..., float]:
    """Wrap moto's ``unix_time(dt=None)`` for SQS: now is ``time.time()``; a given datetime is converted as before."""

    def seconds(dt: Any = None) -> float:
        return time.time() if dt is None else unix_time(dt)

    return seconds


def epoch_millis(unix_time_millis: Callable[..., float]) -> Callable[..., float]:
    """Wrap moto's ``unix_time_millis(dt=None)`` for SQS the same way."""

    def millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else unix_time_millis(dt)

    return millis


def message_within_retention(self: Any, queue_name: str, message: Any) -> bool:
    """Replacement of SQSBackend.is_message_valid_based_on_retention_period reading one attribute."""
    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return retention_period + message.sent_timestamp / 1000 > unix_time()
