"""Failure gate step: fail the run with the delivery error, or reopen it on a redrive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lambdas.failure_gate.gate import decide
from lambdas.shared.contracts.failure_gate import GateRequest
from lambdas.shared.errors import DeliveryFailedError
from lambdas.shared.observability import bind_run, lambda_entry, logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@lambda_entry
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Raise the recorded delivery error on a first pass; return a reopen decision on a redrive."""
    try:
        request = GateRequest.model_validate(event)
    except ValidationError as exc:
        raise DeliveryFailedError(f"failure gate input is malformed: {exc.errors()[0]['msg']}") from None
    bind_run(request.notificationId, request.executionId)
    decision = decide(request)
    logger.info("redrive reopens the notification", extra={"redriveCount": decision.redriveCount})
    metrics.add_metric(name="RedriveReopened", unit="Count", value=1)
    return decision.model_dump(mode="json")
