"""Ingest: SQS batch -> one run per record, with partial batch failures.

``standard`` mode starts one Standard execution per record (asynchronously: a started run is
durable). ``fast-path`` mode runs the Express workflow synchronously for every record of the
batch at once (threads: each call blocks until its run ends) and reports a record as failed unless
its run reached a durable outcome, so SQS delivers it again and a later run picks it up.

The partial-batch loop is written out here rather than taken from Powertools' batch utility:
importing that utility loads every Powertools event data class and asyncio, about half an
``import boto3`` on each cold start, for a loop of a few lines.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypedDict

from lambdas.ingest.starter import (
    FastPathNotDoneError,
    FastPathResult,
    StartRequest,
    build_start_request,
    run_fast_path,
    start,
)
from lambdas.shared import aws
from lambdas.shared.config import ConfigurationError, Settings, get_settings
from lambdas.shared.constants import DeliveryMode, FastPathOutcome
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


def _sync_sfn() -> Any:
    return aws.sync_client("stepfunctions")


def _request(record: dict[str, Any], settings: Settings) -> StartRequest:
    return build_start_request(record, record.get("eventSourceARN"), settings.record_ttl_days)


def record_handler(record: dict[str, Any]) -> str:
    """Start one Standard execution; raising marks just this record as failed for redelivery."""
    settings = get_settings()
    if not settings.state_machine_arn:
        raise ConfigurationError("NOTIFLOW_STATE_MACHINE_ARN is not set")
    request = _request(record, settings)
    bind_run(request.input["notificationId"], None, sqsMessageId=record.get("messageId"))
    execution, started = start(_sfn(), settings.state_machine_arn, request)
    if started:
        logger.info("execution started", extra={"executionArn": execution})
        metrics.add_metric(name="ExecutionStarted", unit="Count", value=1)
    else:
        logger.info("execution exists already; duplicate message", extra={"executionName": execution})
        metrics.add_metric(name="DuplicateMessage", unit="Count", value=1)
    return execution


def fast_path_record(record: dict[str, Any], settings: Settings) -> FastPathResult:
    """Run the Express workflow for one record and wait for it (called on a worker thread: no logging here)."""
    if not settings.fast_path_state_machine_arn:
        raise ConfigurationError("NOTIFLOW_FAST_PATH_STATE_MACHINE_ARN is not set")
    return run_fast_path(_sync_sfn(), settings.fast_path_state_machine_arn, _request(record, settings))


def _report_fast_path(result: FastPathResult) -> None:
    """Log and count one finished Express run; raise FastPathNotDoneError unless its outcome is durable."""
    # A first-try success is most of the traffic and its record says it all: log it at DEBUG (log ingestion
    # is priced per byte, see `make cost`); anything else is worth an INFO line.
    log = logger.debug if result.outcome == FastPathOutcome.SUCCESS else logger.info
    log(
        "fast path finished",
        extra={"executionArn": result.execution_arn, "status": result.status, "outcome": result.outcome},
    )
    label = (result.outcome or result.status).title().replace("_", "")
    metrics.add_metric(name=f"FastPath{label}", unit="Count", value=1)
    if not result.durable:
        # Only the error name: an Express run's cause may quote the notification.
        raise FastPathNotDoneError(f"Express run {result.status} ({result.error or result.outcome}); not acknowledged")


def _fast_path_batch(records: list[dict[str, Any]], settings: Settings) -> list[ItemFailure]:
    failures: list[ItemFailure] = []
    with ThreadPoolExecutor(max_workers=max(1, len(records)), thread_name_prefix="fast-path") as pool:
        futures = [pool.submit(fast_path_record, record, settings) for record in records]
        for record, future in zip(records, futures, strict=True):
            notification_id = _notification_id(record, settings)
            bind_run(notification_id, None, sqsMessageId=record.get("messageId"))
            try:
                _report_fast_path(future.result())
            except Exception as exc:
                logger.exception("record not done; SQS will deliver it again", extra={"error": type(exc).__name__})
                failures.append({"itemIdentifier": str(record.get("messageId", ""))})
            finally:
                logger.thread_safe_clear_keys()
    return failures


def _notification_id(record: dict[str, Any], settings: Settings) -> str | None:
    try:
        return str(_request(record, settings).input["notificationId"])
    except Exception:
        return None


def _standard_batch(records: list[dict[str, Any]]) -> list[ItemFailure]:
    failures: list[ItemFailure] = []
    for record in records:
        try:
            record_handler(record)
        except Exception as exc:
            logger.exception("record not started; SQS will deliver it again", extra={"error": type(exc).__name__})
            failures.append({"itemIdentifier": str(record.get("messageId", ""))})
        finally:
            logger.thread_safe_clear_keys()
    return failures


@lambda_entry
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialBatchResponse:
    """Report only the records whose run is not durably under way or done, so the rest is not re-driven."""
    records = [record for record in (event or {}).get("Records") or [] if isinstance(record, dict)]
    settings = get_settings()
    if settings.delivery_mode is DeliveryMode.FAST_PATH:
        failures = _fast_path_batch(records, settings)
    else:
        failures = _standard_batch(records)
    if records and len(failures) == len(records):
        raise BatchFailedError(f"All records failed processing ({len(records)}); see the log lines before this one")
    return {"batchItemFailures": failures}
