"""The local SQS event source mapping: long-poll the intake queue, hand batches to a function.

It reproduces what the Lambda poller does on AWS for a standard queue with
``ReportBatchItemFailures``: real SQS batch events, only successful records deleted, failed ones
left to reappear after the visibility timeout, nothing deleted when the function errors, and the
queue's RedrivePolicy (applied by moto on ReceiveMessage) moving a message to the DLQ once it was
received maxReceiveCount times. Like an event source mapping's maximum concurrency, it takes no more
messages while ``max_in_flight`` runs wait for or hold an engine worker (parked runs do not count),
so a burst stays on the queue instead of becoming hundreds of runs competing for the interpreter.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from notiflow.local.engine import fault_seams, runtime, scheduler

LOG = logging.getLogger(__name__)

MAX_BATCH_SIZE: Final = 10

Invoker = Callable[[str, dict[str, Any]], runtime.Invocation]


@dataclass(frozen=True)
class BatchResult:
    """What one poll did."""

    received: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    errored: bool = False
    error_type: str | None = None


@dataclass
class PollerStats:
    """Running totals since the poller was created."""

    batches: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0
    errored_batches: int = 0
    last_error: str | None = None
    history: list[BatchResult] = field(default_factory=list)


def _message_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attributes in the shape of a Lambda SQS event record."""
    converted: dict[str, Any] = {}
    for name, value in raw.items():
        attribute: dict[str, Any] = {
            "stringListValues": list(value.get("StringListValues", [])),
            "binaryListValues": [base64.b64encode(v).decode("ascii") for v in value.get("BinaryListValues", [])],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        converted[name] = attribute
    return converted


def to_event_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ReceiveMessage message as a record of the Lambda SQS event."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_item_ids(payload: str, batch_ids: set[str]) -> set[str] | None:
    """Message ids to keep after a successful invocation, following Lambda's partial-batch rules.

    None means "the whole batch failed": an unparseable response, or a batchItemFailures entry
    whose itemIdentifier is missing, empty or not a message of this batch.
    """
    try:
        response = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(response, dict) or response.get("batchItemFailures") is None:
        return set()
    failures = response["batchItemFailures"]
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in batch_ids:
            return None
        ids.add(identifier)
    return ids


class SqsPoller:
    """Long-polls one queue and invokes one function per batch, in a background thread."""

    def __init__(
        self,
        *,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        function_name: str,
        region: str = "us-east-1",
        account_id: str = runtime.DEFAULT_ACCOUNT_ID,
        batch_size: int = 10,
        wait_time_seconds: int = 1,
        visibility_timeout: int | None = None,
        report_batch_item_failures: bool = True,
        invoker: Invoker | None = None,
        keep_history: int = 100,
        idle_seconds: float = 0.05,
        max_in_flight: int | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        if not 0 <= wait_time_seconds <= 20:
            raise ValueError("wait_time_seconds must be between 0 and 20")
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function_name = function_name
        self.region = region
        self.account_id = account_id
        self.batch_size = batch_size
        self.wait_time_seconds = wait_time_seconds
        self.visibility_timeout = visibility_timeout
        self.report_batch_item_failures = report_batch_item_failures
        self._invoker = invoker or self._invoke_in_process
        self._keep_history = keep_history
        self.idle_seconds = idle_seconds
        self.max_in_flight = max_in_flight
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _invoke_in_process(self, function_name: str, event: dict[str, Any]) -> runtime.Invocation:
        try:
            return runtime.invoke_function(function_name, event, account_id=self.account_id, region=self.region)
        except ClientError as refused:  # a throttled invocation: the batch stays on the queue, as an error would
            code = refused.response["Error"]["Code"]
            return runtime.Invocation(json.dumps({"errorType": code, "errorMessage": str(refused)}), True)

    def saturated(self) -> bool:
        """Whether the engine already has ``max_in_flight`` runs waiting for or holding a worker."""
        return self.max_in_flight is not None and scheduler.backlog() >= self.max_in_flight

    # -- one poll ----------------------------------------------------------------------------

    def _receive(self) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": self.batch_size,
            "WaitTimeSeconds": self.wait_time_seconds,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout is not None:
            request["VisibilityTimeout"] = self.visibility_timeout
        return list(self.sqs.receive_message(**request).get("Messages", []))

    def poll_once(self) -> BatchResult:
        """Receive one batch, invoke the function, delete what succeeded; returns what happened."""
        with self._lock:
            messages = self._receive()
            if not messages:
                return BatchResult()
            event = {"Records": [to_event_record(m, self.queue_arn, self.region) for m in messages]}
            ids = {m["MessageId"] for m in messages}
            invocation = self._invoker(self.function_name, event)
            again = {m["MessageId"] for m in fault_seams.duplicates(messages)}
            if again:  # sqs-duplicate: the same messages handed to the function a second time
                self._invoker(self.function_name, {"Records": [r for r in event["Records"] if r["messageId"] in again]})
            if invocation.errored:
                result = BatchResult(
                    received=tuple(m["MessageId"] for m in messages),
                    failed=tuple(sorted(ids)),
                    errored=True,
                    error_type=invocation.error_type,
                )
                LOG.warning("%s failed a batch of %d: %s", self.function_name, len(messages), invocation.payload[:500])
            else:
                failed = failed_item_ids(invocation.payload, ids) if self.report_batch_item_failures else set()
                if failed is None:
                    failed = set(ids)
                done = [m for m in messages if m["MessageId"] not in failed]
                self._delete(done)
                result = BatchResult(
                    received=tuple(m["MessageId"] for m in messages),
                    deleted=tuple(m["MessageId"] for m in done),
                    failed=tuple(m["MessageId"] for m in messages if m["MessageId"] in failed),
                )
            self._record(result)
            return result

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        entries = [{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(messages)]
        response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            LOG.warning("could not delete message %s: %s", failure.get("Id"), failure.get("Message"))

    def _record(self, result: BatchResult) -> None:
        self.stats.batches += 1
        self.stats.received += len(result.received)
        self.stats.deleted += len(result.deleted)
        self.stats.failed += len(result.failed)
        self.stats.errored_batches += int(result.errored)
        if result.errored:
            self.stats.last_error = result.error_type
        self.stats.history.append(result)
        del self.stats.history[: -self._keep_history]

    # -- background thread -------------------------------------------------------------------

    def start(self) -> SqsPoller:
        """Poll in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("poller already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sqs-poller-{self.function_name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.saturated():
                self._stop.wait(self.idle_seconds)
                continue
            try:
                result = self.poll_once()
                if not result.received and self.wait_time_seconds == 0:
                    # Short polling (wait_time_seconds=0) idles here, where stop() can interrupt it.
                    self._stop.wait(self.idle_seconds)
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if not self._stop.is_set():
                    LOG.warning("SQS poll of %s failed: %s", self.queue_url, exc)
                    self._stop.wait(0.5)

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current poll (at most about ``wait_time_seconds`` plus one batch)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.wait_time_seconds + 30 if timeout is None else timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        """Whether the polling thread is alive."""
        return self._thread is not None and self._thread.is_alive()
