"""Attempt log on the notification record (moto DynamoDB): one UpdateItem per attempt, never an error, bounded."""

from __future__ import annotations

import threading

import boto3
import pytest

from lambdas.deliver import attempt_log
from lambdas.shared.dal.codec import item_size_bytes
from lambdas.shared.dal.notifications import AttemptCount, NotificationStore
from lambdas.shared.models import Category, DeliveryOutcome
from lambdas.shared.record import ATTEMPT_LOG_HEAD, ATTEMPT_LOG_MAX, ATTEMPT_TEXT_LIMIT, NotificationRecord

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
def store(aws):
    return NotificationStore(aws.table.name)


def test_each_attempt_appends_an_entry_and_bumps_the_counter(aws, store, execution_arn):
    # Given a record claimed by this execution
    aws.claim("ntf-1")

    # When two attempts are logged
    first = attempt_log.record_attempt(store, "ntf-1", execution_arn, outcome(), fallback_attempt=1)
    second = attempt_log.record_attempt(
        store, "ntf-1", execution_arn, outcome(success=True, category=Category.SUCCESS, statusCode=200), 2
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


def test_counter_continues_from_earlier_runs(aws, store, execution_arn):
    # Given a record that already saw 3 attempts (e.g. before a redrive)
    aws.claim("ntf-2", attempts=3)

    assert attempt_log.attempts_so_far(store, "ntf-2", execution_arn).attempts == 3
    assert attempt_log.record_attempt(store, "ntf-2", execution_arn, outcome(), 4) == 4


def test_record_owned_by_another_run_is_left_alone(aws, store, execution_arn):
    # Given the record belongs to another execution
    aws.claim("ntf-3", execution_arn=OTHER_EXECUTION, attempts=5)

    # When this run logs an attempt
    attempts = attempt_log.record_attempt(store, "ntf-3", execution_arn, outcome(), fallback_attempt=2)

    # Then the fallback number is used and the record is untouched
    assert attempts == 2
    record = aws.record("ntf-3")
    assert record["attempts"] == 5
    assert "attemptLog" not in record
    assert attempt_log.attempts_so_far(store, "ntf-3", execution_arn) is None


def test_terminal_record_is_left_alone(aws, store, execution_arn):
    aws.claim("ntf-4", status="SUCCESS")

    assert attempt_log.record_attempt(store, "ntf-4", execution_arn, outcome(), fallback_attempt=1) == 1
    assert "attemptLog" not in aws.record("ntf-4")


def test_storage_failure_falls_back_instead_of_raising(aws, execution_arn):
    # Given a table that does not exist (DynamoDB answers ResourceNotFoundException)
    # When logging and reading Then neither raises
    missing = NotificationStore("no-such-table")
    assert attempt_log.record_attempt(missing, "ntf-5", execution_arn, outcome(), fallback_attempt=7) == 7
    assert attempt_log.attempts_so_far(missing, "ntf-5", execution_arn) is None


def test_entry_is_compact_and_bounded():
    entry = attempt_log.entry_for(
        outcome(statusCode=None, statusText=None, retryAfterSeconds=None, responseBodyExcerpt="y" * 5000),
        attempt=1,
        execution_id="exec",
    )

    typed = NotificationRecord.typed_values(attemptLog=[entry])["attemptLog"]["L"][0]["M"]
    assert "statusCode" not in typed
    assert "retryAfterSeconds" not in typed
    assert len(entry.responseBodyExcerpt) == ATTEMPT_TEXT_LIMIT


def worst_case_outcome(attempt: int) -> DeliveryOutcome:
    """The largest entry an attempt can leave: both texts at their limit, every field set."""
    return outcome(
        errorDetails="e" * 5000,
        responseBodyExcerpt="b" * 5000,
        timestamp=f"2026-01-02T03:{attempt // 60 % 60:02d}:{attempt % 60:02d}.000Z",
    )


def test_log_keeps_the_first_and_latest_attempts_and_the_item_stays_small(aws, store, execution_arn):
    # Given a notification redriven again and again: 500 attempts, each with the largest entry possible
    aws.claim("ntf-many")
    known = None
    for number in range(1, 501):
        known = attempt_log.attempts_so_far(store, "ntf-many", execution_arn)
        assert (
            attempt_log.record_attempt(
                store, "ntf-many", execution_arn, worst_case_outcome(number), number, known=known
            )
            == number
        )

    # Then the log holds the first 5 and the latest 20 attempts, and counts the 475 dropped
    record = NotificationRecord.from_item(aws.record("ntf-many"))
    kept = [entry.attempt for entry in record.attemptLog]
    assert kept == [*range(1, ATTEMPT_LOG_HEAD + 1), *range(501 - (ATTEMPT_LOG_MAX - ATTEMPT_LOG_HEAD), 501)]
    assert (record.attempts, record.attemptLogDropped) == (500, 500 - ATTEMPT_LOG_MAX)

    # And the item is far below DynamoDB's 400 KB limit, no bigger than after the first 25 attempts
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName=aws.table.name, Key={"notificationId": {"S": "ntf-many"}}
    )["Item"]
    size = item_size_bytes(item)
    print(f"attempt log item size after 500 attempts: {size} bytes")
    assert size < 64 * 1024


def test_a_stale_size_guess_is_corrected_not_overflowed(aws, store, execution_arn):
    # Given a full log, and a writer that believes it is still short (its counter read went stale)
    aws.claim("ntf-stale")
    for number in range(1, ATTEMPT_LOG_MAX + 1):
        attempt_log.record_attempt(store, "ntf-stale", execution_arn, outcome(), number)

    # When it writes with no knowledge of the size, and another with a wrong one
    attempt_log.record_attempt(store, "ntf-stale", execution_arn, outcome(), 26, known=None)
    attempt_log.record_attempt(
        store, "ntf-stale", execution_arn, outcome(), 27, known=AttemptCount(attempts=3, dropped=0)
    )

    # Then the refused conditional write was retried with the real size: the bound holds, nothing was lost
    record = NotificationRecord.from_item(aws.record("ntf-stale"))
    assert len(record.attemptLog) == ATTEMPT_LOG_MAX
    assert (record.attempts, record.attemptLogDropped) == (27, 2)
    assert [entry.attempt for entry in record.attemptLog][-2:] == [26, 27]


def test_concurrent_writers_never_push_the_log_past_its_bound(aws, store, execution_arn, atomic_dynamodb):
    # Given a log one short of full and eight writers at once (a retried task racing the original, many times)
    aws.claim("ntf-race")
    for number in range(1, ATTEMPT_LOG_MAX):
        attempt_log.record_attempt(store, "ntf-race", execution_arn, outcome(), number)
    barrier = threading.Barrier(8)

    def write(number: int) -> None:
        known = attempt_log.attempts_so_far(store, "ntf-race", execution_arn)
        barrier.wait()
        attempt_log.record_attempt(store, "ntf-race", execution_arn, outcome(), number, known=known)

    threads = [threading.Thread(target=write, args=(ATTEMPT_LOG_MAX + i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then every attempt was counted, the log is exactly at its bound, and the head is intact
    record = NotificationRecord.from_item(aws.record("ntf-race"))
    assert record.attempts == ATTEMPT_LOG_MAX - 1 + 8
    assert len(record.attemptLog) == ATTEMPT_LOG_MAX
    assert record.attemptLogDropped == record.attempts - ATTEMPT_LOG_MAX
    assert [entry.attempt for entry in record.attemptLog][:ATTEMPT_LOG_HEAD] == list(range(1, ATTEMPT_LOG_HEAD + 1))
