"""Deduplicate against moto's DynamoDB: one conditional write decides who owns a notification."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lambdas.deduplicate.claims import claim
from lambdas.deduplicate.handler import lambda_handler
from lambdas.shared.constants import RecordStatus
from lambdas.shared.contracts.deduplicate import ClaimLease, ClaimRequest
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.models import HttpMethod, Notification
from tests.conftest import TEST_TABLE
from tests.support import load_event

NOTIFICATION = Notification.model_validate(load_event("notification_valid.json"))


def request(execution: str = "arn:exec:A", replay: bool = False) -> ClaimRequest:
    return ClaimRequest(
        notificationId=NOTIFICATION.notificationId,
        executionId=execution,
        replay=replay,
        expiresAt=1_900_000_000,
        notification=NOTIFICATION,
    )


@pytest.fixture
def store(notifications_table: Any) -> NotificationStore:
    return NotificationStore(TEST_TABLE)


def set_status(table: Any, status: str) -> None:
    table.update_item(
        Key={"notificationId": NOTIFICATION.notificationId},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": status},
    )


def test_first_claim_writes_a_processing_record(store: NotificationStore, notifications_table: Any) -> None:
    # Given no record / When claimed / Then the record is PROCESSING under this execution
    result = claim(store, request(), now="2026-11-28T10:00:00.000Z")
    assert (result.claimed, result.duplicate) == (True, False)
    item = notifications_table.get_item(Key={"notificationId": NOTIFICATION.notificationId})["Item"]
    assert item["status"] == "PROCESSING"
    assert item["executionArn"] == "arn:exec:A"
    assert item["createdAt"] == item["claimedAt"] == "2026-11-28T10:00:00.000Z"
    assert item["targetHost"] == "hooks.example.com"
    assert item["eventType"] == "order.shipped"
    assert item["correlationId"] == "req-7f3a"
    assert item["expiresAt"] == 1_900_000_000
    # And the data-access module reads it back as the record model
    record = store.get(NOTIFICATION.notificationId)
    assert record is not None
    assert (record.status, record.targetMethod, record.expiresAt) == (
        RecordStatus.PROCESSING,
        HttpMethod.POST,
        1_900_000_000,
    )
    assert store.get("no-such-notification") is None


def test_same_execution_may_claim_again(store: NotificationStore, notifications_table: Any) -> None:
    # A retried Deduplicate task of the same run must not see itself as a duplicate.
    claim(store, request())
    assert claim(store, request()).claimed


def test_other_execution_sees_processing_as_duplicate(store: NotificationStore, notifications_table: Any) -> None:
    claim(store, request("arn:exec:A"))
    result = claim(store, request("arn:exec:B"))
    assert result.duplicate
    assert result.existingStatus == "PROCESSING"
    assert "arn:exec:A" in result.reason


@pytest.mark.parametrize("replay", [False, True])
def test_success_is_never_claimed_again(store: NotificationStore, notifications_table: Any, replay: bool) -> None:
    claim(store, request("arn:exec:A"))
    set_status(notifications_table, "SUCCESS")
    result = claim(store, request("arn:exec:B", replay=replay))
    assert result.duplicate
    assert result.existingStatus == "SUCCESS"


def test_failed_needs_a_deliberate_replay(store: NotificationStore, notifications_table: Any) -> None:
    # Given a notification that ended FAILED
    claim(store, request("arn:exec:A"))
    set_status(notifications_table, "FAILED")
    # When it is re-sent by accident / Then it is a duplicate
    accidental = claim(store, request("arn:exec:B"))
    assert accidental.duplicate
    assert "replay" in accidental.reason
    # When it is replayed on purpose / Then the replay owns it
    replayed = claim(store, request("arn:exec:C", replay=True), now="2026-11-28T11:00:00.000Z")
    assert replayed.claimed
    item = notifications_table.get_item(Key={"notificationId": NOTIFICATION.notificationId})["Item"]
    assert item["status"] == "PROCESSING"
    assert item["executionArn"] == "arn:exec:C"
    assert item["replayedAt"] == "2026-11-28T11:00:00.000Z"


def test_two_concurrent_claims_exactly_one_wins(
    store: NotificationStore, notifications_table: Any, atomic_dynamodb: None
) -> None:
    # Given many runs racing for one id / When they claim at the same moment / Then exactly one wins
    contenders = 8
    barrier = threading.Barrier(contenders)
    results: list[bool] = []
    lock = threading.Lock()

    def contend(index: int) -> None:
        barrier.wait()
        outcome = claim(store, request(f"arn:exec:{index}"))
        with lock:
            results.append(outcome.claimed)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * (contenders - 1) + [True]


def test_handler_returns_claim_shape(notifications_table: Any, lambda_context: Any) -> None:
    event = request().model_dump(mode="json")
    first = lambda_handler(event, lambda_context)
    assert first["claimed"] is True
    second = lambda_handler({**event, "executionId": "arn:exec:other"}, lambda_context)
    assert second["duplicate"] is True
    assert second["existingStatus"] == "PROCESSING"


STARTED = "2026-11-28T10:00:00.000Z"
STARTED_EPOCH = 1_795_860_000
STANDARD_ARN = "arn:aws:states:us-east-1:123456789012:execution:notiflow-delivery:" + NOTIFICATION.notificationId


def express(execution: str, lease_seconds: int = 180, started: str = STARTED, replay: bool = False) -> ClaimRequest:
    """A claim as the fast path's Deduplicate state sends it."""
    return request(execution, replay=replay).model_copy(
        update={
            "lease": ClaimLease(seconds=lease_seconds, startedAt=started),
            "standardExecutionArn": STANDARD_ARN,
        }
    )


