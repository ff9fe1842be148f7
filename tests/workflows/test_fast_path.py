"""The fast path end to end on the embedded stack: SQS, ingest's StartSyncExecution, the Express run, its hand-over.

Every notification goes on the intake queue; the stack's poller hands it to the real ingest
function, which runs the Express definition synchronously (StartSyncExecution) and acknowledges the
message only for a durable outcome. Deliveries go to a real scripted receiver on 127.0.0.1; the
records and both runs' histories are read back (the local engine keeps Express runs listable).
A message delivered twice is ingest invoked twice with the same SQS record, as a redelivery is.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.ingest.starter import build_start_request
from lambdas.shared.constants import REPLAY_ATTRIBUTE, STEP_INGEST, DeliveryMode
from lambdas.shared.dal.host_slots import HostSlots
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.engine import Invocation, invoke_function
from notiflow.local.fixtures import ExecutionResult, finished_execution, stack_settings_for_tests
from notiflow.local.sqs_poller import to_event_record
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.shared.waiting import wait_until
from workflows.definition import default_retry_policy, fast_path_attempts

FIRST_TRY = ["Validate", "Deduplicate", "IsClaimed", "Deliver", "RecordSuccess", "Delivered"]
HAND_OVER_TAIL = ["TransferClaim", "StartStandard", "HandedOver"]
_deserializer = TypeDeserializer()


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    # The deployed default mode; every notification goes through the queue, the poller and ingest.
    return stack_settings_for_tests(delivery_mode=DeliveryMode.FAST_PATH)


@pytest.fixture(scope="module")
def receiver(local_stack: EmbeddedStack) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=local_stack.signing_secret) as rx:
        yield rx


@dataclass(frozen=True)
class Runs:
    """One notification's fast-path run and, when it handed over, the Standard run after it."""

    notification_id: str
    express: ExecutionResult
    standard: ExecutionResult | None

    @property
    def outcome(self) -> str | None:
        return (self.express.output or {}).get("outcome")


def _notification(receiver: WebhookReceiver, path: str) -> dict[str, Any]:
    notification_id = f"fp-{path.strip('/')}-{uuid.uuid4().hex[:10]}"
    return {
        "notificationId": notification_id,
        "target": {"url": receiver.url(path)},
        "payload": {"orderId": 7, "notificationId": notification_id},
        "eventType": "order.paid",
        "correlationId": f"corr-{notification_id}",
    }


def _express_runs(stack: EmbeddedStack, name: str) -> list[dict[str, Any]]:
    """The Express runs named ``name``, oldest first (the local engine lists Express runs; AWS does not)."""
    executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.fast_path_state_machine_arn)
    return sorted((e for e in executions["executions"] if e["name"] == name), key=lambda e: e["startDate"])


def _ended_express_runs(stack: EmbeddedStack, name: str, count: int = 1) -> list[dict[str, Any]]:
    return wait_until(
        lambda: [e for e in _express_runs(stack, name) if e["status"] != "RUNNING"],
        lambda ended: len(ended) >= count,
        timeout=60,
        describe=f"{count} ended Express run(s) named {name}",
    )


def _runs(stack: EmbeddedStack, notification_id: str, express_arn: str) -> Runs:
    sfn = stack.client("stepfunctions")
    express = finished_execution(sfn, express_arn, timeout=60)
    standard = None
    if (express.output or {}).get("outcome") == "HANDED_OVER":
        standard = finished_execution(sfn, express.output["standardExecutionArn"], timeout=60)
    return Runs(notification_id, express, standard)


def _run(stack: EmbeddedStack, body: dict[str, Any], **attributes: str) -> Runs:
    """Send ``body`` to the intake queue and wait for the new Express run ingest starts (and its Standard run)."""
    record = {
        "messageId": "",
        "body": json.dumps(body),
        "messageAttributes": {name: {"stringValue": value} for name, value in attributes.items()},
    }
    earlier: set[str] = set()
    if attributes.get(REPLAY_ATTRIBUTE) == "true":
        # A replay's execution name derives from its SQS message id, known once it is sent (so it is new).
        record["messageId"] = stack.send_notification(body, **attributes)
        name = build_start_request(record, stack.queue_arn, stack.config.record_ttl_days).name
    else:
        name = build_start_request(record, stack.queue_arn, stack.config.record_ttl_days).name
        earlier = {run["executionArn"] for run in _express_runs(stack, name)}
        stack.send_notification(body, **attributes)
    new_runs = wait_until(
        lambda: [
            e for e in _express_runs(stack, name) if e["status"] != "RUNNING" and e["executionArn"] not in earlier
        ],
        timeout=60,
        describe=f"a new Express run named {name} to end",
    )
    return _runs(stack, body["notificationId"], new_runs[0]["executionArn"])


