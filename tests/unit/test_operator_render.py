"""How operator output writes times, durations, delivery results and run causes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from notiflow.operate.render import cause_fields, delivery_fields, fmt_clock, fmt_duration, fmt_utc


def test_times_are_utc_with_a_z_whatever_they_come_as() -> None:
    paris = timezone(timedelta(hours=1))
    assert fmt_utc(datetime(2026, 11, 30, 11, 4, 5, 123456, tzinfo=paris)) == "2026-11-30 10:04:05Z"
    assert fmt_utc("2026-11-30T10:04:05.123Z", ms=True) == "2026-11-30 10:04:05.123Z"
    assert fmt_clock(datetime(2026, 11, 30, 10, 4, 5, 7000, tzinfo=UTC)) == "10:04:05.007Z"
    assert fmt_utc(None) is None
    assert fmt_utc("not a time") is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0123, "12 ms"), (15.04, "15.0 s"), (245, "4 min 5 s"), (7380, "2 h 3 min"), (3 * 86400 + 7200, "3 d 2 h")],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_a_failure_gate_cause_becomes_labelled_fields() -> None:
    # Given the cause a run fails with in the FailureGate: the last outcome as JSON inside the Lambda error
    outcome = {
        "success": False,
        "retryEligible": False,
        "category": "CLIENT_ERROR",
        "statusCode": 404,
        "statusText": "Not Found",
        "responseTime": 8,
        "errorDetails": "HTTP 404 Not Found",
        "timestamp": "2026-11-30T10:04:05.123Z",
    }
    cause = json.dumps({"errorMessage": json.dumps(outcome), "errorType": "DeliveryPermanentError"})
    # When it is rendered / Then each part is a labelled field, with no JSON left
    fields = dict(cause_fields("DeliveryPermanentError", cause))
    assert fields == {
        "error": "DeliveryPermanentError",
        "outcome": "not delivered",
        "category": "CLIENT_ERROR",
        "HTTP status": "404 Not Found",
        "response time": "8 ms",
        "retry eligible": "no",
        "details": "HTTP 404 Not Found",
        "attempted at": "2026-11-30 10:04:05.123Z",
    }
    assert dict(delivery_fields(outcome)) == {k: v for k, v in fields.items() if k != "error"}


def test_other_causes_stay_text_on_one_line() -> None:
    assert cause_fields("States.Timeout", "the state\ntimed out") == [
        ("error", "States.Timeout"),
        ("cause", "the state timed out"),
    ]
    lambda_error = json.dumps(
        {"errorMessage": "DynamoDB ThrottlingException on update_item", "errorType": "StorageError"}
    )
    assert cause_fields("StorageError", lambda_error) == [
        ("error", "StorageError"),
        ("cause", "DynamoDB ThrottlingException on update_item"),
    ]
