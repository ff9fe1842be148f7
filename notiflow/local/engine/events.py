"""Execution status-change events: sent to EventBridge rules and delivered to Lambda targets, as on AWS.

On AWS every status change of a Standard execution (RUNNING at start and at each redrive, then
SUCCEEDED, FAILED, TIMED_OUT or ABORTED) is sent to the account's default event bus as a
``Step Functions Execution Status Change`` event from ``aws.states``; Express executions send none
(they log to CloudWatch Logs instead). Rules whose pattern matches get the event; a Lambda target
is invoked asynchronously. Locally the engine calls :func:`status_changed` at those changes: it
builds the event with the fields AWS documents (``detail`` as DescribeExecution reports the run,
dates in epoch milliseconds, the redrive fields, the 248 KB payload rule) and hands it to the
enabled rules of moto's default bus. moto's own ``Rule.send_to_targets`` matches it (its
EventPattern, ``$or``, ``numeric``, ``prefix``...) and serves the targets moto knows (SQS, logs,
buses); the engine wraps it so Lambda targets, which moto cannot reach, are queued for delivery
(:func:`send_to_targets`). So PutEvents from a user reaches Lambda targets the same way.

Delivery is asynchronous and at least once: a bounded queue served by a few threads of its own, so
a slow or failing target never holds a run. Each delivery invokes the function in-process through
the engine's one Lambda path (:func:`runtime.invoke_moto_function`), with the event as AWS shapes
it (``time`` in ISO 8601). A failed invocation (a function error, or the function cannot be
reached) is tried again as Lambda retries an asynchronous invocation: twice, about one and two
minutes later (scaled by the engine's time scale), then it is counted and logged. A full queue
drops the event (counted and logged), as a best-effort delivery would.

Off the hot path: when the execution's default bus has no enabled rule whose pattern could admit
``aws.states`` events, no event is built; otherwise the rules are matched first against the event
without the run's input and output (not serialised unless a rule matches, or names them).
"""

from __future__ import annotations

import collections
import datetime
import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from jsonpath_ng.ext import parse as jsonpath_parse  # what moto's events backend parses paths with
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.events.models import events_backends
from moto.events.utils import EventTemplateParser
from moto.stepfunctions.parser.api import ExecutionStatus, StateMachineType
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from notiflow.local.engine import clock, runtime

LOG = logging.getLogger(__name__)

SOURCE: Final = "aws.states"
DETAIL_TYPE: Final = "Step Functions Execution Status Change"
DEFAULT_BUS: Final = "default"
ENABLED_STATES: Final = frozenset({"ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"})
PAYLOAD_LIMIT_BYTES: Final = 248 * 1024
"""Above this, AWS leaves the input (escaped input and output together) or the output (alone) out of the event."""
RETRY_DELAYS_SECONDS: Final = (60.0, 120.0)
"""Lambda retries a failed asynchronous invocation twice, about one then two minutes later (nominal seconds)."""
QUEUE_LIMIT: Final = 10_000
COUNTED: Final = ("submitted", "delivered", "retried", "failed", "dropped", "undeliverable")
DELIVERY_THREADS: Final = 2
TERMINAL: Final = frozenset(set(ExecutionStatus) - {ExecutionStatus.RUNNING, ExecutionStatus.PENDING_REDRIVE})


# ---------------------------------------------------------------------------------------------
# The event
# ---------------------------------------------------------------------------------------------


