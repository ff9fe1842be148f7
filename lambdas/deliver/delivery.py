"""The deliver step's domain logic: signing keys, one attempt, the attempt log."""

from __future__ import annotations

from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.deliver import attempt_log, signing, transport
from lambdas.shared import aws
from lambdas.shared.aws import process_cache
from lambdas.shared.clock import utc_iso
from lambdas.shared.config import Settings, get_settings
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.models import Category, DeliverRequest, DeliveryOutcome
from lambdas.shared.observability import logger

SECRET_MAX_AGE_SECONDS: Final = 300
"""How long a fetched signing secret is reused; a rotation is picked up within this time."""


class SigningUnavailableError(Exception):
    """Signing is configured but the secret cannot be loaded; sending unsigned would be a downgrade."""


@process_cache(max_age=SECRET_MAX_AGE_SECONDS)
def secret_value(secret_id: str) -> str:
    """The secret's current value, fetched once per ``SECRET_MAX_AGE_SECONDS`` per process (thread-safe)."""
    response = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    if "SecretString" in response:
        return str(response["SecretString"])
    return bytes(response["SecretBinary"]).decode()


def load_signing_keys(settings: Settings) -> list[bytes]:
    """HMAC keys from Secrets Manager (cached ``SECRET_MAX_AGE_SECONDS``); empty when signing is off."""
    if not settings.signing_secret_id:
        return []
    try:
        return signing.parse_secrets(secret_value(settings.signing_secret_id))
    except (ClientError, BotoCoreError, UnicodeDecodeError, signing.InvalidSecretError) as exc:
        if isinstance(exc, signing.InvalidSecretError):
            detail = str(exc)
        elif isinstance(exc, ClientError):
            detail = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        else:
            detail = type(exc).__name__
        raise SigningUnavailableError(
            f"signing secret {settings.signing_secret_id} could not be loaded ({detail})"
        ) from None


def deliver(request: DeliverRequest, settings: Settings | None = None) -> DeliveryOutcome:
    """Send one attempt and log it; the returned outcome carries the record's attempt number."""
    settings = settings or get_settings()
    notification = request.notification
    store = NotificationStore(settings.table_name)
    known = attempt_log.attempts_so_far(store, notification.notificationId, request.executionId)
    planned = (known.attempts if known is not None else request.retryCount) + 1
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
        store, notification.notificationId, request.executionId, outcome, planned, known=known
    )
    return outcome.model_copy(update={"attempt": attempts})
