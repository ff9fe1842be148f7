"""Ingest: SQS batch -> one StartExecution per record, with partial batch failures.

The partial-batch loop is written out here rather than taken from Powertools' batch utility:
importing that utility loads every Powertools event data class and asyncio, about half an
``import boto3`` on each cold start, for a loop of a few lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from lambdas.ingest.starter import build_start_request, start
from lambdas.shared import aws
from lambdas.shared.config import ConfigurationError, get_settings
from lambdas.shared.observability import bind_run, lambda_entry, logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


class ItemFailure(TypedDict):
    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    """What SQS reads back with ``ReportBatchItemFailures``: only these messages are delivered again."""

    batchItemFailures: list[ItemFailure]


class BatchFailedError(RuntimeError):
    """Every record of the batch failed: the invocation fails loudly (and SQS retries the whole batch)."""


def _sfn() -> Any:
    return aws.client("stepfunctions")


def record_handler(record: dict[str, Any]) -> str:
    """Start one execution; raising marks just this record as failed for redelivery."""
    settings = get_settings()
    if not settings.state_machine_arn:
        raise ConfigurationError("NOTIFLOW_STATE_MACHINE_ARN is not set")
    request = build_start_request(record, record.get("eventSourceARN"), settings.record_ttl_days)
    bind_run(request.input["notificationId"], None, sqsMessageId=record.get("messageId"))
    execution, started = start(_sfn(), settings.state_machine_arn, request)
    if started:
        logger.info("execution started", extra={"executionArn": execution})
        metrics.add_metric(name="ExecutionStarted", unit="Count", value=1)
    else:
        logger.info("execution exists already; duplicate message", extra={"executionName": execution})
        metrics.add_metric(name="DuplicateMessage", unit="Count", value=1)
    return execution


@lambda_entry
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialBatchResponse:
    """Report only the records whose start failed, so the rest of the batch is not re-driven."""
    records = [record for record in (event or {}).get("Records") or [] if isinstance(record, dict)]
    failures: list[ItemFailure] = []
    for record in records:
        try:
            record_handler(record)
        except Exception as exc:
            logger.exception("record not started; SQS will deliver it again", extra={"error": type(exc).__name__})
            failures.append({"itemIdentifier": str(record.get("messageId", ""))})
        finally:
            logger.thread_safe_clear_keys()
    if records and len(failures) == len(records):
        raise BatchFailedError(f"All records failed processing ({len(records)}); see the log lines before this one")
    return {"batchItemFailures": failures}