def _record(stack: EmbeddedStack, notification_id: str) -> dict[str, Any]:
    item = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"notificationId": {"S": notification_id}}, ConsistentRead=True
    )["Item"]
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def test_first_try_success_stays_in_the_fast_path(local_stack, receiver):
    # Given an endpoint answering 200
    receiver.script("/fp-ok", Step(200))
    notification = _notification(receiver, "/fp-ok")

    # When the fast path runs
    runs = _run(local_stack, notification)

    # Then the Express run delivered and recorded SUCCESS itself: no Standard run, no operator index
    assert runs.express.status == "SUCCEEDED"
    assert runs.outcome == "SUCCESS"
    assert runs.express.summary.entered == FIRST_TRY
    assert runs.standard is None
    assert len(receiver.requests_for("/fp-ok")) == 1
    record = _record(local_stack, runs.notification_id)
    assert record["status"] == "SUCCESS"
    assert record["executionArn"] == runs.express.description["executionArn"]
    assert record["attempts"] == 1
    for absent in ("opsStatus", "opsSince", "leaseExpiresAt", "successfulAttempt", "fastPathExecutionArn"):
        assert absent not in record


def test_a_retry_within_the_quick_retries_stays_in_the_fast_path(local_stack, receiver):
    receiver.script("/fp-blip", [Step(503), Step(200)])
    runs = _run(local_stack, _notification(receiver, "/fp-blip"))
    assert runs.outcome == "SUCCESS"
    assert runs.express.summary.retries["Deliver"] == 1
    assert runs.standard is None
    record = _record(local_stack, runs.notification_id)
    assert (record["status"], record["attempts"]) == ("SUCCESS", 2)


def test_retried_then_delivered_in_standard_continues_the_count_and_links_both_runs(local_stack, receiver):
    # Given an endpoint failing longer than the quick retries last
    fast_attempts = fast_path_attempts()
    receiver.script("/fp-flaky", [Step(503)] * fast_attempts + [Step(200)])
    notification = _notification(receiver, "/fp-flaky")

    # When the fast path runs
    runs = _run(local_stack, notification)

    # Then it handed over after its attempts, and the Standard run waited once and delivered
    assert runs.outcome == "HANDED_OVER"
    assert runs.express.summary.entered == [*FIRST_TRY[:4], "HandOverRetry", *HAND_OVER_TAIL]
    assert runs.express.summary.retries["Deliver"] == fast_attempts - 1
    assert runs.standard is not None
    assert runs.standard.status == "SUCCEEDED"
    assert runs.standard.summary.entered == ["Route", "WaitHandOver", "Deliver", "RecordSuccess"]
    # And the Standard run knows its Express run, and waited the schedule's next back-off at most
    standard_input = json.loads(runs.standard.description["input"])
    express_arn = runs.express.description["executionArn"]
    assert standard_input["fastPathExecutionArn"] == express_arn
    assert 1 <= standard_input["handOver"]["waitSeconds"] <= default_retry_policy().bound(fast_attempts)
    # And the record counts every attempt, links both runs and is the Standard run's now
    record = _record(local_stack, runs.notification_id)
    assert record["status"] == "SUCCESS"
    assert record["attempts"] == fast_attempts + 1
    assert record["executionArn"] == runs.standard.description["executionArn"]
    assert record["fastPathExecutionArn"] == express_arn
    assert [entry["executionId"] for entry in record["attemptLog"]] == [express_arn] * fast_attempts + [
        runs.standard.description["executionArn"]
    ]
    assert "opsStatus" not in record
    assert len(receiver.requests_for("/fp-flaky")) == fast_attempts + 1


