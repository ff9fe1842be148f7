"""Unit-test fixtures: no AWS client or secret built under one test's mock survives into the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambdas.deliver import delivery
from lambdas.shared import aws


@pytest.fixture(autouse=True)
def fresh_aws_clients() -> Iterator[None]:
    aws.clear()
    delivery.secret_value.cache_clear()
    yield
    aws.clear()
    delivery.secret_value.cache_clear()
