"""Deduplicate step: claims the notification for this execution or reports a duplicate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lambdas.deduplicate.claims import claim
from lambdas.shared.config import get_settings
from lambdas.shared.contracts.deduplicate import ClaimRequest
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.errors import InvalidNotificationError
from lambdas.shared.observability import bind_run, lambda_entry, logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@lambda_entry
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Return the claim result; the state machine skips delivery when it is a duplicate."""
    try:
        request = ClaimRequest.model_validate(event)
    except ValidationError as exc:
        raise InvalidNotificationError(f"deduplicate input is malformed: {exc.errors()[0]['msg']}") from None
    bind_run(request.notificationId, request.executionId)
    result = claim(NotificationStore(get_settings().table_name), request)
    if result.duplicate:
        logger.info("duplicate notification skipped", extra={"reason": result.reason})
        metrics.add_metric(name="DuplicateSkipped", unit="Count", value=1)
    else:
        logger.debug("notification claimed", extra={"replay": request.replay})
    return result.model_dump(mode="json")
