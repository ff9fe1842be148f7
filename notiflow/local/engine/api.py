"""Step Functions API responses shaped as AWS documents them, where moto 5.2.5 answers differently.

- ``ListExecutions``: ``redriveFilter`` (``REDRIVEN`` / ``NOT_REDRIVEN``) is honoured, each item
  carries ``redriveCount`` (and ``redriveDate`` once redriven) and a ``stopDate`` for every closed
  status (moto leaves it off TIMED_OUT runs); ``PENDING_REDRIVE`` without a Map Run is a
  ``ValidationException``, as on AWS.
- ``GetExecutionHistory``: ``reverseOrder``, ``maxResults`` (default 100, at most 1,000) with
  ``nextToken``, and ``includeExecutionData=false`` (the events keep their shape but lose the
  ``input``/``output`` strings, as AWS returns them).
- ``DescribeExecution``: ``inputDetails`` always, ``outputDetails`` whenever ``output`` is given,
  the redrive fields (:mod:`~notiflow.local.engine.redrive`), a ``stopDate`` for TIMED_OUT runs,
  and a string output JSON-encoded (moto returns a string result raw).
- ``ValidateStateMachineDefinition`` (moto has none and answered with an HTML 500 page):
  ``result`` OK or FAIL with ``diagnostics`` from the parser and static analysers moto's
  interpreter uses, ``MISSING_TRANSITION_TARGET`` for a StartAt/Next/Default/Catch naming no state
  of its scope (moto's parser accepts those), ``INVALID_JSON_DESCRIPTION`` for text that is not JSON.

A page token is opaque to callers; a token from another request or a tampered one is
``InvalidToken`` (HTTP 400), as on AWS.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

from moto.core.responses import ActionResult
from moto.stepfunctions.exceptions import InvalidToken, ValidationException
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution

from notiflow.local.engine import redrive

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
CLOSED: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
_DATA_FIELDS: Final = ("input", "output")
"""The execution data that includeExecutionData=false leaves out of each event's details."""


# ---------------------------------------------------------------------------------------------
# Paging
# ---------------------------------------------------------------------------------------------


def _page_size(value: Any) -> int:
    size = int(value or 0)
    if size < 0 or size > MAX_PAGE:
        raise ValidationException(f"maxResults must be between 0 and {MAX_PAGE}; got {size}")
    return size or DEFAULT_PAGE


