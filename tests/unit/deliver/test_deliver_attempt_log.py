"""Attempt log on the notification record (moto DynamoDB): one UpdateItem per attempt, never an error."""

from __future__ import annotations

import pytest

from lambdas.deliver import attempt_log
from lambdas.shared.models import Category, DeliveryOutcome

OTHER_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:notiflow-delivery:someone-else"


def outcome(**overrides) -> DeliveryOutcome:
    fields = {
        "success": False,
        "retryEligible": True,
        "category": Category.SERVER_ERROR,
        "statusCode": 503,
        "statusText": "Service Unavailable",
        "responseTime": 12,
        "errorDetails": "HTTP 503 Service Unavailable; Retry-After 30 s",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "retryAfterSeconds": 30,
        "responseBodyExcerpt": "down for maintenance",
    }
    return DeliveryOutcome(**{**fields, **overrides})


@pytest.fixture
def table_name(aws):
    return aws.table.name


def test_each_attempt_appends_an_entry_and_bumps_the_counter(aws, table_name, execution_arn):
    # Given a record claimed by this execution
    aws.claim("ntf-1")

    # When two attempts are logged
    first = attempt_log.record_attempt(table_name, "ntf-1", execution_arn, outcome(), fallback_attempt=1)
    second = attempt_log.record_attempt(
        table_name, "ntf-1", execution_arn, outcome(success=True, category=Category.SUCCESS, statusCode=200), 2
    )

    # Then the counter and the log grew together, in order
    record = aws.record("ntf-1")
    assert (first, second) == (1, 2)
    assert record["attempts"] == 2
    assert [entry["attempt"] for entry in record["attemptLog"]] == [1, 2]
    assert record["attemptLog"][0] == {
        "attempt": 1,
        "timestamp": "2026-01-02T03:04:05.678Z",
        "category": "SERVER_ERROR",
        "statusCode": 503,
        "responseTime": 12,
        "errorDetails": "HTTP 503 Service Unavailable; Retry-After 30 s",
        "retryAfterSeconds": 30,
        "responseBodyExcerpt": "down for maintenance",
        "executionId": execution_arn,
    }
    assert record["lastDeliveryAttempt"] == "2026-01-02T03:04:05.678Z"
    assert record["lastUpdatedAt"].endswith("Z")


def test_counter_continues_from_earlier_runs(aws, table_name, execution_arn):
    # Given a record that already saw 3 attempts (e.g. before a redrive)
    aws.claim("ntf-2", attempts=3)

    assert attempt_log.attempts_so_far(table_name, "ntf-2", execution_arn) == 3
    assert attempt_log.record_attempt(table_name, "ntf-2", execution_arn, outcome(), 4) == 4


def test_record_owned_by_another_run_is_left_alone(aws, table_name, execution_arn):
    # Given the record belongs to another execution
    aws.claim("ntf-3", execution_arn=OTHER_EXECUTION, attempts=5)

    # When this run logs an attempt
    attempts = attempt_log.record_attempt(table_name, "ntf-3", execution_arn, outcome(), fallback_attempt=2)

    # Then the fallback number is used and the record is untouched
    assert attempts == 2
    record = aws.record("ntf-3")
    assert record["attempts"] == 5
    assert "attemptLog" not in record
    assert attempt_log.attempts_so_far(table_name, "ntf-3", execution_arn) is None


def test_terminal_record_is_left_alone(aws, table_name, execution_arn):
    aws.claim("ntf-4", status="SUCCESS")

    assert attempt_log.record_attempt(table_name, "ntf-4", execution_arn, outcome(), fallback_attempt=1) == 1
    assert "attemptLog" not in aws.record("ntf-4")


def test_storage_failure_falls_back_instead_of_raising(aws, execution_arn):
    # Given a table that does not exist (DynamoDB answers ResourceNotFoundException)
    # When logging and reading Then neither raises
    assert attempt_log.record_attempt("no-such-table", "ntf-5", execution_arn, outcome(), fallback_attempt=7) == 7
    assert attempt_log.attempts_so_far("no-such-table", "ntf-5", execution_arn) is None


def test_entry_is_compact_and_bounded():
    entry = attempt_log.entry_for(
        outcome(statusCode=None, statusText=None, retryAfterSeconds=None, responseBodyExcerpt="y" * 5000),
        attempt=1,
        execution_id="exec",
    )

    assert "statusCode" not in entry
    assert "retryAfterSeconds" not in entry
    assert len(entry["responseBodyExcerpt"]) == 1024
