"""Powertools Logger, Metrics and Tracer, created once and shared by every handler."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from lambdas.shared.constants import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)


def bind_run(notification_id: str | None, execution_id: str | None, **extra: object) -> None:
    """Tag every following log line of this invocation with the notification and the run.

    The notification id doubles as the correlation id, so one search finds every
    line about a notification across ingest, all attempts and redrives. The keys are
    thread-local: on AWS one invocation runs at a time, but the embedded stack runs
    several handlers at once in one process and their lines must not borrow each
    other's ids.
    """
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(
        correlation_id=notification_id, notificationId=notification_id, executionId=execution_id, **extra
    )