def test_retries_exhausted_after_a_hand_over_keep_the_total_attempt_budget(local_stack, receiver):
    # Given an endpoint that never recovers
    receiver.script("/fp-down", Step(503))

    # When the fast path and then the Standard run give up
    runs = _run(local_stack, _notification(receiver, "/fp-down"))

    # Then the notification got exactly the schedule's 1 + 24 attempts across both runs
    assert runs.standard is not None
    assert runs.standard.status == "FAILED"
    assert runs.standard.description["error"] == "DeliveryRetryableError"
    total = 1 + default_retry_policy().max_attempts
    assert runs.standard.summary.retries["Deliver"] == total - fast_path_attempts() - 1
    assert len(receiver.requests_for("/fp-down")) == total
    record = _record(local_stack, runs.notification_id)
    assert (record["status"], record["errorName"], record["attempts"]) == ("FAILED", "DeliveryRetryableError", total)
    assert record["opsStatus"] == "FAILED"


def test_permanent_failure_is_recorded_by_the_standard_run_and_a_redrive_delivers(local_stack, receiver):
    # Given an endpoint answering 404
    receiver.script("/fp-gone", Step(404, body="no such hook"))

    # When the fast path runs
    runs = _run(local_stack, _notification(receiver, "/fp-gone"))

    # Then the Express run handed the failure over, and the Standard run recorded it and stopped at its gate
    assert runs.express.summary.entered[-6:] == [
        "DescribeFailure",
        "DescribeFailureOutcome",
        "HandOverFailure",
        *HAND_OVER_TAIL,
    ]
    assert runs.standard is not None
    assert runs.standard.status == "FAILED"
    assert runs.standard.description["error"] == "DeliveryPermanentError"
    assert runs.standard.summary.entered == ["Route", "RecordFailure", "FailureGate"]
    record = _record(local_stack, runs.notification_id)
    assert (record["status"], record["opsStatus"], record["attempts"]) == ("FAILED", "FAILED", 1)
    assert record["deliveryResult"]["statusCode"] == 404
    assert "404" in record["failureReason"]

    # When the endpoint is fixed and the Standard run redriven
    receiver.fix("/fp-gone", Step(200))
    sfn = local_stack.client("stepfunctions")
    sfn.redrive_execution(executionArn=runs.standard.description["executionArn"])
    redriven = finished_execution(sfn, runs.standard.description["executionArn"], timeout=60)

    # Then it delivered under the same run, as before the fast path existed
    assert redriven.status == "SUCCEEDED"
    assert redriven.summary.entered[3:] == [
        "FailureGate",
        "ReopenForRedrive",
        "ResumeAfterRedrive",
        "Deliver",
        "RecordSuccess",
    ]
    record = _record(local_stack, runs.notification_id)
    assert (record["status"], record["attempts"]) == ("SUCCESS", 2)
    assert "opsStatus" not in record


def test_retry_after_is_handed_over_and_waited_for_in_standard(local_stack, receiver):
    receiver.script("/fp-busy", [Step(429, headers={"Retry-After": "7"}), Step(200)])
    runs = _run(local_stack, _notification(receiver, "/fp-busy"))
    assert runs.express.summary.entered[-6:] == [
        "DescribeRetryAfter",
        "ReadRetryAfter",
        "HandOverRetryAfter",
        *HAND_OVER_TAIL,
    ]
    assert runs.standard is not None
    assert runs.standard.summary.entered == ["Route", "WaitRetryAfter", "Deliver", "RecordSuccess"]
    assert json.loads(runs.standard.description["input"])["retryAfter"] == {"waits": 1, "seconds": 7}
    assert _record(local_stack, runs.notification_id)["status"] == "SUCCESS"


def test_rejected_input_is_recorded_by_the_fast_path_and_fails_it_visibly(local_stack, receiver):
    notification = _notification(receiver, "/fp-never")
    notification["target"]["url"] = "ftp://files.example.com/drop"
    runs = _run(local_stack, notification)
    assert runs.express.status == "FAILED"
    assert runs.express.description["error"] == "InvalidNotificationError"
    assert runs.express.summary.entered == ["Validate", "DescribeRejection", "RecordRejected", "Rejected"]
    record = _record(local_stack, runs.notification_id)
    assert (record["status"], record["opsStatus"]) == ("REJECTED", "REJECTED")
    assert receiver.requests_for("/fp-never") == []


