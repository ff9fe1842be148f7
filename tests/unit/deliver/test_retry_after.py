"""Retry-After: when the deliver step asks the workflow to wait as the receiver said, and for how long."""

from __future__ import annotations

import pytest

from lambdas.deliver.result import retry_after_wait
from lambdas.shared.models import Category, DeliveryOutcome


def outcome(status: int, retry_after: int | None, retryable: bool = True) -> DeliveryOutcome:
    return DeliveryOutcome(
        success=status < 300,
        retryEligible=retryable,
        category=Category.SUCCESS if status < 300 else Category.SERVER_ERROR,
        statusCode=status,
        responseTime=3,
        timestamp="2026-11-28T10:00:00.000Z",
        retryAfterSeconds=retry_after,
    )


@pytest.mark.parametrize(
    ("result", "waits", "expected"),
    [
        (outcome(429, 120), 0, 120),
        (outcome(503, 0), 0, 1),  # "retry now" still waits a second
        (outcome(503, 86_400), 0, 10_800),  # clamped to the schedule's longest wait
        (outcome(429, 30), 4, 30),
        (outcome(429, 30), 5, None),  # budget spent: the normal back-off takes over
        (outcome(503, None), 0, None),  # no header: the normal back-off
        (outcome(400, 30, retryable=False), 0, None),  # permanent answers never wait
        (outcome(200, 30), 0, None),
    ],
)
def test_retry_after_wait(result: DeliveryOutcome, waits: int, expected: int | None) -> None:
    assert retry_after_wait(result, waits, max_waits=5, max_seconds=10_800) == expected
