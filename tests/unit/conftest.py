"""Unit-test fixtures: no AWS client or secret built under one test's mock survives into the next."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto.dynamodb.responses import DynamoHandler

from lambdas.deliver import delivery
from lambdas.shared import aws


@pytest.fixture(autouse=True)
def fresh_aws_clients() -> Iterator[None]:
    aws.clear()
    delivery.secret_value.cache_clear()
    yield
    aws.clear()
    delivery.secret_value.cache_clear()


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give moto DynamoDB's guarantee that each request applies to an item atomically.

    moto in-process copies and mutates items without a lock, so threads racing on one item lose
    updates or crash inside moto; tests of concurrent writers serialise its request handling.
    """
    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        with lock:
            return original(self)

    monkeypatch.setattr(DynamoHandler, "call_action", call_action)
