"""Deliver Lambda: one HTTP attempt per invocation; Step Functions owns the retry schedule.

Success returns ``{"outcome", "item"}``. Failure raises ``DeliveryRetryableError`` or
``DeliveryPermanentError`` (the names the workflow's Retry and Catch match) with the
same dict as JSON in the message, so the failure path records the last outcome.
``HostBusyError`` means nothing was sent: the target host has no free delivery slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from lambdas.deliver.delivery import deliver
from lambdas.deliver.result import retry_after_wait, to_message, to_result
from lambdas.shared.clock import utc_iso
from lambdas.shared.config import host_key
from lambdas.shared.contracts.deliver import DeliverRequest
from lambdas.shared.errors import DeliveryPermanentError, DeliveryRetryableError, DeliveryThrottledError
from lambdas.shared.models import Category, DeliveryOutcome
from lambdas.shared.observability import annotate, bind_run, lambda_entry, logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@lambda_entry
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Deliver the notification once; return the result or raise the named delivery error."""
    notification = event.get("notification") if isinstance(event, dict) else None
    bind_run(
        notification.get("notificationId") if isinstance(notification, dict) else None,
        event.get("executionId") if isinstance(event, dict) else None,
    )
    try:
        request = DeliverRequest.model_validate(event)
    except ValidationError as exc:
        outcome = _malformed(exc, notification)
        _count(outcome)
        logger.error("deliver input is malformed", extra={"errorDetails": outcome.errorDetails})
        raise DeliveryPermanentError(to_message(outcome)) from None

    attempt = deliver(request)
    outcome = attempt.outcome
    if attempt.sent:
        _count(outcome, request.notification.target.host)
    annotate("category", outcome.category.value)
    if outcome.success:
        return to_result(outcome)
    wait = retry_after_wait(outcome, request.retryAfterWaits, request.maxRetryAfterWaits, request.maxRetryAfterSeconds)
    if wait is not None:
        logger.info("receiver asked to retry later", extra={"waitSeconds": wait})
        raise DeliveryThrottledError(to_message(outcome, wait_seconds=wait))
    error = DeliveryRetryableError if outcome.retryEligible else DeliveryPermanentError
    raise error(to_message(outcome))


def _count(outcome: DeliveryOutcome, host: str = "") -> None:
    """The attempt's metrics (``DeliveryRetry`` for every attempt after a notification's first, by the
    attempt log's count); the host rides along as an EMF property, never a dimension.

    A host dimension would make a custom metric per host and category ($0.30 a month each, as many as
    senders use); as a property it costs nothing more, and the dashboard's Logs Insights widget reads
    latency per host from these lines (``targetHost``, ``responseTimeMs``) when someone looks.
    """
    metrics.add_dimension(name="category", value=outcome.category.value)
    if host:
        metrics.add_metadata(key="targetHost", value=host_key(host))
        metrics.add_metadata(key="responseTimeMs", value=outcome.responseTime)
    metrics.add_metric(name="DeliveryAttempt", unit=MetricUnit.Count, value=1)
    if outcome.attempt > 1:
        metrics.add_metric(name="DeliveryRetry", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="DeliverySucceeded" if outcome.success else "DeliveryFailed", unit=MetricUnit.Count, value=1
    )
    metrics.add_metric(name="DeliveryResponseTime", unit=MetricUnit.Milliseconds, value=outcome.responseTime)


def _malformed(exc: ValidationError, notification: object) -> DeliveryOutcome:
    """A synthetic permanent outcome naming the bad fields (never their values: headers may hold secrets)."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<event>'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)[:10]
    )
    correlation = notification.get("correlationId") if isinstance(notification, dict) else None
    return DeliveryOutcome(
        success=False,
        retryEligible=False,
        category=Category.CLIENT_ERROR,
        responseTime=0,
        errorDetails=f"deliver input is malformed, nothing was sent: {problems}"[:2000],
        timestamp=utc_iso(),
        correlationId=correlation if isinstance(correlation, str) else None,
    )
