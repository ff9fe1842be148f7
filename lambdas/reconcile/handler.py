"""Reconcile step: an execution status change from EventBridge -> the record closed, reopened or left alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lambdas.reconcile.events import StatusChange
from lambdas.reconcile.reconciler import StepFunctionsExecutions, reconcile
from lambdas.shared import aws
from lambdas.shared.config import get_settings
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.observability import bind_run, lambda_entry, logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@lambda_entry
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Parse the event (never logged: its input is the notification), reconcile, log what was done."""
    change = StatusChange.from_event(event)
    result = reconcile(
        change,
        NotificationStore(get_settings().table_name),
        StepFunctionsExecutions(aws.client("stepfunctions")),
    )
    bind_run(result.notificationId, change.executionArn)
    logger.info(
        "execution status change reconciled",
        extra={"action": result.action, "executionStatus": change.status, "redriveCount": change.redriveCount},
    )
    if result.action in ("closed", "reopened", "reverted"):
        metrics.add_metric(name=f"Reconciler{result.action.capitalize()}", unit="Count", value=1)
    return result.as_json()
