"""Per-host back-pressure end to end: a burst to one receiver never exceeds its host's limit, measured at the receiver.

Two real receivers on two loopback hosts (127.0.0.1 limited to 2 deliveries in flight by a per-host
setting, 127.0.0.2 under the deployment default of 10) get a burst each through SQS and ingest.
Each receiver measures the most requests it had in flight at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.ingest.starter import execution_name
from lambdas.shared.constants import DeliveryMode
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import finished_execution, stack_settings_for_tests
from notiflow.local.stack import EmbeddedStack, StackSettings

LIMITED_HOST = "127.0.0.1"
OTHER_HOST = "127.0.0.2"
LIMIT = 2
BURST = 6
ANSWER_SECONDS = 1.0
"""Long enough that the burst's deliveries to one host certainly overlap."""


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    # Busy waits on a time scale where the HostBusyError retrier's budget (about 100 minutes deployed) still
    # outlasts the burst: the runs that find the host full must wait, not give up.
    return stack_settings_for_tests(
        delivery_mode=DeliveryMode.STANDARD,
        host_limits=f"{LIMITED_HOST}={LIMIT}",
        poller_batch_size=10,
        time_scale=0.002,
        max_wait_seconds=0.2,
        # Enough engine workers (a run in an HTTP call holds one) for both bursts to be in flight at once.
        engine_workers=2 * BURST,
    )


@pytest.fixture(scope="module")
def receivers(local_stack: EmbeddedStack) -> Iterator[dict[str, WebhookReceiver]]:
    with (
        WebhookReceiver(secret=local_stack.signing_secret, host=LIMITED_HOST) as limited,
        WebhookReceiver(secret=local_stack.signing_secret, host=OTHER_HOST) as other,
    ):
        yield {LIMITED_HOST: limited, OTHER_HOST: other}


def _burst(stack: EmbeddedStack, receiver: WebhookReceiver, count: int) -> list[str]:
    names = []
    for _ in range(count):
        notification_id = f"burst-{uuid.uuid4().hex[:12]}"
        stack.send_notification(
            {"notificationId": notification_id, "target": {"url": receiver.url("/burst")}, "payload": {"n": 1}}
        )
        names.append(execution_name(notification_id))
    return names


def test_a_burst_to_one_host_never_exceeds_its_limit_and_other_hosts_are_not_held_back(
    local_stack: EmbeddedStack, receivers: dict[str, WebhookReceiver]
) -> None:
    # Given receivers that take a while to answer
    for receiver in receivers.values():
        receiver.script("/burst", Step(200, delay=ANSWER_SECONDS))

    # When a burst goes to each host at the same time
    names = {host: _burst(local_stack, receiver, BURST) for host, receiver in receivers.items()}
    sfn = local_stack.client("stepfunctions")
    results: dict[str, list[Any]] = {
        host: [finished_execution(sfn, local_stack.execution_arn(name), timeout=120) for name in host_names]
        for host, host_names in names.items()
    }

    # Then every notification was delivered once
    for host, host_results in results.items():
        assert [result.status for result in host_results] == ["SUCCEEDED"] * BURST, host
        assert len(receivers[host].requests_for("/burst")) == BURST
    # And the limited host never had more than its limit in flight, and it was used
    assert receivers[LIMITED_HOST].peak_in_flight(LIMITED_HOST) == LIMIT
    # And the runs that found it full waited in their HostBusyError retrier, spending no attempt
    busy = [result for result in results[LIMITED_HOST] if ("Deliver", "HostBusyError") in result.summary.errors]
    assert busy
    for result in busy:
        assert ("Deliver", "DeliveryRetryableError") not in result.summary.errors
    # And the other host, under the default limit, got more at once than the limited one could
    assert receivers[OTHER_HOST].peak_in_flight(OTHER_HOST) > LIMIT
