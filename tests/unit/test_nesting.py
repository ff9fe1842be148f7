"""Deeply nested bodies end as named REJECTED runs: ingest checks the depth before anything recurses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.ingest.starter import build_start_request
from lambdas.shared.errors import InvalidNotificationError
from lambdas.shared.models import MAX_NESTING_DEPTH
from lambdas.shared.nesting import text_exceeds, value_exceeds
from lambdas.validate.handler import lambda_handler as validate
from lambdas.validate.rules import validate_notification
from tests.unit.test_validate import PRODUCTION, notification


def nested_body(depth: int) -> str:
    """A notification whose payload nests arrays so that the whole body is ``depth`` levels deep."""
    head = '{"notificationId":"deep-1","target":{"url":"https://hooks.example.com/x"},"payload":'
    return head + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def nested_value(depth: int) -> dict[str, Any]:
    """The same shape built as Python objects (as if a run were started by hand with a deep input)."""
    payload: Any = []
    for _ in range(depth - 2):
        payload = [payload]
    return notification(payload=payload)


def sqs_record(body: str) -> dict[str, Any]:
    return {"messageId": "m-deep", "body": body, "attributes": {"SentTimestamp": "1"}, "messageAttributes": {}}


def test_the_helpers_measure_depth_exactly() -> None:
    assert json.loads(nested_body(MAX_NESTING_DEPTH)) is not None
    assert not text_exceeds(nested_body(MAX_NESTING_DEPTH), MAX_NESTING_DEPTH)
    assert text_exceeds(nested_body(MAX_NESTING_DEPTH + 1), MAX_NESTING_DEPTH)
    assert not value_exceeds(nested_value(MAX_NESTING_DEPTH), MAX_NESTING_DEPTH)
    assert value_exceeds(nested_value(MAX_NESTING_DEPTH + 1), MAX_NESTING_DEPTH)
    # brackets inside strings are text, not structure
    assert not text_exceeds(json.dumps({"s": "[" * 1000, "t": 'a\\"[[{{'}), 2)


def test_a_body_at_the_limit_is_delivered_as_usual(lambda_context: Any) -> None:
    request = build_start_request(sqs_record(nested_body(MAX_NESTING_DEPTH)), None, ttl_days=1, now=0)
    assert request.input["parseError"] is None
    result = validate({"input": request.input, "executionId": "arn:exec:ok"}, lambda_context)
    assert result["notificationId"] == "deep-1"


@pytest.mark.parametrize("depth", [33, 256, 450, 950, 1000, 100_000])
def test_deep_bodies_become_named_rejected_runs(depth: int, lambda_context: Any) -> None:
    # Given an SQS message whose body nests `depth` levels (the largest is still under 200 KiB)
    body = nested_body(depth)

    # When ingest maps it to an execution
    request = build_start_request(sqs_record(body), "arn:queue", ttl_days=1, now=0)

    # Then the run is named after the message and its input is small and flat: the parse error and a string excerpt
    text = json.dumps(request.input, separators=(",", ":"))
    assert request.name == "sqs-m-deep"
    assert request.input["notification"] is None
    assert f"more than {MAX_NESTING_DEPTH} levels deep" in request.input["parseError"]
    assert not text_exceeds(text, 3)
    assert len(text) < 2048

    # And Validate rejects it with the named error the workflow records as REJECTED
    with pytest.raises(InvalidNotificationError, match=f"more than {MAX_NESTING_DEPTH} levels deep"):
        validate({"input": json.loads(text), "executionId": "arn:exec:deep"}, lambda_context)


@pytest.mark.parametrize("depth", [33, 256, 450, 1000, 100_000])
def test_validate_refuses_deep_structures_it_is_handed_directly(depth: int) -> None:
    with pytest.raises(InvalidNotificationError, match=f"more than {MAX_NESTING_DEPTH} levels deep"):
        validate_notification(nested_value(depth), PRODUCTION)