def item(table: Any) -> dict[str, Any]:
    return table.get_item(Key={"notificationId": NOTIFICATION.notificationId}, ConsistentRead=True)["Item"]


def test_express_claim_holds_a_lease_and_stays_out_of_the_operator_index(
    store: NotificationStore, notifications_table: Any
) -> None:
    # When an Express run claims (started at STARTED, lease 180 s)
    result = claim(store, express("arn:express:A"), now="2026-11-28T10:00:01.000Z")

    # Then the claim expires 180 s after its run started, and no operator attribute is set
    assert result.claimed
    assert not result.takenOver
    record = item(notifications_table)
    assert record["leaseExpiresAt"] == STARTED_EPOCH + 180
    assert "opsStatus" not in record
    assert "opsSince" not in record


def test_standard_claim_never_expires_and_shows_in_the_operator_index(
    store: NotificationStore, notifications_table: Any
) -> None:
    claim(store, request("arn:exec:A"), now="2026-11-28T10:00:01.000Z")
    record = item(notifications_table)
    assert "leaseExpiresAt" not in record
    assert (record["opsStatus"], record["opsSince"]) == ("PROCESSING", "2026-11-28T10:00:01.000Z")


def test_a_live_express_lease_is_a_duplicate_until_it_expires_then_it_is_taken_over(
    store: NotificationStore, notifications_table: Any
) -> None:
    # Given an Express run that claimed and crashed after an attempt
    claim(store, express("arn:express:A"), now="2026-11-28T10:00:01.000Z")
    notifications_table.update_item(
        Key={"notificationId": NOTIFICATION.notificationId},
        UpdateExpression="SET attempts = :n",
        ExpressionAttributeValues={":n": 1},
    )

    # When another run claims while the lease holds / Then it is a duplicate of a live run
    early = claim(store, express("arn:express:B"), now="2026-11-28T10:02:59.000Z")
    assert early.duplicate
    assert early.busy, "only the holder's message guards it: this one must stay on the queue"
    assert not early.handedOver
    assert "arn:express:A" in early.reason

    # When the next delivery of the message claims after the lease ended
    late = claim(store, express("arn:express:C", started="2026-11-28T10:03:05.000Z"), now="2026-11-28T10:03:05.000Z")

    # Then it took the claim over, with the attempt count intact and a fresh lease
    assert late.claimed
    assert late.takenOver
    assert late.reason == "taken over from arn:express:A"
    record = item(notifications_table)
    assert record["executionArn"] == "arn:express:C"
    assert record["attempts"] == 1
    assert record["leaseExpiresAt"] == STARTED_EPOCH + 185 + 180


def test_a_standard_run_takes_over_an_expired_express_claim_and_its_claim_never_expires(
    store: NotificationStore, notifications_table: Any
) -> None:
    # Given an Express claim that expired (the deployment switched to standard mode meanwhile)
    claim(store, express("arn:express:A"), now="2026-11-28T10:00:01.000Z")

    # When a Standard run claims after the lease / Then it owns the notification for good
    assert claim(store, request("arn:exec:S"), now="2026-11-28T11:00:00.000Z").takenOver
    refused = claim(store, express("arn:express:Z"), now="2026-11-29T11:00:00.000Z")
    assert refused.duplicate
    assert not refused.busy, "a Standard claim is durable by itself: the Express run's message may go"
    record = item(notifications_table)
    assert record["executionArn"] == "arn:exec:S"
    assert "leaseExpiresAt" not in record
    assert record["opsStatus"] == "PROCESSING"


