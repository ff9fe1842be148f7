"""Every Standard-mode path end to end: SQS -> ingest -> the real ASL -> the real handlers -> a real receiver.

Nothing is mocked: messages go on the stack's intake queue, the local event source mapping hands
them to the ingest handler, executions run the repository definition, and deliveries reach a
scripted webhook receiver on 127.0.0.1. Waits are scaled (the 24-retry schedule takes about a
second). Each test checks the path taken, the retries counted and the DynamoDB record field by field.
The stack runs in ``standard`` delivery mode: ingest starts the Standard workflow for every message.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.ingest.starter import execution_name
from lambdas.shared.constants import REPLAY_ATTRIBUTE, DeliveryMode
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import ExecutionResult, finished_execution, stack_settings_for_tests, wait_for_execution
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.shared.waiting import wait_until

SUCCESS_PATH = ["Route", "Validate", "Deduplicate", "IsDuplicate", "Deliver", "RecordSuccess"]
FAILURE_PATH = [
    "Route",
    "Validate",
    "Deduplicate",
    "IsDuplicate",
    "Deliver",
    "DescribeDeliveryFailure",
    "DescribeLastOutcome",
    "RecordFailure",
    "FailureGate",
]
_deserializer = TypeDeserializer()


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    return stack_settings_for_tests(delivery_mode=DeliveryMode.STANDARD)


@pytest.fixture(scope="module")
def receiver(local_stack: EmbeddedStack) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=local_stack.signing_secret) as rx:
        yield rx


def _notification(receiver: WebhookReceiver, path: str, **extra: Any) -> dict[str, Any]:
    notification_id = f"{path.strip('/')}-{uuid.uuid4().hex[:12]}"
    return {
        "notificationId": notification_id,
        "target": {"url": receiver.url(path)},
        "payload": {"orderId": 42, "notificationId": notification_id},
        "eventType": "order.created",
        "correlationId": f"corr-{notification_id}",
        **extra,
    }


def _run(
    stack: EmbeddedStack, body: dict[str, Any] | str, name: str | None = None, **attributes: str
) -> ExecutionResult:
    message_id = stack.send_notification(body, **attributes)
    if name is None:
        name = execution_name(body["notificationId"]) if isinstance(body, dict) else f"sqs-{message_id}"
    return finished_execution(stack.client("stepfunctions"), stack.execution_arn(name), timeout=60)


def _record(stack: EmbeddedStack, notification_id: str) -> dict[str, Any]:
    item = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"notificationId": {"S": notification_id}}, ConsistentRead=True
    )["Item"]
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _wait_until_consumed(stack: EmbeddedStack, message_id: str) -> None:
    """Until the stack's SQS poller has handed ``message_id`` to ingest and deleted it."""
    assert stack.poller is not None
    poller = stack.poller
    wait_until(
        lambda: any(message_id in batch.deleted for batch in list(poller.stats.history)),
        timeout=30,
        describe=f"the poller to consume message {message_id}",
    )