def test_a_replay_of_a_delivered_notification_is_a_duplicate_and_sends_nothing(local_stack, receiver):
    receiver.script("/fp-once", Step(200))
    notification = _notification(receiver, "/fp-once")
    assert _run(local_stack, notification).outcome == "SUCCESS"

    replay = _run(local_stack, notification, **{REPLAY_ATTRIBUTE: "true"})

    assert replay.outcome == "DUPLICATE"
    assert replay.express.summary.entered == ["Validate", "Deduplicate", "IsClaimed", "SkipDuplicate"]
    assert len(receiver.requests_for("/fp-once")) == 1


def test_a_busy_host_is_waited_for_briefly_then_handed_over_without_spending_attempts(local_stack, receiver):
    # Given the receiver's host at its limit of deliveries in flight (one slot, held by a long delivery)
    slots = HostSlots(local_stack.host_leases_table_name)
    limit = local_stack.config.host_max_in_flight
    holders = [f"long-delivery-{index}" for index in range(limit)]
    for holder in holders:
        assert slots.take("127.0.0.1", holder, limit=limit, lease_seconds=300)
    receiver.script("/fp-crowded", Step(200))
    notification = _notification(receiver, "/fp-crowded")
    sfn = local_stack.client("stepfunctions")
    standard_arn = local_stack.execution_arn(notification["notificationId"])

    def release_once_the_standard_run_waits() -> None:
        wait_until(
            lambda: _busy_retries(sfn, standard_arn),
            lambda count: count >= 1,
            timeout=60,
            describe=lambda count: f"a HostBusyError retry in {standard_arn} (seen {count})",
        )
        for holder in holders:
            slots.release("127.0.0.1", holder)

    # When the fast path runs (the host frees up once the Standard run is waiting for it)
    releaser = threading.Thread(target=release_once_the_standard_run_waits, daemon=True)
    releaser.start()
    runs = _run(local_stack, notification)
    releaser.join(timeout=60)

    # Then the Express run waited briefly, handed over, and the Standard run delivered once a slot was free
    assert runs.express.summary.entered[-4:] == ["HandOverHostBusy", *HAND_OVER_TAIL]
    assert {error for _, error in runs.express.summary.errors} == {"HostBusyError"}
    assert runs.standard is not None
    assert runs.standard.status == "SUCCEEDED"
    assert runs.standard.summary.entered == ["Route", "Deliver", "RecordSuccess"]
    # And no attempt was spent while the host was busy
    record = _record(local_stack, runs.notification_id)
    assert (record["status"], record["attempts"]) == ("SUCCESS", 1)
    assert len(receiver.requests_for("/fp-crowded")) == 1
    assert slots.holders("127.0.0.1") == {}


def _busy_retries(sfn: Any, execution_arn: str) -> int:
    try:
        events = sfn.get_execution_history(executionArn=execution_arn)["events"]
    except sfn.exceptions.ExecutionDoesNotExist:
        return 0
    return sum(
        1
        for event in events
        if event["type"] in ("TaskFailed", "LambdaFunctionFailed") and "HostBusyError" in json.dumps(event, default=str)
    )


def test_an_unexpected_delivery_error_is_handed_over_and_recorded_failed_without_a_blind_retry(
    local_stack, receiver, sfn_mock_config
):
    # Given the fast path's Deliver timing out (mocked: the attempt may or may not have reached the receiver)
    notification = _notification(receiver, "/fp-timeout")
    request = build_start_request({"messageId": "m-timeout", "body": json.dumps(notification)}, None, 90)
    sfn = local_stack.client("stepfunctions")

    # When the Express run meets it
    arn = sfn.start_execution(
        stateMachineArn=f"{local_stack.fast_path_state_machine_arn}#DeliverTimesOut",
        name=request.name,
        input=json.dumps(request.input),
    )["executionArn"]
    express = finished_execution(sfn, arn, timeout=60)
    standard = finished_execution(sfn, local_stack.execution_arn(request.name), timeout=60)

    # Then, once Deliver's retries of a lost result are spent, it handed over as unexpected, and the
    # Standard run recorded FAILED with the error's name, redrivable, without delivering again on its own
    assert express.output == {"outcome": "HANDED_OVER", "standardExecutionArn": standard.description["executionArn"]}
    assert express.summary.entered[-4:] == ["HandOverUnexpected", *HAND_OVER_TAIL]
    assert standard.summary.entered == ["Route", "RecordUnexpectedFailure", "FailureGate"]
    assert standard.status == "FAILED"
    assert standard.description["error"] == "DeliveryFailedError"
    record = _record(local_stack, notification["notificationId"])
    assert (record["status"], record["errorName"], record["opsStatus"]) == ("FAILED", "Sandbox.Timedout", "FAILED")
    assert record["fastPathExecutionArn"] == express.description["executionArn"]
    assert receiver.requests_for("/fp-timeout") == []


