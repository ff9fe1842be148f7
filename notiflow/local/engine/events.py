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

Delivery is asynchronous and at least once, with Lambda's retries (:mod:`.event_delivery`); the
function gets the event as AWS shapes it (``time`` in ISO 8601).

Off the hot path: when the execution's default bus has no enabled rule whose pattern could admit
``aws.states`` events with this status (a pattern listing statuses, as the reconciler's does, is read
for them), no event is built; otherwise the rules are matched first against the event
without the run's input and output (not serialised unless a rule matches, or names them).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, cast

from jsonpath_ng.ext import parse as jsonpath_parse  # what moto's events backend parses paths with
from moto.events.models import events_backends
from moto.events.utils import EventTemplateParser
from moto.stepfunctions.parser.api import ExecutionStatus, StateMachineType
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from notiflow.local.engine import event_delivery
from notiflow.local.engine.event_delivery import Delivery
from notiflow.local.engine.event_delivery import configure as configure  # the delivery settings and figures, here too
from notiflow.local.engine.event_delivery import stats as stats
from notiflow.local.engine.event_delivery import wait_idle as wait_idle

LOG = logging.getLogger(__name__)

SOURCE: Final = "aws.states"
DETAIL_TYPE: Final = "Step Functions Execution Status Change"
DEFAULT_BUS: Final = "default"
ENABLED_STATES: Final = frozenset({"ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"})
PAYLOAD_LIMIT_BYTES: Final = 248 * 1024
"""Above this, AWS leaves the input (escaped input and output together) or the output (alone) out of the event."""
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


def _required_statuses(detail: Any) -> set[str] | None:
    """The statuses a ``detail`` pattern can match when it lists them literally (also in each ``$or`` branch)."""
    if not isinstance(detail, dict):
        return None
    filters = detail.get("status")
    if isinstance(filters, list) and filters and all(isinstance(item, str) for item in filters):
        return set(filters)
    branches = detail.get("$or")
    if not isinstance(branches, list) or not branches:
        return None
    allowed: set[str] = set()
    for branch in branches:
        statuses = _required_statuses(branch)
        if statuses is None:
            return None
        allowed |= statuses
    return allowed


def may_match(pattern: dict[str, Any], status: str | None = None) -> bool:
    """A cheap, conservative test: could this pattern match a status-change event (with this ``status``)?"""
    if not pattern:
        return False  # a rule with a schedule and no pattern gets no events
    if "$or" in pattern:
        return True
    if not (_admits(pattern, "source", SOURCE) and _admits(pattern, "detail-type", DETAIL_TYPE)):
        return False
    statuses = None if status is None else _required_statuses(pattern.get("detail"))
    return statuses is None or status in statuses


def candidate_rules(account_id: str, region: str, status: str | None = None) -> list[Any]:
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
        if rule.state in ENABLED_STATES and rule.targets and may_match(rule.event_pattern.get_pattern(), status)
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
    rules = candidate_rules(execution.account_id, execution.region_name, ExecutionStatus(execution.exec_status).value)
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
            event_delivery.count("undeliverable")
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
            event_delivery.submit(
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
