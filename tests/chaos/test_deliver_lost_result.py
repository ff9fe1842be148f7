"""A Deliver invocation whose result is lost (timed out, or crashed after the request went out) is retried.

The chaos run found notifications the receiver had answered 200 recorded FAILED with 0 attempts:
Deliver retried neither ``Sandbox.Timedout`` nor ``Runtime.ExitError``, so one lost result sent the
run down the unexpected-failure path, and only an operator's redrive (which sends again anyway)
could put it right. Retrying is safe: an attempt whose outcome was written (the timeout case) is
not sent again, because the next invocation finds it recorded; an attempt lost before its outcome
was written (the crash case) is sent once more with the same ``webhook-id``: at least once, the
duplicate counted by the fault report.

The notification ids are chosen so that, with the seed below and probability 0.5, the fault hits
the first Deliver invocation of that notification and not the second (decisions are a keyed hash
of seed, kind, function and notification), and no other function of its run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambdas.shared.constants import DeliveryMode
from notiflow.demo.receiver import WebhookReceiver
from notiflow.local.engine import faults
from notiflow.local.fixtures import finished_execution, stack_settings_for_tests, wait_for_item
from notiflow.local.stack import EmbeddedStack, StackSettings

SEED = 5


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    return stack_settings_for_tests(delivery_mode=DeliveryMode.STANDARD)


@pytest.fixture
def receiver(local_stack: EmbeddedStack) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=local_stack.signing_secret) as running:
        yield running


@pytest.mark.parametrize(
    ("spec", "notification_id", "requests_received"),
    [
        ("lambda-timeout=0.5", "lost-timeout-251", 1),  # the outcome was written: not sent again
        ("crash-after-send=0.5", "lost-crash-33", 2),  # lost before it was written: sent once more
    ],
)
def test_a_lost_deliver_result_is_retried_to_success(
    local_stack: EmbeddedStack, receiver: WebhookReceiver, spec: str, notification_id: str, requests_received: int
) -> None:
    injector = faults.configure(spec, seed=SEED)
    assert injector is not None
    try:
        local_stack.send_notification(
            {"notificationId": notification_id, "target": {"url": receiver.url(f"/{notification_id}")}, "payload": {}}
        )
        item = wait_for_item(
            local_stack.client("dynamodb"),
            local_stack.table_name,
            {"notificationId": {"S": notification_id}},
            lambda found: found.get("status", {}).get("S") not in (None, "PROCESSING"),
        )
        run = finished_execution(local_stack.client("stepfunctions"), local_stack.execution_arn(notification_id))
        hits = [hit for hit in injector.hits() if hit.notification == notification_id]
    finally:
        faults.clear()

    assert [(hit.function, hit.error) for hit in hits] == [
        ("notiflow-deliver", "Sandbox.Timedout" if "timeout" in spec else "Runtime.ExitError")
    ]
    assert item["status"]["S"] == "SUCCESS", item.get("failureReason")
    assert item["attempts"]["N"] == "1"
    assert run.status == "SUCCEEDED"
    assert run.summary.retries["Deliver"] == 1
    requests = receiver.requests_for(f"/{notification_id}")
    assert len(requests) == requests_received
    assert {request.headers["webhook-id"] for request in requests} == {notification_id}
