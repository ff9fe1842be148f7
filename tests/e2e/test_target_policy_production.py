"""``notiflow local up --target-policy production``: the local stack refuses what AWS would refuse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infrastructure.spec import TargetPolicy
from lambdas.shared.constants import DeliveryMode, RecordStatus
from notiflow.demo.receiver import WebhookReceiver
from notiflow.local.fixtures import stack_settings_for_tests
from tests.e2e.test_target_policy import deliver_once


@pytest.fixture(scope="module")
def local_stack_settings():
    return stack_settings_for_tests(target_policy=TargetPolicy.PRODUCTION, delivery_mode=DeliveryMode.STANDARD)


@pytest.fixture(scope="module")
def receiver(local_stack) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=local_stack.signing_secret) as running:
        yield running


def test_the_production_policy_refuses_http_and_loopback_targets(local_stack, receiver):
    # Given a local stack running the deployed target policy and a receiver on 127.0.0.1
    # When notifications target the receiver over http, and over https on its loopback address
    plain = deliver_once(local_stack, "policy-production-http", receiver.url("/prod"))
    loopback = deliver_once(local_stack, "policy-production-https", receiver.url("/prod").replace("http:", "https:"))
    # Then both are rejected as AWS would reject them, and nothing reached the receiver
    assert plain["status"] == RecordStatus.REJECTED
    assert "scheme 'http' is not allowed" in plain["failureReason"]
    assert loopback["status"] == RecordStatus.REJECTED
    assert "loopback" in loopback["failureReason"]
    assert receiver.requests_for("/prod") == []