def _millis(value: datetime.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _escaped_size(text: str | None) -> int:
    return 0 if text is None else len(json.dumps(text).encode("utf-8"))


def _redrive_fields(execution: Any) -> dict[str, Any]:
    describe = getattr(execution, "redrive_description", None)
    fields: dict[str, Any] = describe() if describe is not None else {"redriveCount": 0}
    return {
        "redriveCount": fields.get("redriveCount", 0),
        "redriveDate": _millis(fields.get("redriveDate")),
        "redriveStatus": fields.get("redriveStatus", "NOT_REDRIVABLE"),
        "redriveStatusReason": fields.get("redriveStatusReason"),
    }


PAYLOAD_FIELDS: Final = frozenset({"input", "inputDetails", "output", "outputDetails"})
"""The fields of ``detail`` that cost a serialisation; left out of the first match unless a pattern names them."""


def status_change_detail(execution: Any, *, payload: bool = True) -> dict[str, Any]:
    """The event's ``detail``: the run as DescribeExecution reports it (input and output as it gives them), dates
    in epoch milliseconds.

    Fields that do not apply are null, as in AWS's examples (no output before SUCCEEDED, no error or
    cause unless the run reports one, no versions or aliases locally). Without ``payload``, the
    :data:`PAYLOAD_FIELDS` are left out.
    """
    status = ExecutionStatus(execution.exec_status)
    detail: dict[str, Any] = {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "stateMachineVersionArn": None,
        "stateMachineAliasArn": None,
        "name": execution.name,
        "status": status.value,
        "startDate": _millis(execution.start_date),
        "stopDate": _millis(execution.stop_date) if status in TERMINAL else None,
    }
    if payload:
        detail.update(_payload_fields(execution, status))
    detail.update(_redrive_fields(execution))
    detail["error"] = execution.error
    detail["cause"] = execution.cause
    return detail


def _payload_fields(execution: Any, status: ExecutionStatus) -> dict[str, Any]:
    input_text: str | None = getattr(execution, "execution_input", None)
    if input_text is None:
        input_text = to_json_str(execution.input_data, separators=(",", ":"))
    output_text = None
    if status is ExecutionStatus.SUCCEEDED:  # as DescribeExecution gives it: a string as it is
        output_text = execution.output if isinstance(execution.output, str) else json.dumps(execution.output)
    output_included = _escaped_size(output_text) <= PAYLOAD_LIMIT_BYTES
    if not output_included:
        output_text = None
    input_included = _escaped_size(input_text) + _escaped_size(output_text) <= PAYLOAD_LIMIT_BYTES
    if not input_included:
        input_text = None
    return {
        "input": input_text,
        "inputDetails": {"included": input_included},
        "output": output_text,
        "outputDetails": {"included": output_included} if status is ExecutionStatus.SUCCEEDED else None,
    }


def status_change_event(execution: Any, *, payload: bool = True) -> dict[str, Any]:
    """The whole event as moto's events backend carries one (``time`` in epoch seconds, ``ingestion-time``).

    :func:`aws_shaped` turns it into what a target receives.
    """
    now = time.time()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": execution.account_id,
        "time": now,
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": status_change_detail(execution, payload=payload),
        "ingestion-time": now,
    }


