"""Every message of the bad-input corpus, sent through SQS to the embedded stack, ends as a named rejection.

The stack runs the production target policy (https only, no private or loopback address), as
deployed, so every SSRF spelling in the corpus must be refused at validation. For each message the
test reads back what an operator would: the record (REJECTED, ``InvalidNotificationError``, a
``failureReason`` containing the case's expected fragment) and the run (FAILED with the same
error). Nothing may be left on the queue or dead-lettered, and there is exactly one record per
message.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.corpus import CorpusCase, load_corpus
from infrastructure.spec import TargetPolicy
from lambdas.shared.errors import InvalidNotificationError
from notiflow.local.fixtures import stack_settings_for_tests, wait_for_execution
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.shared.waiting import wait_until

CASES = load_corpus()
REJECTION = InvalidNotificationError.__name__


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    return stack_settings_for_tests(target_policy=TargetPolicy.PRODUCTION)


def _scan(stack: EmbeddedStack) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    paginator = stack.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=stack.table_name, ConsistentRead=True):
        for item in page["Items"]:
            items[item["notificationId"]["S"]] = item
    return items


@pytest.fixture(scope="module")
def sent(local_stack: EmbeddedStack) -> dict[str, str]:
    """Send the whole corpus; returns each case's record key, once every record is terminal."""
    keys = {case.name: case.record_key(local_stack.send_notification(case.body)) for case in CASES}
    wait_until(
        lambda: _scan(local_stack),
        lambda items: all(items.get(key, {}).get("status", {}).get("S") == "REJECTED" for key in keys.values()),
        timeout=90,
        interval=0.2,
        describe=lambda items: (
            "every corpus record to be REJECTED; not yet: "
            + ", ".join(
                f"{name} ({(items or {}).get(key, {}).get('status', {}).get('S', 'no record')})"
                for name, key in sorted(keys.items())
                if (items or {}).get(key, {}).get("status", {}).get("S") != "REJECTED"
            )[:2000]
        ),
    )
    return keys


def test_corpus_is_large_and_unambiguous() -> None:
    assert len(CASES) >= 40
    keys = [case.record for case in CASES if case.record is not None]
    assert len(keys) == len(set(keys)), "two cases would share a record"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_message_is_rejected_with_its_reason(
    local_stack: EmbeddedStack, sent: dict[str, str], case: CorpusCase
) -> None:
    table = local_stack.client("dynamodb")
    item = table.get_item(
        TableName=local_stack.table_name, Key={"notificationId": {"S": sent[case.name]}}, ConsistentRead=True
    )["Item"]
    assert item["status"]["S"] == "REJECTED"
    assert item["errorName"]["S"] == REJECTION
    assert case.expect in item["failureReason"]["S"], item["failureReason"]["S"]
    assert "attempts" not in item, "a rejected notification was delivered"
    assert "deliveryResult" not in item
    run = wait_for_execution(local_stack.client("stepfunctions"), item["executionArn"]["S"], timeout=30)
    assert run["status"] == "FAILED"
    assert run["error"] == REJECTION
    assert case.expect in run["cause"]


def test_nothing_left_on_the_queues_and_one_record_per_message(
    local_stack: EmbeddedStack, sent: dict[str, str]
) -> None:
    sqs = local_stack.client("sqs")

    def depth(url: str) -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    wait_until(lambda: depth(local_stack.queue_url), lambda n: n == 0, timeout=30, describe="the intake queue to drain")
    assert depth(local_stack.dlq_url) == 0
    assert sorted(_scan(local_stack)) == sorted(sent.values())
