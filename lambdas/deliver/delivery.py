"""The deliver step's domain logic: signing keys, one attempt, the attempt log."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.deliver import attempt_log, signing, transport
from lambdas.deliver.host_limit import host_slot
from lambdas.shared import aws
from lambdas.shared.aws import process_cache
from lambdas.shared.clock import utc_iso
from lambdas.shared.config import Settings, get_settings
from lambdas.shared.contracts.deliver import DeliverRequest
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.models import Category, DeliveryOutcome, Notification
from lambdas.shared.observability import logger, metrics
from lambdas.shared.record import AttemptLogEntry

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


@dataclass(frozen=True)
class Attempt:
    """One invocation's result: the outcome (numbered as the record counts) and whether a request went out."""

    outcome: DeliveryOutcome
    sent: bool


def deliver(request: DeliverRequest, settings: Settings | None = None) -> Attempt:
    """Send one attempt and log it; the returned outcome carries the record's attempt number.

    When this run already had an attempt accepted (an earlier invocation crashed or lost its answer
    after the receiver said 2xx, or the run took over a crashed run's claim), that attempt is the
    result and nothing is sent again. Raises HostBusyError, before sending, when the target host
    has no free delivery slot.
    """
    settings = settings or get_settings()
    notification = request.notification
    store = NotificationStore(settings.table_name)
    known = attempt_log.attempts_so_far(store, notification.notificationId, request.executionId)
    if known is not None and known.succeeded is not None:
        logger.info("accepted by an earlier invocation; not sent again", extra={"attempt": known.attempts})
        metrics.add_metric(name="DeliveryAlreadyAccepted", unit="Count", value=1)
        return Attempt(accepted_outcome(known.succeeded, known.attempts, notification.correlationId), sent=False)
    planned = (known.attempts if known is not None else request.retryCount) + 1
    with host_slot(settings, notification.target.host, request.executionId):
        outcome = _attempt(notification, planned, settings)
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
    return Attempt(outcome.model_copy(update={"attempt": attempts}), sent=True)


def _attempt(notification: Notification, planned: int, settings: Settings) -> DeliveryOutcome:
    try:
        keys = load_signing_keys(settings)
    except SigningUnavailableError as exc:
        logger.error("not sent: signing unavailable", extra={"detail": str(exc)})
        return DeliveryOutcome(
            success=False,
            retryEligible=True,
            category=Category.CONNECTION_ERROR,
            responseTime=0,
            errorDetails=f"request not sent: {exc}",
            timestamp=utc_iso(),
            correlationId=notification.correlationId,
            attempt=planned,
        )
    return transport.send(notification, planned, keys=keys, settings=settings)


def accepted_outcome(entry: AttemptLogEntry, attempts: int, correlation_id: str | None) -> DeliveryOutcome:
    """The successful outcome of an attempt the record already logged as accepted."""
    try:
        status_text = HTTPStatus(entry.statusCode).phrase if entry.statusCode is not None else None
    except ValueError:
        status_text = None
    return DeliveryOutcome(
        success=True,
        retryEligible=False,
        category=Category.SUCCESS,
        statusCode=entry.statusCode,
        statusText=status_text,
        responseTime=entry.responseTime,
        timestamp=entry.timestamp,
        correlationId=correlation_id,
        attempt=max(attempts, entry.attempt),
        responseBodyExcerpt=entry.responseBodyExcerpt,
    )
