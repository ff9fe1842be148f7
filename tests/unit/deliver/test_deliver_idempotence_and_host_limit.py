"""The deliver step's two guards: an accepted attempt is never sent again, and a busy host is never sent to."""

from __future__ import annotations

import boto3
import pytest

from lambdas.deliver import host_limit
from lambdas.deliver.handler import lambda_handler
from lambdas.shared.constants import HOST_LEASES_PARTITION_KEY
from lambdas.shared.dal.host_slots import HostSlots, holder_id
from lambdas.shared.errors import DeliveryRetryableError, HostBusyError, StorageError
from lambdas.shared.observability import metrics
from notiflow.demo.receiver import Step

pytestmark = pytest.mark.filterwarnings("ignore:Dimension 'category' has already been added")

LEASES = "notiflow-unit-host-leases"
TAKEN_OVER_BY = "arn:aws:states:us-east-1:123456789012:express:notiflow-fast-path:ntf-order-1001:second"


@pytest.fixture
def leases(aws, configure) -> HostSlots:
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=LEASES,
        KeySchema=[{"AttributeName": HOST_LEASES_PARTITION_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": HOST_LEASES_PARTITION_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    configure(host_leases_table_name=LEASES, host_max_in_flight="1")
    return HostSlots(LEASES)


def test_an_accepted_attempt_is_recorded_not_sent_again(aws, receiver, load_event, lambda_context):
    # Given a run whose first invocation got a 200, but whose result never reached the workflow
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", [Step(200, body='{"ok":1}'), Step(500)])
    first = lambda_handler(event, lambda_context)
    assert aws.record("ntf-order-1001")["successfulAttempt"]["statusCode"] == 200

    # When the step runs again for the same run (a Lambda service error retried, a takeover)
    metrics.clear_metrics()
    again = lambda_handler({**event, "retryCount": 1}, lambda_context)

    # Then nothing was sent again, and the result is the accepted attempt
    assert len(receiver.requests_for("/webhooks/orders")) == 1
    assert again["outcome"]["success"] is True
    assert again["outcome"]["statusCode"] == first["outcome"]["statusCode"] == 200
    assert again["outcome"]["statusText"] == "OK"
    assert again["outcome"]["timestamp"] == first["outcome"]["timestamp"]
    assert again["item"]["attempts"] == {"N": "1"}
    assert "DeliveryAttempt" not in metrics.metric_set
    assert aws.record("ntf-order-1001")["attempts"] == 1


def test_a_run_that_takes_over_a_crashed_runs_claim_records_its_accepted_attempt(
    aws, receiver, load_event, lambda_context
):
    # Given an Express run that delivered (200 logged on the record) and crashed before recording SUCCESS
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    lambda_handler(event, lambda_context)

    # When the run that took the claim over delivers
    aws.table.update_item(
        Key={"notificationId": "ntf-order-1001"},
        UpdateExpression="SET executionArn = :next",
        ExpressionAttributeValues={":next": TAKEN_OVER_BY},
    )
    result = lambda_handler({**event, "executionId": TAKEN_OVER_BY}, lambda_context)

    # Then it records the first run's accepted attempt and sends nothing
    assert result["outcome"]["success"] is True
    assert len(receiver.requests_for("/webhooks/orders")) == 1


def test_failed_attempts_leave_no_accepted_marker(aws, receiver, load_event, lambda_context):
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", [Step(503), Step(200)])
    with pytest.raises(DeliveryRetryableError):
        lambda_handler(event, lambda_context)
    assert "successfulAttempt" not in aws.record("ntf-order-1001")
    lambda_handler({**event, "retryCount": 1}, lambda_context)
    assert len(receiver.requests_for("/webhooks/orders")) == 2


def test_a_busy_host_is_not_sent_to_and_spends_no_attempt(aws, leases, receiver, load_event, lambda_context):
    # Given the host's only slot held by another run's delivery in flight
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    assert leases.take("127.0.0.1", holder_id("another run"), limit=1, lease_seconds=60)

    # When this run delivers / Then it is told the host is busy, and nothing happened
    with pytest.raises(HostBusyError, match="limit of 1 deliveries in flight"):
        lambda_handler(event, lambda_context)
    assert receiver.requests == []
    assert aws.record("ntf-order-1001").get("attempts", 0) == 0

    # When the other delivery finishes / Then this one goes out, and gives its slot back afterwards
    leases.release("127.0.0.1", holder_id("another run"))
    assert lambda_handler(event, lambda_context)["outcome"]["success"] is True
    assert len(receiver.requests) == 1
    assert leases.holders("127.0.0.1") == {}


def test_the_slot_is_given_back_when_the_attempt_fails(aws, leases, receiver, load_event, lambda_context):
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", Step(503))
    with pytest.raises(DeliveryRetryableError):
        lambda_handler(event, lambda_context)
    assert leases.holders("127.0.0.1") == {}


def test_a_throttled_slot_table_counts_as_busy_not_as_a_failure(
    aws, leases, receiver, load_event, lambda_context, monkeypatch
):
    # moto cannot throttle: the slot table's take raises what the data-access module raises on throttling.
    def throttled(*args, **kwargs):
        raise StorageError("DynamoDB ThrottlingException on update_item")

    monkeypatch.setattr(host_limit.HostSlots, "take", throttled)
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    with pytest.raises(HostBusyError, match="could not take a delivery slot"):
        lambda_handler(event, lambda_context)
    assert receiver.requests == []


def test_a_host_limited_to_zero_is_not_limited(aws, leases, receiver, load_event, lambda_context, configure):
    configure(host_limits="127.0.0.1=0")
    assert leases.take("127.0.0.1", "someone", limit=1, lease_seconds=60)
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    assert lambda_handler(event, lambda_context)["outcome"]["success"] is True
