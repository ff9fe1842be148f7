"""The redrive gate: fail with the delivery error on a first pass, reopen when redriven."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.failure_gate.gate import decide
from lambdas.failure_gate.handler import lambda_handler
from lambdas.shared.contracts.failure_gate import GateRequest
from lambdas.shared.errors import DeliveryFailedError, DeliveryPermanentError, DeliveryRetryableError

OUTCOME = {"success": False, "category": "SERVER_ERROR", "statusCode": 503, "retryEligible": True}
CAUSE = json.dumps(
    {
        "errorMessage": json.dumps({"outcome": OUTCOME, "item": {}}),
        "errorType": "DeliveryRetryableError",
        "stackTrace": [],
    }
)


def gate(error: str, redrive_count: int, failed_at: int, cause: str | None = CAUSE) -> GateRequest:
    return GateRequest(
        notificationId="n-1",
        executionId="arn:exec:1",
        redriveCount=redrive_count,
        failedAtRedriveCount=failed_at,
        error={"Error": error, "Cause": cause},
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [("DeliveryRetryableError", DeliveryRetryableError), ("DeliveryPermanentError", DeliveryPermanentError)],
)
def test_first_pass_fails_with_the_delivery_error_and_last_outcome(error: str, expected: type) -> None:
    with pytest.raises(expected) as caught:
        decide(gate(error, redrive_count=0, failed_at=0))
    assert type(caught.value).__name__ == error
    assert json.loads(str(caught.value)) == OUTCOME


def test_failure_after_a_redrive_fails_again() -> None:
    # The redriven delivery failed again: the count captured at failure equals the live one.
    with pytest.raises(DeliveryRetryableError):
        decide(gate("DeliveryRetryableError", redrive_count=2, failed_at=2))


def test_redrive_reopens() -> None:
    decision = decide(gate("DeliveryPermanentError", redrive_count=1, failed_at=0))
    assert decision.reopen is True
    assert decision.redriveCount == 1


def test_unknown_error_names_become_delivery_failed() -> None:
    with pytest.raises(DeliveryFailedError, match=r"States\.Timeout: Task timed out"):
        decide(gate("States.Timeout", 0, 0, cause="Task timed out"))


def test_handler_rejects_malformed_input_with_a_named_error(lambda_context: Any) -> None:
    with pytest.raises(DeliveryFailedError, match="malformed"):
        lambda_handler({"notificationId": "n-1"}, lambda_context)
    assert lambda_handler(gate("DeliveryRetryableError", 1, 0).model_dump(), lambda_context)["reopen"] is True