def test_a_handed_over_standard_run_takes_the_claim_of_the_express_run_that_started_it(
    store: NotificationStore, notifications_table: Any
) -> None:
    # Given an Express run that claimed, then handed over before it could transfer the claim
    claim(store, express("arn:express:A"), now="2026-11-28T10:00:01.000Z")

    # When a Standard run started by another Express run claims / Then that is a duplicate
    stranger = request("arn:exec:S").model_copy(update={"handedOverBy": "arn:express:B"})
    assert claim(store, stranger, now="2026-11-28T10:00:02.000Z").duplicate

    # When the Standard run started by the claiming Express run claims / Then it takes the claim at once
    started_by_a = request(STANDARD_ARN).model_copy(update={"handedOverBy": "arn:express:A"})
    assert claim(store, started_by_a, now="2026-11-28T10:00:02.000Z").claimed
    assert item(notifications_table)["executionArn"] == STANDARD_ARN
    # And an Express run finding a Standard claim is not busy (the Standard run is durable by itself)
    later = claim(store, express("arn:express:C"), now="2026-11-28T10:00:03.000Z")
    assert later.duplicate
    assert not later.busy


def test_a_record_handed_over_to_the_standard_run_is_reported_as_such(
    store: NotificationStore, notifications_table: Any
) -> None:
    # Given a record the fast path transferred to the Standard run with the notification's name
    claim(store, express("arn:express:A"), now="2026-11-28T10:00:01.000Z")
    notifications_table.update_item(
        Key={"notificationId": NOTIFICATION.notificationId},
        UpdateExpression="SET executionArn = :standard REMOVE leaseExpiresAt",
        ExpressionAttributeValues={":standard": STANDARD_ARN},
    )

    # When the message is delivered again to a new Express run
    result = claim(store, express("arn:express:B"), now="2026-11-28T10:30:00.000Z")

    # Then it is told the hand-over exists (so it makes sure the Standard run was started)
    assert result.duplicate
    assert result.handedOver
    assert not result.busy
    assert result.existingExecutionArn == STANDARD_ARN


def test_a_replay_starts_afresh_without_the_previous_runs_markers(
    store: NotificationStore, notifications_table: Any
) -> None:
    # Given a FAILED record with an accepted-attempt marker and a fast-path link left behind
    claim(store, express("arn:express:A"), now="2026-11-28T10:00:01.000Z")
    notifications_table.update_item(
        Key={"notificationId": NOTIFICATION.notificationId},
        UpdateExpression="SET #s = :failed, successfulAttempt = :m, fastPathExecutionArn = :a, opsStatus = :failed",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":failed": "FAILED",
            ":m": {"attempt": 1, "timestamp": STARTED, "category": "SUCCESS", "responseTime": 3},
            ":a": "arn:express:A",
        },
    )

    # When it is replayed through the fast path
    assert claim(store, express("arn:express:R", replay=True), now="2026-11-29T10:00:00.000Z").claimed

    # Then the replay's record carries none of them
    record = item(notifications_table)
    assert record["executionArn"] == "arn:express:R"
    for stale in ("successfulAttempt", "fastPathExecutionArn", "opsStatus", "opsSince"):
        assert stale not in record


def test_express_claims_race_exactly_one_wins_even_after_a_lease_expired(
    store: NotificationStore, notifications_table: Any, atomic_dynamodb: None
) -> None:
    # Given an expired Express claim and many runs racing to take it over at the same moment
    claim(store, express("arn:express:crashed"), now="2026-11-28T10:00:01.000Z")
    contenders = 6
    barrier = threading.Barrier(contenders)
    results: list[bool] = []
    lock = threading.Lock()

    def contend(index: int) -> None:
        barrier.wait()
        later = "2026-11-28T11:00:00.000Z"
        outcome = claim(store, express(f"arn:express:{index}", started=later), now=later)
        with lock:
            results.append(outcome.claimed)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then exactly one took it over: the winner's fresh lease refuses the others
    assert sorted(results) == [False] * (contenders - 1) + [True]