class _GatedEndpoint:
    """An HTTP endpoint on 127.0.0.1 that answers 200 only once the test releases it."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.release = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                gate.received.set()
                gate.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/held"

    def __enter__(self) -> _GatedEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


def _assert_common_fields(record: dict[str, Any], notification: dict[str, Any], execution_arn: str) -> None:
    assert record["notificationId"] == notification["notificationId"]
    assert record["executionArn"] == execution_arn
    assert record["targetHost"] == "127.0.0.1"
    assert record["eventType"] == notification["eventType"]
    assert record["correlationId"] == notification["correlationId"]
    created = _iso(record["createdAt"])
    assert created <= _iso(record["claimedAt"]) <= _iso(record["lastUpdatedAt"])
    days = (int(record["expiresAt"]) - time.time()) / 86400
    assert 89 < days <= 90


def test_success(local_stack, receiver):
    # Given an endpoint answering 200
    receiver.script("/success", Step(200))
    notification = _notification(receiver, "/success")

    # When the notification goes through the queue
    result = _run(local_stack, notification)

    # Then one signed request was delivered and SUCCESS recorded
    assert result.status == "SUCCEEDED"
    assert result.summary.entered == SUCCESS_PATH
    assert sum(result.summary.retries.values()) == 0
    (request,) = receiver.requests_for("/success")
    assert request.signature_valid is True
    assert request.headers["webhook-id"] == notification["notificationId"]
    assert request.json() == notification["payload"]
    record = _record(local_stack, notification["notificationId"])
    _assert_common_fields(record, notification, result.description["executionArn"])
    assert record["status"] == "SUCCESS"
    assert record["attempts"] == 1
    result_fields = record["deliveryResult"]
    assert result_fields["success"] is True
    assert result_fields["retryEligible"] is False
    assert result_fields["category"] == "SUCCESS"
    assert result_fields["statusCode"] == 200
    assert result_fields["statusText"] == "OK"
    assert result_fields["responseTime"] >= 0
    assert result_fields["correlationId"] == notification["correlationId"]
    assert _iso(result_fields["timestamp"]) <= _iso(result_fields["httpResponseReceivedAt"])
    assert record["lastDeliveryAttempt"] == result_fields["timestamp"]
    assert _iso(record["deliveredAt"]) >= _iso(result_fields["timestamp"])
    assert [(e["attempt"], e["category"], e["statusCode"]) for e in record["attemptLog"]] == [(1, "SUCCESS", 200)]
    assert record["attemptLog"][0]["executionId"] == result.description["executionArn"]
    assert "failureReason" not in record
    assert "errorName" not in record
    # And a delivered notification leaves the operator index and its accepted-attempt marker behind
    for gone in ("opsStatus", "opsSince", "successfulAttempt", "leaseExpiresAt"):
        assert gone not in record


def test_retry_then_success(local_stack, receiver):
    # Given an endpoint failing twice with 503
    receiver.script("/flaky", [Step(503), Step(503), Step(200)])
    notification = _notification(receiver, "/flaky")

    # When it is delivered
    result = _run(local_stack, notification)

    # Then Deliver was retried twice by the workflow and the third attempt recorded SUCCESS
    assert result.status == "SUCCEEDED"
    assert result.summary.entered == SUCCESS_PATH
    assert result.summary.retries["Deliver"] == 2
    assert result.summary.errors == [("Deliver", "DeliveryRetryableError")] * 2
    requests = receiver.requests_for("/flaky")
    assert [r.status for r in requests] == [503, 503, 200]
    assert {r.headers["webhook-id"] for r in requests} == {notification["notificationId"]}
    assert all(r.signature_valid for r in requests)
    record = _record(local_stack, notification["notificationId"])
    _assert_common_fields(record, notification, result.description["executionArn"])
    assert record["status"] == "SUCCESS"
    assert record["attempts"] == 3
    assert record["deliveryResult"]["statusCode"] == 200
    assert record["deliveryResult"]["attempt"] == 3
    assert [(e["attempt"], e["category"], e["statusCode"]) for e in record["attemptLog"]] == [
        (1, "SERVER_ERROR", 503),
        (2, "SERVER_ERROR", 503),
        (3, "SUCCESS", 200),
    ]
    assert "failureReason" not in record


def test_retry_after_is_honoured_by_a_wait_then_delivered(local_stack, receiver):
    # Given an endpoint that answers 429 with Retry-After: 120, then 200
    receiver.script("/busy", [Step(429, headers={"Retry-After": "120"}), Step(200)])
    notification = _notification(receiver, "/busy")

    # When it is delivered
    result = _run(local_stack, notification)

    # Then the workflow waited as asked in a Wait state (not a Retry back-off) and delivered
    assert result.status == "SUCCEEDED"
    assert result.summary.entered == [
        *SUCCESS_PATH[:5],
        "DescribeRetryAfter",
        "ReadRetryAfter",
        "ScheduleRetryAfter",
        "WaitRetryAfter",
        *SUCCESS_PATH[4:],
    ]
    assert result.summary.errors == [("Deliver", "DeliveryThrottledError")]
    assert sum(result.summary.retries.values()) == 0
    wait = next(e for e in result.history if e["type"] == "WaitStateEntered")
    assert json.loads(wait["stateEnteredEventDetails"]["input"])["retryAfter"] == {"waits": 1, "seconds": 120}
    assert [r.status for r in receiver.requests_for("/busy")] == [429, 200]
    record = _record(local_stack, notification["notificationId"])
    assert record["status"] == "SUCCESS"
    assert record["attempts"] == 2
    assert [(e["attempt"], e["statusCode"], e.get("retryAfterSeconds")) for e in record["attemptLog"]] == [
        (1, 429, 120),
        (2, 200, None),
    ]


def test_retry_after_budget_then_normal_back_off(local_stack, receiver):
    # Given an endpoint that keeps answering 503 with Retry-After
    receiver.script("/overloaded", [Step(503, headers={"Retry-After": "5"})] * 7 + [Step(200)])
    notification = _notification(receiver, "/overloaded")

    # When it is delivered
    result = _run(local_stack, notification)

    # Then five waits are honoured, after which the normal Retry schedule takes over
    assert result.status == "SUCCEEDED"
    assert result.summary.entered.count("WaitRetryAfter") == 5
    assert result.summary.retries["Deliver"] == 2
    assert len(receiver.requests_for("/overloaded")) == 8
    assert _record(local_stack, notification["notificationId"])["attempts"] == 8


def test_retry_exhaustion(local_stack, receiver):
    # Given an endpoint that always answers 503
    receiver.script("/down", Step(503))
    notification = _notification(receiver, "/down")

    # When the whole retry schedule runs out
    result = _run(local_stack, notification)

    # Then the 24 retries ran, FAILED was recorded with the last outcome and the run failed
    assert result.status == "FAILED"
    assert result.description["error"] == "DeliveryRetryableError"
    assert result.summary.entered == FAILURE_PATH
    assert result.summary.retries["Deliver"] == 24
    assert len(receiver.requests_for("/down")) == 25
    record = _record(local_stack, notification["notificationId"])
    _assert_common_fields(record, notification, result.description["executionArn"])
    assert record["status"] == "FAILED"
    assert record["errorName"] == "DeliveryRetryableError"
    assert record["attempts"] == 25
    assert len(record["attemptLog"]) == 25
    assert record["deliveryResult"]["category"] == "SERVER_ERROR"
    assert record["deliveryResult"]["statusCode"] == 503
    assert record["deliveryResult"]["retryEligible"] is True
    assert "503" in record["failureReason"]
    assert record["failedAtRedriveCount"] == 0
    assert "deliveredAt" not in record
    assert record["opsStatus"] == "FAILED"
    assert record["opsSince"] == record["lastUpdatedAt"]
    assert json.loads(json.loads(result.description["cause"])["errorMessage"])["statusCode"] == 503


def test_permanent_failure(local_stack, receiver):
    # Given an endpoint refusing the notification with 400
    receiver.script("/refuses", Step(400, body="unknown customer"))
    notification = _notification(receiver, "/refuses")

    # When it is delivered
    result = _run(local_stack, notification)

    # Then there is no retry and FAILED is recorded with the 400
    assert result.status == "FAILED"
    assert result.description["error"] == "DeliveryPermanentError"
    assert result.summary.entered == FAILURE_PATH
    assert result.summary.retries["Deliver"] == 0
    assert len(receiver.requests_for("/refuses")) == 1
    record = _record(local_stack, notification["notificationId"])
    _assert_common_fields(record, notification, result.description["executionArn"])
    assert record["status"] == "FAILED"
    assert record["errorName"] == "DeliveryPermanentError"
    assert record["attempts"] == 1
    assert record["deliveryResult"]["category"] == "CLIENT_ERROR"
    assert record["deliveryResult"]["statusCode"] == 400
    assert record["deliveryResult"]["retryEligible"] is False
    assert record["failedAtRedriveCount"] == 0


def test_redrive_after_fixing_the_endpoint_delivers_under_the_same_run(local_stack, receiver):
    # Given a notification that failed permanently
    receiver.script("/fixed-later", Step(410))
    notification = _notification(receiver, "/fixed-later")
    failed = _run(local_stack, notification)
    assert failed.status == "FAILED"

    # When the endpoint is fixed and the run redriven
    receiver.fix("/fixed-later", Step(200))
    sfn = local_stack.client("stepfunctions")
    sfn.redrive_execution(executionArn=failed.description["executionArn"])
    result = finished_execution(sfn, failed.description["executionArn"], timeout=60)

    # Then the gate reopened it, the second attempt delivered it, and the record says so
    assert result.status == "SUCCEEDED"
    assert result.description["redriveCount"] == 1
    assert result.summary.entered == [
        *FAILURE_PATH,
        "FailureGate",
        "ReopenForRedrive",
        "ResumeAfterRedrive",
        "Deliver",
        "RecordSuccess",
    ]
    assert [r.status for r in receiver.requests_for("/fixed-later")] == [410, 200]
    record = _record(local_stack, notification["notificationId"])
    assert record["status"] == "SUCCESS"
    assert record["redriveCount"] == 1
    assert record["attempts"] == 2
    assert [e["statusCode"] for e in record["attemptLog"]] == [410, 200]
    assert _iso(record["reopenedAt"]) <= _iso(record["deliveredAt"])
    assert "failureReason" not in record
    assert "errorName" not in record


def test_rejected_input(local_stack, receiver):
    # Given a notification without a target
    notification = _notification(receiver, "/never")
    del notification["target"]

    # When it goes through the queue
    result = _run(local_stack, notification)

    # Then it is rejected visibly, recorded REJECTED and never delivered
    assert result.status == "FAILED"
    assert result.description["error"] == "InvalidNotificationError"
    assert "target" in result.description["cause"]
    assert result.summary.entered == ["Route", "Validate", "DescribeRejection", "RecordRejected", "Rejected"]
    assert receiver.requests_for("/never") == []
    record = _record(local_stack, notification["notificationId"])
    assert record["status"] == "REJECTED"
    assert record["errorName"] == "InvalidNotificationError"
    assert record["failureReason"] == result.description["cause"]
    assert record["opsStatus"] == "REJECTED"
    assert record["executionArn"] == result.description["executionArn"]
    assert _iso(record["createdAt"]) <= _iso(record["rejectedAt"])
    assert "deliveryResult" not in record


def test_body_that_is_not_json_is_rejected_under_the_message_id(local_stack):
    # When a message body is not JSON at all
    result = _run(local_stack, "this is not json")

    # Then the run keyed by the SQS message id rejects it with the parse error
    assert result.status == "FAILED"
    assert result.description["error"] == "InvalidNotificationError"
    notification_id = result.description["name"]
    assert notification_id.startswith("sqs-")
    record = _record(local_stack, notification_id)
    assert record["status"] == "REJECTED"
    assert "JSON" in record["failureReason"]


def test_duplicates_are_delivered_once(local_stack, receiver):
    # Given a notification delivered once
    receiver.script("/once", Step(200))
    notification = _notification(receiver, "/once")
    first = _run(local_stack, notification)
    assert first.status == "SUCCEEDED"

    # When the same message arrives again, and then once more marked as a replay
    duplicate_message = local_stack.send_notification(notification)
    replay_message = local_stack.send_notification(notification, **{REPLAY_ATTRIBUTE: "true"})
    replay = finished_execution(
        local_stack.client("stepfunctions"),
        local_stack.execution_arn(execution_name(notification["notificationId"], replay_message)),
        timeout=60,
    )

    # Then the redelivered message started nothing (same execution name) and the replay run
    # found the notification already delivered and skipped it
    assert replay.status == "SUCCEEDED"
    assert replay.summary.entered == ["Route", "Validate", "Deduplicate", "IsDuplicate", "SkipDuplicate"]
    assert replay.output["claim"]["duplicate"] is True
    _wait_until_consumed(local_stack, duplicate_message)
    names = [
        e["name"]
        for e in local_stack.client("stepfunctions").list_executions(stateMachineArn=local_stack.state_machine_arn)[
            "executions"
        ]
        if e["name"].startswith(notification["notificationId"])
    ]
    assert sorted(names) == sorted([first.description["name"], replay.description["name"]])
    assert len(receiver.requests_for("/once")) == 1
    record = _record(local_stack, notification["notificationId"])
    assert record["status"] == "SUCCESS"
    assert record["executionArn"] == first.description["executionArn"]
    assert record["attempts"] == 1


def test_conditional_write_conflict_leaves_the_record_alone(local_stack):
    # Given an endpoint that holds its answer, and another run taking the notification over while it does
    with _GatedEndpoint() as endpoint:
        notification = {
            "notificationId": f"slow-{uuid.uuid4().hex[:12]}",
            "target": {"url": endpoint.url},
            "payload": {"orderId": 42},
        }
        local_stack.send_notification(notification)
        assert endpoint.received.wait(30), "the delivery never reached the endpoint"
        other_run = local_stack.execution_arn("another-run")
        local_stack.client("dynamodb").update_item(
            TableName=local_stack.table_name,
            Key={"notificationId": {"S": notification["notificationId"]}},
            UpdateExpression="SET executionArn = :other",
            ExpressionAttributeValues={":other": {"S": other_run}},
        )

        # When the held delivery completes
        endpoint.release.set()
        result = finished_execution(
            local_stack.client("stepfunctions"),
            local_stack.execution_arn(execution_name(notification["notificationId"])),
            timeout=60,
        )

    # Then the SUCCESS write lost its condition, the run ended as a stale write, and the
    # record still belongs to the other run
    assert result.status == "SUCCEEDED"
    assert result.summary.entered == [*SUCCESS_PATH, "StaleWriteIgnored"]
    assert result.output["staleWrite"]["Error"] == "DynamoDB.ConditionalCheckFailedException"
    record = _record(local_stack, notification["notificationId"])
    assert record["executionArn"] == other_run
    assert record["status"] == "PROCESSING"
    assert "deliveredAt" not in record
    assert "deliveryResult" not in record


def test_execution_name_is_the_notification_id(local_stack, receiver):
    # The console link an operator follows is predictable from the notification id alone.
    receiver.script("/named", Step(204))
    notification = _notification(receiver, "/named")
    local_stack.send_notification(notification)
    description = wait_for_execution(
        local_stack.client("stepfunctions"), local_stack.execution_arn(notification["notificationId"]), timeout=60
    )
    assert description["status"] == "SUCCEEDED"
    assert description["name"] == notification["notificationId"]
    assert json.loads(description["input"])["notification"] == notification


def test_corrected_rejected_notification_is_delivered_by_a_replay(local_stack, receiver):
    # Given a notification rejected for a bad scheme
    receiver.script("/corrected", Step(200))
    good = _notification(receiver, "/corrected")
    bad = {**good, "target": {"url": good["target"]["url"].replace("http://", "ftp://")}}
    assert _run(local_stack, bad).status == "FAILED"
    assert _record(local_stack, good["notificationId"])["status"] == "REJECTED"

    # When the corrected message is sent plainly, it is a duplicate of the rejected run's name
    local_stack.send_notification(good)
    # And when it is sent as a deliberate replay
    message_id = local_stack.send_notification(good, **{REPLAY_ATTRIBUTE: "true"})
    replay = finished_execution(
        local_stack.client("stepfunctions"),
        local_stack.execution_arn(execution_name(good["notificationId"], message_id)),
        timeout=60,
    )

    # Then the replay claims the REJECTED record and delivers it, once
    assert replay.status == "SUCCEEDED"
    assert replay.summary.entered == SUCCESS_PATH
    record = _record(local_stack, good["notificationId"])
    assert record["status"] == "SUCCESS"
    assert record["executionArn"] == replay.description["executionArn"]
    assert "replayedAt" in record
    assert len(receiver.requests_for("/corrected")) == 1