def aws_shaped(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge hands it to a target: ``time`` as ``2019-02-26T19:42:21Z``, no moto extras."""
    shaped = {key: value for key, value in event.items() if key != "ingestion-time"}
    if isinstance(shaped.get("time"), (int, float)):
        moment = datetime.datetime.fromtimestamp(shaped["time"], tz=datetime.UTC)
        shaped["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return shaped


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


def _admits(pattern: dict[str, Any], key: str, value: str) -> bool:
    filters = pattern.get(key)
    if not isinstance(filters, list):
        return True
    return any(not isinstance(item, str) or item == value for item in filters)


def may_match(pattern: dict[str, Any]) -> bool:
    """A cheap, conservative test: could this pattern match a status-change event at all?"""
    if not pattern:
        return False  # a rule with a schedule and no pattern gets no events
    if "$or" in pattern:
        return True
    return _admits(pattern, "source", SOURCE) and _admits(pattern, "detail-type", DETAIL_TYPE)


def candidate_rules(account_id: str, region: str) -> list[Any]:
    """Enabled rules with targets on the default bus whose pattern could match; [] without building anything."""
    accounts = events_backends.get(account_id)  # dict.get: never creates a backend
    backend = accounts.get(region) if accounts is not None else None
    if backend is None:
        return []
    bus = backend.event_buses.get(DEFAULT_BUS)
    if bus is None or not bus.rules:
        return []
    return [
        rule
        for rule in list(bus.rules.values())
        if rule.state in ENABLED_STATES and rule.targets and may_match(rule.event_pattern.get_pattern())
    ]


def is_express(execution: Any) -> bool:
    """Whether the run belongs to an Express machine (moto sets every execution's ``sm_type`` to STANDARD)."""
    machine_type = getattr(getattr(execution, "state_machine", None), "type", None)
    return StateMachineType.EXPRESS in (machine_type, execution.sm_type)


def run_ended(execution: Any) -> None:
    """The engine's hook when a run's worker is done: the status change to its terminal status, if it has one."""
    if execution.exec_status in TERMINAL:
        status_changed(execution)


def names_payload(pattern: Any) -> bool:
    """Whether a pattern names any of :data:`PAYLOAD_FIELDS` (at any depth, ``$or`` included)."""
    if isinstance(pattern, dict):
        return any(key in PAYLOAD_FIELDS or names_payload(value) for key, value in pattern.items())
    if isinstance(pattern, list):
        return any(names_payload(item) for item in pattern)
    return False


def status_changed(execution: Any) -> None:
    """The engine's hook: ``execution`` has just changed status; send the event to the rules that match.

    Rules are first matched against the event without the run's input and output (no serialisation),
    which gives the same answer for every pattern that does not name them; only when a rule matches
    is the whole event built and sent. Never raises into the run: a rule whose targets moto cannot
    serve is logged and counted.
    """
    if execution.exec_status is None or is_express(execution):
        return
    rules = candidate_rules(execution.account_id, execution.region_name)
    if not rules:
        return
    light = status_change_event(execution, payload=False)
    matched = [
        rule
        for rule in rules
        if names_payload(rule.event_pattern.get_pattern()) or rule.event_pattern.matches_event(light)
    ]
    if not matched:
        return
    event = {**light, "detail": status_change_detail(execution)}
    for rule in matched:
        try:
            rule.send_to_targets(event)
        except Exception as exc:
            _deliveries.count("undeliverable")
            LOG.warning("status change of %s not sent to rule %s: %r", execution.exec_arn, rule.arn, exc)


# ---------------------------------------------------------------------------------------------
# Lambda targets: the wrap of moto's Rule.send_to_targets
# ---------------------------------------------------------------------------------------------


def is_lambda_target(target: dict[str, Any]) -> bool:
    """Whether a rule's target is a Lambda function (``arn:<partition>:lambda:...``)."""
    parts = str(target.get("Arn", "")).split(":")
    return len(parts) > 3 and parts[2] == "lambda"


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What a target receives: its constant Input, the InputPath selection, the InputTransformer's, or the event."""
    if target.get("Input") is not None:
        return json.loads(target["Input"])
    shaped = aws_shaped(event)
    if target.get("InputPath"):
        matches = jsonpath_parse(target["InputPath"]).find(shaped)
        return matches[0].value if matches else None
    transformer = target.get("InputTransformer")
    if transformer:
        return EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=cast(Any, {**shaped, "ingestion-time": event.get("ingestion-time")}),
        )
    return shaped


class _OtherTargets:
    """The rule as moto's send_to_targets sees it, with only the targets moto serves."""

    def __init__(self, rule: Any, targets: list[dict[str, Any]]) -> None:
        self._rule = rule
        self.targets = targets

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rule, name)


