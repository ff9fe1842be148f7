"""The shared wait-until and JSON helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from notiflow.shared.jsonutil import plain, to_json
from notiflow.shared.waiting import WaitTimeoutError, wait_until


def test_wait_until_returns_the_first_value_that_satisfies_the_condition():
    values = iter([0, 1, 2, 3])
    assert wait_until(lambda: next(values), lambda v: v >= 2, timeout=5, interval=0) == 2


def test_wait_until_gives_up_at_the_deadline_naming_what_it_waited_for():
    with pytest.raises(WaitTimeoutError, match="the answer; last value: 41"):
        wait_until(lambda: 41, lambda v: v == 42, timeout=0.05, interval=0.01, describe="the answer")


def test_json_helpers_turn_boto3_values_into_json():
    item = {"attempts": Decimal("3"), "ratio": Decimal("0.5"), "at": datetime(2026, 1, 2, tzinfo=UTC), "b": b"x"}
    assert plain(item) == {"attempts": 3, "ratio": 0.5, "at": "2026-01-02T00:00:00+00:00", "b": "x"}
    assert json.loads(to_json(item))["attempts"] == 3
