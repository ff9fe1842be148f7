"""Ingest: SQS batch -> one StartExecution per record, with partial batch failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.ingest.starter import build_start_request, start
from lambdas.shared import aws
from lambdas.shared.config import ConfigurationError, get_settings
from lambdas.shared.observability import bind_run, lambda_entry, logger, metrics


def _sfn() -> Any:
    return aws.client("stepfunctions")


def record_handler(record: SQSRecord) -> str:
    """Start one execution; raising marks just this record as failed for redelivery."""
    settings = get_settings()
    if not settings.state_machine_arn:
        raise ConfigurationError("NOTIFLOW_STATE_MACHINE_ARN is not set")
    request = build_start_request(record.raw_event, record.event_source_arn, settings.record_ttl_days)
    bind_run(request.input["notificationId"], None, sqsMessageId=record.message_id)
    execution, started = start(_sfn(), settings.state_machine_arn, request)
    if started:
        logger.info("execution started", extra={"executionArn": execution})
        metrics.add_metric(name="ExecutionStarted", unit="Count", value=1)
    else:
        logger.info("execution exists already; duplicate message", extra={"executionName": execution})
        metrics.add_metric(name="DuplicateMessage", unit="Count", value=1)
    logger.thread_safe_clear_keys()
    return execution


@lambda_entry
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Report only the records whose start failed, so the rest of the batch is not re-driven.

    One processor per invocation: it holds the batch's results, and the local engine runs
    several invocations at once in one process.
    """
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
