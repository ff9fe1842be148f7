"""End-to-end fixtures: the module's embedded stack (from the notiflow.local.fixtures plugin) and a receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambdas.shared.constants import DeliveryMode
from notiflow.demo.receiver import WebhookReceiver
from notiflow.local.fixtures import stack_settings_for_tests
from notiflow.local.stack import EmbeddedStack, StackSettings


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    """Standard mode: the operator commands under test read one Standard run per notification."""
    return stack_settings_for_tests(delivery_mode=DeliveryMode.STANDARD)


@pytest.fixture(scope="module")
def stack(local_stack: EmbeddedStack) -> EmbeddedStack:
    return local_stack


@pytest.fixture(scope="module")
def receiver(local_stack: EmbeddedStack) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=local_stack.signing_secret) as running:
        yield running
