"""Deduplicate against moto's DynamoDB: one conditional write decides who owns a notification."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lambdas.deduplicate.claims import claim
from lambdas.deduplicate.handler import lambda_handler
from lambdas.shared.constants import RecordStatus
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.models import ClaimRequest, HttpMethod, Notification
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