def send_to_targets(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``Rule.send_to_targets``: queue Lambda targets for delivery; moto serves the others.

    Disabled rules and rules with only a schedule get no events (moto would hand them every event).
    """

    def send(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state not in ENABLED_STATES or not self.event_pattern.get_pattern():
            return
        functions = [target for target in self.targets if is_lambda_target(target)]
        if not functions:
            original(self, original_event, transform_input)
            return
        if not self.event_pattern.matches_event(original_event):
            return
        others = [target for target in self.targets if not is_lambda_target(target)]
        if others:
            original(_OtherTargets(self, others), original_event, transform_input)
        for target in functions:
            _deliveries.submit(
                Delivery(
                    function_arn=target["Arn"],
                    payload=json.dumps(target_input(target, original_event)),
                    account_id=self.account_id,
                    rule_arn=self.arn,
                    target_id=str(target.get("Id")),
                    event_id=str(original_event.get("id")),
                )
            )

    return send


# ---------------------------------------------------------------------------------------------
# Asynchronous delivery
# ---------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One event for one Lambda target."""

    function_arn: str
    payload: str
    account_id: str
    rule_arn: str
    target_id: str
    event_id: str
    attempts: int = 0

    def __str__(self) -> str:
        """Where it goes, for logs (never the payload: a run's input is a notification)."""
        return f"{self.event_id} (rule {self.rule_arn}, target {self.target_id}: {self.function_arn})"


class _Deliveries:
    """A bounded queue of deliveries (ready ones, and retries waiting for their time) and its threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: collections.deque[Delivery] = collections.deque()
        self._later: list[tuple[float, int, Delivery]] = []
        self._sequence = itertools.count()
        self._busy = 0
        self._threads: list[threading.Thread] = []
        self._generation = 0
        self._counts: collections.Counter[str] = collections.Counter()
        self.limit = QUEUE_LIMIT

    def count(self, kind: str) -> None:
        with self._cond:
            self._counts[kind] += 1

    def stats(self) -> dict[str, int]:
        with self._cond:
            counts = {kind: self._counts[kind] for kind in COUNTED}
            return {"queued": len(self._ready) + len(self._later), "in_flight": self._busy, **counts}

    def submit(self, delivery: Delivery) -> None:
        with self._cond:
            if len(self._ready) + len(self._later) >= self.limit:
                self._counts["dropped"] += 1
                LOG.warning("event %s dropped: %d deliveries queued", delivery, self.limit)
                return
            self._counts["submitted"] += 1
            self._ready.append(delivery)
            if len(self._threads) < DELIVERY_THREADS:
                thread = threading.Thread(
                    target=self._serve, args=(self._generation,), name="notiflow-events", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify()

    def _next(self, generation: int) -> Delivery | None:
        with self._cond:
            while generation == self._generation:
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    self._ready.append(heapq.heappop(self._later)[2])
                if self._ready:
                    self._busy += 1
                    return self._ready.popleft()
                self._cond.wait(self._later[0][0] - now if self._later else None)
            return None

    def _serve(self, generation: int) -> None:
        while (delivery := self._next(generation)) is not None:
            try:
                error = _invoke(delivery)
            except Exception as exc:  # the function cannot be reached (deleted, a bad ARN)
                error = type(exc).__name__
            with self._cond:
                self._busy -= 1
                if generation != self._generation:
                    return
                if error is None:
                    self._counts["delivered"] += 1
                elif delivery.attempts <= len(RETRY_DELAYS_SECONDS):
                    self._counts["retried"] += 1
                    due = time.monotonic() + clock.scaled_seconds(RETRY_DELAYS_SECONDS[delivery.attempts - 1])
                    heapq.heappush(self._later, (due, next(self._sequence), delivery))
                else:
                    self._counts["failed"] += 1
                    LOG.warning("event %s not delivered after %d attempts: %s", delivery, delivery.attempts, error)
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued, waiting for a retry or being delivered; False at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._ready or self._later or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def stop(self, timeout: float, *, clear_counts: bool) -> None:
        with self._cond:
            self._generation += 1
            dropped = len(self._ready) + len(self._later)
            self._ready.clear()
            self._later.clear()
            threads, self._threads = self._threads, []
            if clear_counts:
                self._counts.clear()
            else:
                self._counts["dropped"] += dropped
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


def _invoke(delivery: Delivery) -> str | None:
    """One attempt: the function's errorType when it failed, else None."""
    delivery.attempts += 1
    region = delivery.function_arn.split(":")[3]
    function = get_lambda_backend(delivery.account_id, region).get_function(delivery.function_arn)
    invocation = runtime.invoke_moto_function(function, delivery.payload)
    return (invocation.error_type or "Unhandled") if invocation.errored else None


_deliveries = _Deliveries()


def stats() -> dict[str, int]:
    """Counts since the last reset: submitted, delivered, retried, failed, dropped, undeliverable; queued now."""
    return _deliveries.stats()


def wait_idle(timeout: float = 10.0) -> bool:
    """Wait until every queued delivery was made or given up on (retries included); False at the deadline."""
    return _deliveries.wait_idle(timeout)


def configure(queue_limit: int = QUEUE_LIMIT) -> None:
    """At most ``queue_limit`` deliveries wait at once; more events are dropped and counted."""
    if queue_limit < 1:
        raise ValueError("the event queue needs room for at least one delivery")
    _deliveries.limit = queue_limit


def reset() -> None:
    """Forget queued deliveries and counts (moto's backends, and so the rules, were reset)."""
    _deliveries.stop(0.0, clear_counts=True)


def shutdown(timeout: float = 10.0) -> None:
    """Stop delivering: queued deliveries are dropped (counted), threads end after their current one."""
    _deliveries.stop(timeout, clear_counts=False)
