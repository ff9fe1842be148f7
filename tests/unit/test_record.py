"""The record model: every attribute the workflow writes or tests is a field, and items of every shape parse."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lambdas.shared.constants import RecordStatus
from lambdas.shared.dal.codec import from_typed_item, to_attribute_value
from lambdas.shared.models import Category, DeliveryOutcome
from lambdas.shared.record import NotificationRecord

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EXPRESSION_FIELDS = ("UpdateExpression", "ConditionExpression", "ProjectionExpression")
FUNCTIONS = frozenset(
    {"if_not_exists", "list_append", "attribute_exists", "attribute_not_exists", "attribute_type", "begins_with"}
    | {"contains", "size"}
)
KEYWORDS = frozenset({"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "IN", "BETWEEN"})
_PATH = re.compile(r"(?<![:\w#])(#?[A-Za-z_][A-Za-z0-9_]*)(?:\.#?[A-Za-z_]\w*|\[\d+\])*(\s*\()?")


def expression_attributes(expression: str, names: dict[str, str]) -> set[str]:
    """Top-level attribute names an update/condition expression reads or writes, placeholders resolved."""
    found = set()
    for match in _PATH.finditer(expression):
        token, call = match.group(1), match.group(2)
        if (call and token in FUNCTIONS) or token in KEYWORDS:
            continue
        if token.startswith("#"):
            if token not in names:
                raise KeyError(f"{token} is used but not defined in ExpressionAttributeNames")
            token = names[token]
        found.add(token)
    return found


def dynamodb_tasks(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every DynamoDB task of a definition, nested states (Map, Parallel) included."""
    for name, state in definition.get("States", {}).items():
        if str(state.get("Resource", "")).startswith("arn:aws:states:::dynamodb:"):
            yield name, state["Parameters"]
        for branch in state.get("Branches", []):
            yield from dynamodb_tasks(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from dynamodb_tasks(state[key])


def written_and_tested_attributes(definition: dict[str, Any]) -> dict[str, set[str]]:
    attributes: dict[str, set[str]] = {}
    for state, parameters in dynamodb_tasks(definition):
        names = parameters.get("ExpressionAttributeNames", {})
        found = set(parameters.get("Key", {}))
        for field in EXPRESSION_FIELDS:
            if field in parameters:
                found |= expression_attributes(parameters[field], names)
        attributes[state] = found
    return attributes


ASL_FILES = sorted(WORKFLOWS.glob("*.asl.json"))


def test_there_are_definitions_with_dynamodb_writes_to_check() -> None:
    assert ASL_FILES
    found = {path.name: written_and_tested_attributes(json.loads(path.read_text())) for path in ASL_FILES}
    assert any(states for states in found.values())


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda path: path.name)
def test_every_attribute_the_workflow_touches_is_a_field_of_the_record(path: Path) -> None:
    # Given every UpdateExpression / ConditionExpression of every DynamoDB task in the definition
    attributes = written_and_tested_attributes(json.loads(path.read_text()))

    # Then each attribute they name is a field of the record model
    fields = set(NotificationRecord.model_fields)
    missing = {state: sorted(found - fields) for state, found in attributes.items() if found - fields}
    assert missing == {}, f"attributes written by the workflow but missing from NotificationRecord: {missing}"


def test_the_check_catches_an_attribute_added_only_to_the_workflow() -> None:
    # Given a definition whose update writes an attribute the model does not have (through a placeholder)
    definition = {
        "States": {
            "Record": {
                "Resource": "arn:aws:states:::dynamodb:updateItem",
                "Parameters": {
                    "Key": {"notificationId": {"S.$": "$.id"}},
                    "UpdateExpression": "SET #s = :s, #p = if_not_exists(#p, :now) REMOVE shinyNewField[2].x",
                    "ConditionExpression": "attribute_exists(notificationId) AND size(attemptLog) < :m",
                    "ExpressionAttributeNames": {"#s": "status", "#p": "parkedAt"},
                },
            }
        }
    }

    # Then both unknown attributes are reported, and the functions and known fields are not
    found = written_and_tested_attributes(definition)["Record"]
    assert found - set(NotificationRecord.model_fields) == {"parkedAt", "shinyNewField"}
    assert {"status", "notificationId", "attemptLog"} <= found


OUTCOME = DeliveryOutcome(
    success=False,
    retryEligible=True,
    category=Category.SERVER_ERROR,
    statusCode=503,
    statusText="Service Unavailable",
    responseTime=12,
    errorDetails="HTTP 503 Service Unavailable",
    timestamp="2026-01-02T03:04:05.678Z",
    attempt=3,
    retryAfterSeconds=30,
)


def test_typed_values_are_what_dynamodb_and_the_model_agree_on() -> None:
    typed = NotificationRecord.typed_values(
        status=RecordStatus.FAILED, deliveryResult=OUTCOME, attempts=3, failedAtRedriveCount=0, expiresAt=1_900_000_000
    )
    assert typed["status"] == {"S": "FAILED"}
    assert typed["attempts"] == {"N": "3"}
    assert typed["deliveryResult"]["M"]["statusCode"] == {"N": "503"}
    assert typed["deliveryResult"]["M"]["correlationId"] == {"NULL": True}
    record = NotificationRecord.from_typed_item({"notificationId": {"S": "n-1"}, **typed})
    assert record.deliveryResult == OUTCOME
    assert record.status is RecordStatus.FAILED


def test_typed_values_refuse_unknown_attributes_and_wrong_shapes() -> None:
    with pytest.raises(KeyError, match="shinyNewField"):
        NotificationRecord.typed_values(shinyNewField="x")
    with pytest.raises(ValidationError):
        NotificationRecord.typed_values(status="DELIVERED-ISH")


def test_resource_style_items_with_decimals_parse() -> None:
    item = {
        "notificationId": "n-2",
        "status": "SUCCESS",
        "attempts": Decimal(2),
        "expiresAt": Decimal(1_900_000_000),
        "deliveryResult": {**OUTCOME.model_dump(mode="json"), "responseTime": Decimal(12), "attempt": Decimal(2)},
        "attemptLog": [
            {"attempt": Decimal(1), "timestamp": "t1", "category": "SERVER_ERROR", "responseTime": Decimal(5)},
            {
                "attempt": Decimal(2),
                "timestamp": "t2",
                "category": "SUCCESS",
                "statusCode": Decimal(200),
                "responseTime": 1,
            },
        ],
        "someLegacyAttribute": "ignored",
    }
    record = NotificationRecord.from_item(item)
    assert record.attempts == 2
    assert [entry.category for entry in record.attemptLog] == [Category.SERVER_ERROR, Category.SUCCESS]
    assert record.attemptLogDropped == 0
    assert NotificationRecord.from_typed_item(to_attribute_value(item)["M"]) == record


def test_codec_round_trips_plain_values() -> None:
    value = {"s": "x", "n": 1, "f": 1.5, "b": True, "z": None, "l": [1, "a", {"m": False}]}
    assert from_typed_item(to_attribute_value(value)["M"]) == value
