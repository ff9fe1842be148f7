"""Validate step: checks the execution input against the notification contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lambdas.shared.config import get_settings
from lambdas.shared.errors import InvalidNotificationError
from lambdas.shared.observability import bind_run, lambda_entry, logger, metrics
from lambdas.validate.rules import validate_execution_input

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@lambda_entry
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Return the normalized execution state or raise InvalidNotificationError saying what is wrong."""
    event = event if isinstance(event, dict) else {}
    execution_input = event.get("input")
    notification_id = execution_input.get("notificationId") if isinstance(execution_input, dict) else None
    bind_run(notification_id if isinstance(notification_id, str) else None, event.get("executionId"))
    try:
        validated = validate_execution_input(execution_input, get_settings())
    except InvalidNotificationError as exc:
        logger.warning("notification rejected", extra={"reason": str(exc)})
        metrics.add_metric(name="NotificationRejected", unit="Count", value=1)
        raise
    logger.debug("notification valid", extra={"targetHost": validated.notification.target.host})
    return validated.model_dump(mode="json")