def _token(scope: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": scope, "o": offset}).encode()).decode()


def _offset(token: str | None, scope: str) -> int:
    if not token:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if decoded["s"] == scope and isinstance(decoded["o"], int) and decoded["o"] >= 0:
            return int(decoded["o"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise InvalidToken(f"{token!r} is not a token of this request")


def _page(items: list[Any], size: int, token: str | None, scope: str) -> tuple[list[Any], str | None]:
    start = _offset(token, scope)
    end = start + size
    return items[start:end], (_token(scope, end) if end < len(items) else None)


# ---------------------------------------------------------------------------------------------
# ListExecutions
# ---------------------------------------------------------------------------------------------


def _redrive_count(execution: Any) -> int:
    return int(getattr(execution, "redrive_count", 0))


def _matches_redrive_filter(execution: Any, redrive_filter: str | None) -> bool:
    if redrive_filter == "REDRIVEN":
        return _redrive_count(execution) > 0
    if redrive_filter == "NOT_REDRIVEN":
        return _redrive_count(execution) == 0
    return True


def list_executions(self: Any) -> ActionResult:
    """ListExecutions with redriveFilter and the redrive fields of each item (replaces moto's)."""
    arn = self._get_param("stateMachineArn")
    status_filter = self._get_param("statusFilter")
    redrive_filter = self._get_param("redriveFilter")
    if status_filter == "PENDING_REDRIVE":
        raise ValidationException("statusFilter PENDING_REDRIVE requires a mapRunArn, not a stateMachineArn")
    if redrive_filter not in (None, "REDRIVEN", "NOT_REDRIVEN"):
        raise ValidationException(f"redriveFilter must be REDRIVEN or NOT_REDRIVEN; got {redrive_filter!r}")
    size = _page_size(self._get_param("maxResults"))
    state_machine = self.stepfunction_backend.describe_state_machine(arn)
    executions = [
        execution
        for execution in list(state_machine.executions)
        if (not status_filter or execution.status == status_filter)
        and _matches_redrive_filter(execution, redrive_filter)
    ]
    executions.sort(key=lambda execution: (execution.start_date, execution.execution_arn), reverse=True)
    scope = f"list:{arn}:{status_filter}:{redrive_filter}"
    page, next_token = _page(executions, size, self._get_param("nextToken"), scope)
    response: dict[str, Any] = {"executions": [_list_item(execution, state_machine.arn) for execution in page]}
    if next_token:
        response["nextToken"] = next_token
    return ActionResult(response)


def _list_item(execution: Any, state_machine_arn: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "executionArn": execution.execution_arn,
        "stateMachineArn": state_machine_arn,
        "name": execution.name,
        "status": execution.status,
        "startDate": execution.start_date,
        "redriveCount": _redrive_count(execution),
    }
    if execution.status in CLOSED and execution.stop_date is not None:
        item["stopDate"] = execution.stop_date
    redrive_date = getattr(execution, "redrive_date", None)
    if redrive_date is not None:
        item["redriveDate"] = redrive_date
    return item


# ---------------------------------------------------------------------------------------------
# GetExecutionHistory
# ---------------------------------------------------------------------------------------------


def _without_data(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    stripped: list[dict[str, Any]] = []
    for event in events:
        copy = dict(event)
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict):
                copy[key] = {name: value for name, value in details.items() if name not in _DATA_FIELDS}
        stripped.append(copy)
    return stripped


def get_execution_history(self: Any) -> ActionResult:
    """GetExecutionHistory with reverseOrder, maxResults/nextToken and includeExecutionData (replaces moto's)."""
    arn = self._get_param("executionArn")
    reverse = bool(self._get_param("reverseOrder", False))
    include_data = self._get_param("includeExecutionData")
    size = _page_size(self._get_param("maxResults"))
    events = list(self.stepfunction_backend.get_execution_history(arn)["events"])
    if reverse:
        events.reverse()
    page, next_token = _page(events, size, self._get_param("nextToken"), f"history:{arn}:{reverse}")
    if include_data is False:
        page = _without_data(page)
    response: dict[str, Any] = {"events": page}
    if next_token:
        response["nextToken"] = next_token
    return ActionResult(response)


# ---------------------------------------------------------------------------------------------
# DescribeExecution
# ---------------------------------------------------------------------------------------------


def describe_execution(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap StepFunctionResponse.describe_execution: inputDetails, outputDetails, redrive fields, stopDate."""

    def describe(self: Any) -> Any:
        result = original(self)
        if not isinstance(result, ActionResult):
            return result
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        response = cast(dict[str, Any], result.result)
        response["inputDetails"] = {"included": True}
        # The interpreter keeps the output as a value; moto sends a str value as is, unencoded.
        succeeded = execution.status == ExecutionStatus.SUCCEEDED and isinstance(execution, ParserExecution)
        if succeeded and isinstance(execution.output, str):
            response["output"] = json.dumps(execution.output)
        if "output" in response:
            response["outputDetails"] = {"included": True}
        else:
            response.pop("outputDetails", None)
        if execution.status in CLOSED and execution.stop_date is not None:
            response.setdefault("stopDate", execution.stop_date)
        if isinstance(execution, redrive.Redrivable):
            response.update(execution.redrive_description())
        return result

    return describe


# ---------------------------------------------------------------------------------------------
# ValidateStateMachineDefinition
# ---------------------------------------------------------------------------------------------


def validate_state_machine_definition(self: Any) -> ActionResult:
    """ValidateStateMachineDefinition on the local endpoint (moto has none)."""
    definition = self._get_param("definition")
    machine_type = self._get_param("type") or "STANDARD"
    if not isinstance(definition, str) or not definition:
        raise ValidationException("definition is required")
    diagnostics = definition_diagnostics(definition, machine_type)
    return ActionResult({"result": "FAIL" if diagnostics else "OK", "diagnostics": diagnostics, "truncated": False})


def definition_diagnostics(definition: str, machine_type: str = "STANDARD") -> list[dict[str, str]]:
    """Errors AWS would report for ``definition``: empty when it is valid for moto's interpreter."""
    from moto.stepfunctions.parser.asl.static_analyser.express_static_analyser import ExpressStaticAnalyser
    from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    try:
        parsed = json.loads(definition)
    except ValueError as exc:
        return [_diagnostic("INVALID_JSON_DESCRIPTION", f"The definition is not valid JSON: {exc}")]
    if not isinstance(parsed, dict):
        return [_diagnostic("SCHEMA_VALIDATION_FAILED", "The definition must be a JSON object")]
    missing = list(_missing_targets(parsed, ""))
    if missing:
        return missing
    analyser = ExpressStaticAnalyser() if machine_type == "EXPRESS" else StaticAnalyser()
    try:
        StepFunctionsParserBackend._validate_definition(definition)
        analyser.analyse(definition)
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return [_diagnostic("SCHEMA_VALIDATION_FAILED", message)]
    return []


def _missing_targets(machine: dict[str, Any], location: str) -> Iterable[dict[str, str]]:
    """Transitions to states that do not exist in their scope (moto's parser accepts them)."""
    states = machine.get("States")
    if not isinstance(states, dict):
        return
    start_at = machine.get("StartAt")
    if start_at not in states:
        yield _diagnostic("MISSING_TRANSITION_TARGET", f"Missing 'Next' target: {start_at}", f"{location}/StartAt")
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        here = f"{location}/States/{name}"
        targets = [(state.get("Next"), f"{here}/Next"), (state.get("Default"), f"{here}/Default")]
        for field in ("Choices", "Catch"):
            for index, rule in enumerate(state.get(field) or []):
                if isinstance(rule, dict):
                    targets.append((rule.get("Next"), f"{here}/{field}[{index}]/Next"))
        for target, where in targets:
            if target is not None and target not in states:
                yield _diagnostic("MISSING_TRANSITION_TARGET", f"Missing 'Next' target: {target}", where)
        for field in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(field), dict):
                yield from _missing_targets(state[field], f"{here}/{field}")
        for index, branch in enumerate(state.get("Branches") or []):
            if isinstance(branch, dict):
                yield from _missing_targets(branch, f"{here}/Branches[{index}]")


def _diagnostic(code: str, message: str, location: str | None = None) -> dict[str, str]:
    diagnostic = {"severity": "ERROR", "code": code, "message": message}
    if location:
        diagnostic["location"] = location
    return diagnostic
