"""Tiny Lambda handlers for engine tests: named exceptions, environment echo, SQS batch outcomes.

They are addressed by Handler strings (``tests.local.fake_handlers.<name>``) exactly like the real
ones, so the in-process runtime under test is the one the Notiflow handlers go through.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

PROBE_VARIABLE = "NOTIFLOW_ENGINE_PROBE"

_lock = threading.Lock()
_attempts: Counter[str] = Counter()
_batches: list[list[dict[str, Any]]] = []


class ProbeRetryableError(Exception):
    """Raised while a probe still has failures to go; the test ASL retries on this name."""


class ProbePermanentError(Exception):
    """Raised on purpose; the test ASL catches this name."""


def attempts(key: str) -> int:
    """How many times ``fail_until`` ran for ``key``."""
    with _lock:
        return _attempts[key]


def batches(queue_arn: str) -> list[list[dict[str, Any]]]:
    """Records of every batch ``sqs_batch`` received from ``queue_arn``, in order."""
    with _lock:
        return [list(batch) for batch in _batches if batch and batch[0]["eventSourceARN"] == queue_arn]


def echo(event: Any, context: Any) -> dict[str, Any]:
    """Return what the runtime gave the handler."""
    return {
        "event": event,
        "probe": os.environ.get(PROBE_VARIABLE),
        "functionName": context.function_name,
        "functionVersion": context.function_version,
        "invokedFunctionArn": context.invoked_function_arn,
        "memoryLimitInMb": context.memory_limit_in_mb,
        "requestId": context.aws_request_id,
        "logGroupName": context.log_group_name,
        "remainingMillis": context.get_remaining_time_in_millis(),
    }


def fail_until(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Raise ProbeRetryableError for the first ``failures`` calls with this ``key``."""
    with _lock:
        _attempts[event["key"]] += 1
        count = _attempts[event["key"]]
    if count <= int(event["failures"]):
        raise ProbeRetryableError(f"attempt {count} of {event['key']} failed")
    return {"attempts": count}


def always_fail(event: dict[str, Any], context: Any) -> None:
    """Raise ProbePermanentError with the event's message."""
    raise ProbePermanentError(event.get("message", "failed on purpose"))


def sleepy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sleep longer than the function Timeout allows."""
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"]}


def not_json(event: Any, context: Any) -> object:
    """Return something the runtime cannot marshal."""
    return {"value": object()}


def sqs_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fail records whose body is 'fail'; raise for a batch containing 'raise'."""
    records = event["Records"]
    with _lock:
        _batches.append(list(records))
    if any(record["body"] == "raise" for record in records):
        raise ProbePermanentError("the whole batch failed")
    return {
        "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"] == "fail"],
    }


_in_flight = 0
_peak_in_flight = 0


def peak_in_flight() -> int:
    """The most ``slow`` invocations that ran at once since the last reset."""
    with _lock:
        return _peak_in_flight


def reset_in_flight() -> None:
    global _in_flight, _peak_in_flight
    with _lock:
        _in_flight = _peak_in_flight = 0


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Hold the invocation for ``seconds`` (an HTTP call, say) and count how many ran at once."""
    global _in_flight, _peak_in_flight
    with _lock:
        _in_flight += 1
        _peak_in_flight = max(_peak_in_flight, _in_flight)
    try:
        time.sleep(float(event.get("seconds", 0.3)))
    finally:
        with _lock:
            _in_flight -= 1
    return {"slept": event.get("seconds", 0.3)}
