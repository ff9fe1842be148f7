"""The deliver step's domain logic: signing keys, one attempt, the attempt log."""

from __future__ import annotations

from typing import Final

from aws_lambda_powertools.utilities import parameters

from lambdas.deliver import attempt_log, signing, transport
from lambdas.shared.clock import utc_iso
from lambdas.shared.config import Settings, get_settings
from lambdas.shared.models import Category, DeliverRequest, DeliveryOutcome
from lambdas.shared.observability import logger, tracer

SECRET_MAX_AGE_SECONDS: Final = 300
"""How long a fetched signing secret is reused; a rotation is picked up within this time."""


class SigningUnavailableError(Exception):
    """Signing is configured but the secret cannot be loaded; sending unsigned would be a downgrade."""


def load_signing_keys(settings: Settings) -> list[bytes]:
    """HMAC keys from Secrets Manager (cached ``SECRET_MAX_AGE_SECONDS``); empty when signing is off."""
    if not settings.signing_secret_id:
        return []
    try:
        value = parameters.get_secret(settings.signing_secret_id, max_age=SECRET_MAX_AGE_SECONDS)
        text = value.decode() if isinstance(value, bytes) else str(value)
        return signing.parse_secrets(text)
    except (parameters.GetParameterError, UnicodeDecodeError, signing.InvalidSecretError) as exc:
        detail = str(exc) if isinstance(exc, signing.InvalidSecretError) else type(exc).__name__
        raise SigningUnavailableError(
            f"signing secret {settings.signing_secret_id} could not be loaded ({detail})"
        ) from None


@tracer.capture_method
def deliver(request: DeliverRequest, settings: Settings | None = None) -> DeliveryOutcome:
    """Send one attempt and log it; the returned outcome carries the record's attempt number."""
    settings = settings or get_settings()
    notification = request.notification
    previous = attempt_log.attempts_so_far(settings.table_name, notification.notificationId, request.executionId)
    planned = (previous if previous is not None else request.retryCount) + 1
    try:
        keys = load_signing_keys(settings)
    except SigningUnavailableError as exc:
        logger.error("not sent: signing unavailable", extra={"detail": str(exc)})
        outcome = DeliveryOutcome(
            success=False,
            retryEligible=True,
            category=Category.CONNECTION_ERROR,
            responseTime=0,
            errorDetails=f"request not sent: {exc}",
            timestamp=utc_iso(),
            correlationId=notification.correlationId,
            attempt=planned,
        )
    else:
        outcome = transport.send(notification, planned, keys=keys, settings=settings)
    logger.info(
        "delivery attempt finished",
        extra={
            "category": outcome.category.value,
            "statusCode": outcome.statusCode,
            "responseTime": outcome.responseTime,
            "retryEligible": outcome.retryEligible,
            "attempt": planned,
        },
    )
    attempts = attempt_log.record_attempt(
        settings.table_name, notification.notificationId, request.executionId, outcome, planned
    )
    return outcome.model_copy(update={"attempt": attempts})
