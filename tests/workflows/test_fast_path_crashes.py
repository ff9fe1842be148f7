"""A crash between any two states of the fast path: the notification still ends exactly once, delivered once.

For each pair of consecutive states on the fast path's success path and its hand-over path, the
Express run is lost right after the first state of the pair (the ``faults`` crash-after-state fault,
exactly once, for that notification): the run ends FAILED, ingest does not acknowledge the message,
SQS delivers it again after the visibility timeout, and a new Express run settles it (taking over the
crashed run's claim once its lease has expired, or finding the record terminal or handed over).

The notification must reach exactly one terminal status and the receiver exactly one successful
delivery. A second send would be allowed only where the crash came after the HTTP request and
before anything recorded it; between states that never happens: Deliver writes the accepted attempt
to the record's attempt log before its state completes, so the run that takes over after a crash
right after ``Deliver`` finds it and sends nothing (a crash inside the invocation, after the request
and before that write, is the ``crash-after-send`` fault's case, not this sweep's). Every case here
reaches a terminal status; had the redeliveries run out, the record would stay PROCESSING with
``opsStatus`` set (or the message in the DLQ), which is what keeps such a notification visible to
operators.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.shared.constants import DeliveryMode, RecordStatus
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.engine import faults
from notiflow.local.fixtures import stack_settings_for_tests
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.shared.waiting import wait_until
from workflows.definition import fast_path_attempts

SUCCESS_PATH = ["Validate", "Deduplicate", "IsClaimed", "Deliver", "RecordSuccess", "Delivered"]
HAND_OVER_PATH = [
    "Validate",
    "Deduplicate",
    "IsClaimed",
    "Deliver",
    "HandOverRetry",
    "TransferClaim",
    "StartStandard",
    "HandedOver",
]
LEASE_SECONDS = 3
"""An Express claim's lease here: a crashed run's claim can be taken over seconds later."""
_deserializer = TypeDeserializer()

CASES = [("success", state) for state in SUCCESS_PATH[:-1]] + [("hand-over", state) for state in HAND_OVER_PATH[:-1]]


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    return stack_settings_for_tests(
        delivery_mode=DeliveryMode.FAST_PATH, fast_path_lease_seconds=LEASE_SECONDS, max_receive_count=10
    )


@pytest.fixture(scope="module")
def receiver(local_stack: EmbeddedStack) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=local_stack.signing_secret) as rx:
        yield rx


@pytest.fixture
def injector() -> Iterator[Any]:
    yield lambda spec: faults.configure(spec)
    faults.clear()


def _record(stack: EmbeddedStack, notification_id: str) -> dict[str, Any] | None:
    item = (
        stack.client("dynamodb")
        .get_item(TableName=stack.table_name, Key={"notificationId": {"S": notification_id}}, ConsistentRead=True)
        .get("Item")
    )
    return None if item is None else {key: _deserializer.deserialize(value) for key, value in item.items()}


def _queue_empty(stack: EmbeddedStack) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=names)
    return all(attributes["Attributes"][name] == "0" for name in names)


def _express_runs(stack: EmbeddedStack, name: str) -> list[dict[str, Any]]:
    sfn = stack.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=stack.fast_path_state_machine_arn)["executions"]
    runs = sorted((e for e in executions if e["name"] == name), key=lambda e: e["startDate"])
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in runs]


@pytest.mark.parametrize(("path", "state"), CASES, ids=[f"{path}-after-{state}" for path, state in CASES])
def test_a_crash_after_a_state_still_ends_the_notification_exactly_once(local_stack, receiver, injector, path, state):
    # Given a notification whose first Express run is lost right after `state`
    notification_id = f"crash-{path}-{state.lower()}-{uuid.uuid4().hex[:6]}"
    hook = f"/{notification_id}"
    failures = [Step(503)] * fast_path_attempts() if path == "hand-over" else []
    receiver.script(hook, [*failures, Step(200)])
    armed = injector(f"crash-after-state={state}@{notification_id}")

    # When it goes through the queue and ingest
    local_stack.send_notification(
        {"notificationId": notification_id, "target": {"url": receiver.url(hook)}, "payload": {"n": 1}}
    )

    # Then the crash happened once, failing that Express run and leaving its message for a redelivery
    record = wait_until(
        lambda: _record(local_stack, notification_id),
        lambda found: found is not None and "status" in found and RecordStatus(found["status"]).terminal,
        timeout=120,
        describe=f"{notification_id} to reach a terminal status",
    )
    wait_until(lambda: _queue_empty(local_stack), timeout=120, describe="the message to be acknowledged")
    (hit,) = armed.hits(faults.CRASH_AFTER_STATE)
    assert (hit.state, hit.notification, hit.outcome) == (state, notification_id, "failed")
    runs = _express_runs(local_stack, notification_id)
    assert (runs[0]["status"], runs[0]["error"]) == ("FAILED", faults.CRASH_AFTER_STATE_ERROR)
    assert len(runs) >= 2

    # And the notification ended exactly once, delivered
    assert record["status"] == RecordStatus.SUCCESS
    delivered = [request for request in receiver.requests_for(hook) if request.status == 200]
    assert len(delivered) == 1
    assert delivered[0].headers["webhook-id"] == notification_id
    assert json.loads(delivered[0].body) == {"n": 1}
    assert record["attempts"] == len(receiver.requests_for(hook))
