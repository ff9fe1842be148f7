"""The local stack's default target policy, end to end: loopback receivers yes, other private addresses no.

The production policy has its own module
(tests/e2e/test_target_policy_production.py): one embedded stack runs per process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infrastructure.spec import TargetPolicy
from lambdas.ingest.starter import execution_name
from lambdas.shared.constants import DeliveryMode, RecordStatus
from notiflow.demo.receiver import WebhookReceiver
from notiflow.local.fixtures import stack_settings_for_tests, wait_for_execution, wait_for_item
from notiflow.local.stack import EmbeddedStack
from notiflow.operate.runs import RunStore


def deliver_once(stack: EmbeddedStack, notification_id: str, url: str) -> dict:
    """Send one notification and return its record once the run has ended."""
    stack.send_notification({"notificationId": notification_id, "target": {"url": url}, "payload": {"n": 1}})
    wait_for_execution(stack.client("stepfunctions"), stack.execution_arn(execution_name(notification_id)), timeout=60)
    store = RunStore(stack.client("dynamodb"), stack.client("stepfunctions"), stack.table_name, stack.state_machine_arn)
    wait_for_item(
        stack.client("dynamodb"),
        stack.table_name,
        {"notificationId": {"S": notification_id}},
        lambda item: item["status"]["S"] != RecordStatus.PROCESSING,
        timeout=60,
    )
    record = store.record(notification_id)
    assert record is not None
    return record


@pytest.fixture(scope="module")
def local_stack_settings():
    return stack_settings_for_tests(target_policy=TargetPolicy.LOCAL, delivery_mode=DeliveryMode.STANDARD)


@pytest.fixture(scope="module")
def receiver(local_stack: EmbeddedStack) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=local_stack.signing_secret) as running:
        yield running


def test_the_local_policy_delivers_to_a_receiver_on_loopback_over_http(local_stack, receiver):
    # Given the local stack with its default target policy and a receiver on 127.0.0.1
    # When a notification targets the receiver over plain http
    record = deliver_once(local_stack, "policy-local-ok", receiver.url("/local"))
    # Then it is delivered
    assert record["status"] == RecordStatus.SUCCESS
    assert len(receiver.requests_for("/local")) == 1


def test_the_local_policy_still_refuses_every_other_private_address(local_stack):
    # Given the local stack with its default target policy
    # When a notification targets the unspecified address (which, if the policy failed, would only reach this host)
    record = deliver_once(local_stack, "policy-local-private", "http://0.0.0.0:9/hook")
    # Then the run refuses it without a delivery attempt
    assert record["status"] in (RecordStatus.REJECTED, RecordStatus.FAILED)
    assert "unspecified" in record.get("failureReason", "")
    assert not record.get("attemptLog")