def _sqs_record(stack: EmbeddedStack, body: dict[str, Any], message_id: str) -> dict[str, Any]:
    """The Lambda SQS event record of one message, as the poller builds it (the same record each delivery)."""
    return to_event_record(
        {"MessageId": message_id, "ReceiptHandle": f"rh-{message_id}", "Body": json.dumps(body)},
        stack.queue_arn,
        stack.region,
    )


def _ingest(stack: EmbeddedStack, record: dict[str, Any]) -> Invocation:
    return invoke_function(stack.function_names[STEP_INGEST], {"Records": [record]}, region=stack.region)


def test_the_same_notification_sent_twice_runs_two_express_runs_under_one_name_and_delivers_once(local_stack, receiver):
    # Given a notification delivered on the fast path
    receiver.script("/fp-resent", Step(200))
    notification = _notification(receiver, "/fp-resent")
    first = _run(local_stack, notification)
    assert first.outcome == "SUCCESS"

    # When a producer sends it again (a second message, same notification id, same execution name)
    second = _run(local_stack, notification)

    # Then a second Express run ran under the same name, found the record delivered and sent nothing
    runs = _ended_express_runs(local_stack, notification["notificationId"], count=2)
    assert [run["executionArn"] for run in runs] == [
        first.express.description["executionArn"],
        second.express.description["executionArn"],
    ]
    assert second.outcome == "DUPLICATE"
    assert second.express.summary.entered == ["Validate", "Deduplicate", "IsClaimed", "SkipDuplicate"]
    assert len(receiver.requests_for("/fp-resent")) == 1
    assert (_record(local_stack, notification["notificationId"])["status"], second.standard) == ("SUCCESS", None)


def test_a_message_redelivered_while_its_first_run_delivers_stays_on_the_queue_then_is_a_duplicate(
    local_stack, receiver
):
    # Given a receiver that takes a moment to answer, and one SQS message for it
    receiver.script("/fp-redelivered", Step(200, delay=1.0))
    notification = _notification(receiver, "/fp-redelivered")
    record = _sqs_record(local_stack, notification, f"msg-{uuid.uuid4().hex[:12]}")
    first: list[Invocation] = []
    delivering = threading.Thread(target=lambda: first.append(_ingest(local_stack, record)), daemon=True)
    delivering.start()
    wait_until(
        lambda: receiver.requests_for("/fp-redelivered"),
        timeout=60,
        describe="the first run's delivery to reach the receiver",
    )

    # When SQS delivers the same message again while the first run is still delivering
    again = _ingest(local_stack, record)

    # Then the second Express run found the live claim (BUSY) and ingest left the message on the queue
    assert again.errored
    assert again.error_type == "BatchFailedError"
    delivering.join(timeout=60)
    assert first
    assert not first[0].errored
    assert first[0].json() == {"batchItemFailures": []}

    # And when SQS delivers it once more, after the first run's outcome is durable, it is a duplicate
    last = _ingest(local_stack, record)
    assert not last.errored
    assert last.json() == {"batchItemFailures": []}
    runs = [
        _runs(local_stack, notification["notificationId"], run["executionArn"])
        for run in _ended_express_runs(local_stack, notification["notificationId"], count=3)
    ]
    assert [run.outcome for run in runs] == ["SUCCESS", "BUSY", "DUPLICATE"]
    assert len(receiver.requests_for("/fp-redelivered")) == 1
    record_item = _record(local_stack, notification["notificationId"])
    assert (record_item["status"], record_item["attempts"]) == ("SUCCESS", 1)
    assert record_item["executionArn"] == runs[0].express.description["executionArn"]
