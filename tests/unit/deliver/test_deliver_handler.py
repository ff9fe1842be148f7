"""The deliver Lambda end to end: event file in, real HTTP to 127.0.0.1, moto DynamoDB and Secrets Manager."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from standardwebhooks import Webhook

from lambdas.deliver import delivery
from lambdas.deliver.handler import lambda_handler
from lambdas.shared.errors import DeliveryPermanentError, DeliveryRetryableError
from lambdas.shared.observability import logger
from notiflow.demo.receiver import Step

# With metrics disabled (the shared test env) Powertools never clears them, so a second invocation in one
# test re-adds the category dimension; in Lambda each flush clears it.
pytestmark = pytest.mark.filterwarnings("ignore:Dimension 'category' has already been added")

OTHER_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:notiflow-delivery:another-run"


def failure_of(raised: pytest.ExceptionInfo) -> dict:
    """The JSON result the workflow's DescribeLastOutcome state parses out of the error message."""
    message = str(raised.value)
    assert len(message.encode()) < 32 * 1024
    return json.loads(message)


def test_success_returns_outcome_and_typed_item(aws, receiver, load_event, lambda_context, secret):
    # Given a claimed record and an endpoint that accepts
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", Step(200, body='{"received":true}'))

    # When the Lambda runs
    result = lambda_handler(event, lambda_context)

    # Then it returns the outcome and DynamoDB-typed attributes for RecordSuccess
    outcome, item = result["outcome"], result["item"]
    assert outcome["success"] is True
    assert outcome["category"] == "SUCCESS"
    assert outcome["attempt"] == 1
    assert item["attempts"] == {"N": "1"}
    assert item["lastDeliveryAttempt"] == {"S": outcome["timestamp"]}
    assert item["deliveredAt"] == {"S": outcome["httpResponseReceivedAt"]}
    assert item["failureReason"] == {"S": "HTTP 200 OK after 1 attempt (SUCCESS)"}
    typed = item["deliveryResult"]["M"]
    assert typed["success"] == {"BOOL": True}
    assert typed["statusCode"] == {"N": "200"}
    assert typed["category"] == {"S": "SUCCESS"}
    assert typed["errorDetails"] == {"NULL": True}
    assert typed["responseBodyExcerpt"] == {"S": '{"received":true}'}
    assert typed["correlationId"] == {"S": "corr-7f3a"}

    # And the request was signed with the secret from Secrets Manager
    (request,) = receiver.requests_for("/webhooks/orders")
    assert Webhook(secret).verify(request.body, request.headers) == event["notification"]["payload"]
    assert request.headers["authorization"] == "Bearer local-demo-token"

    # And the attempt is on the record
    record = aws.record("ntf-order-1001")
    assert record["attempts"] == 1
    assert [entry["category"] for entry in record["attemptLog"]] == ["SUCCESS"]


def test_item_is_accepted_by_dynamodb_as_the_workflow_writes_it(aws, receiver, load_event, lambda_context):
    # Given a successful delivery's item
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    item = lambda_handler(event, lambda_context)["item"]

    # When written the way RecordSuccess does (typed values passed through unchanged)
    boto3.client("dynamodb", region_name="us-east-1").update_item(
        TableName=aws.table.name,
        Key={"notificationId": {"S": "ntf-order-1001"}},
        UpdateExpression="SET deliveryResult = :result, attempts = :attempts, deliveredAt = :deliveredAt",
        ExpressionAttributeValues={
            ":result": item["deliveryResult"],
            ":attempts": item["attempts"],
            ":deliveredAt": item["deliveredAt"],
        },
    )

    # Then the record holds the outcome as a map
    record = aws.record("ntf-order-1001")
    assert record["deliveryResult"]["statusCode"] == 200
    assert record["deliveryResult"]["errorDetails"] is None


def test_retryable_failure_raises_with_the_result_as_json_then_retry_succeeds(
    aws, receiver, load_event, lambda_context
):
    # Given an endpoint that is down once, with Retry-After
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", [Step(503, headers={"Retry-After": "30"}, body="maintenance"), Step(200)])

    # When the first attempt runs
    with pytest.raises(DeliveryRetryableError) as raised:
        lambda_handler(event, lambda_context)

    # Then the error carries the outcome and the item RecordFailure would write
    failure = failure_of(raised)
    assert failure["outcome"]["category"] == "SERVER_ERROR"
    assert failure["outcome"]["retryAfterSeconds"] == 30
    assert failure["item"]["failureReason"] == {
        "S": "HTTP 503 Service Unavailable after 1 attempt (SERVER_ERROR, retryable)"
    }

    # When Step Functions retries (RetryCount 1)
    result = lambda_handler({**event, "retryCount": 1}, lambda_context)

    # Then the second attempt succeeds, numbered 2 everywhere, under the same webhook-id
    assert result["item"]["attempts"] == {"N": "2"}
    first, second = receiver.requests_for("/webhooks/orders")
    assert (first.headers["x-notiflow-attempt"], second.headers["x-notiflow-attempt"]) == ("1", "2")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "ntf-order-1001"
    record = aws.record("ntf-order-1001")
    assert record["attempts"] == 2
    assert [entry["statusCode"] for entry in record["attemptLog"]] == [503, 200]


def test_permanent_failure_raises_delivery_permanent_error(aws, receiver, load_event, lambda_context):
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", Step(404, body="no such hook"))

    with pytest.raises(DeliveryPermanentError) as raised:
        lambda_handler(event, lambda_context)

    failure = failure_of(raised)
    assert failure["outcome"]["retryEligible"] is False
    assert failure["item"]["failureReason"] == {"S": "HTTP 404 Not Found after 1 attempt (CLIENT_ERROR, permanent)"}
    assert failure["item"]["deliveryResult"]["M"]["responseBodyExcerpt"] == {"S": "no such hook"}


def test_redrive_continues_the_attempt_count(aws, receiver, load_event, lambda_context):
    # Given a record reopened by a redrive after 3 attempts (RetryCount restarts at 0)
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"], attempts=3)

    result = lambda_handler(event, lambda_context)

    assert result["item"]["attempts"] == {"N": "4"}
    assert receiver.requests_for("/webhooks/orders")[0].headers["x-notiflow-attempt"] == "4"


def test_record_owned_elsewhere_does_not_fail_a_delivered_notification(aws, receiver, load_event, lambda_context):
    # Given the record belongs to another execution
    event = load_event("invoice_put_retry", receiver.base_url)
    aws.claim("ntf-invoice-77", OTHER_EXECUTION, attempts=9)

    # When this (third, RetryCount 2) attempt succeeds
    result = lambda_handler(event, lambda_context)

    # Then the outcome stands with the fallback count, and the other run's record is untouched
    assert result["outcome"]["success"] is True
    assert result["item"]["attempts"] == {"N": "3"}
    assert receiver.requests_for("/webhooks/invoices/77")[0].method == "PUT"
    assert aws.record("ntf-invoice-77")["attempts"] == 9


def test_malformed_event_is_a_permanent_error_with_a_synthetic_outcome(aws, load_event, lambda_context):
    event = load_event("malformed")

    with pytest.raises(DeliveryPermanentError) as raised:
        lambda_handler(event, lambda_context)

    failure = failure_of(raised)
    details = failure["outcome"]["errorDetails"]
    assert failure["outcome"]["category"] == "CLIENT_ERROR"
    assert failure["outcome"]["retryEligible"] is False
    assert "notification.target.url" in details
    assert "executionId" in details
    assert "must-not-leak" not in str(raised.value)
    assert failure["item"]["failureReason"]["S"].startswith("deliver input is malformed")


@pytest.mark.parametrize("event", [[], "not an event", {"executionId": 5}])
def test_events_of_the_wrong_shape_never_crash_with_a_bare_exception(event, lambda_context):
    with pytest.raises(DeliveryPermanentError) as raised:
        lambda_handler(event, lambda_context)

    assert failure_of(raised)["outcome"]["success"] is False


def test_unloadable_secret_sends_nothing_and_is_retryable(aws, receiver, load_event, lambda_context, configure):
    # Given signing configured with a secret that does not exist
    configure(signing_secret_id="notiflow/missing")
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])

    with pytest.raises(DeliveryRetryableError) as raised:
        lambda_handler(event, lambda_context)

    # Then nothing unsigned went out, and the attempt is logged
    details = failure_of(raised)["outcome"]["errorDetails"]
    assert details.startswith("request not sent: signing secret notiflow/missing could not be loaded")
    assert receiver.requests == []
    assert aws.record("ntf-order-1001")["attempts"] == 1


def test_rotated_secret_is_picked_up_when_the_cache_expires(
    aws, receiver, load_event, lambda_context, secret, rotated_secret
):
    # Given an endpoint failing twice (an accepted attempt is never sent again in one run)
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", [Step(503), Step(503), Step(200)])
    with pytest.raises(DeliveryRetryableError):
        lambda_handler(event, lambda_context)

    # Given the secret now holds the new and the old secret
    aws.secrets.put_secret_value(SecretId="notiflow/unit/signing", SecretString=f"{rotated_secret}\n{secret}")

    # When invoked while the cached value is fresh, then after it expired
    with pytest.raises(DeliveryRetryableError):
        lambda_handler({**event, "retryCount": 1}, lambda_context)
    delivery.secret_value.cache_clear()
    lambda_handler({**event, "retryCount": 2}, lambda_context)

    # Then the cached value was reused first, and the rotation took effect after expiry
    signatures = [len(r.headers["webhook-signature"].split()) for r in receiver.requests_for("/webhooks/orders")]
    assert signatures == [1, 1, 2]
    last = receiver.requests_for("/webhooks/orders")[-1]
    Webhook(rotated_secret).verify(last.body, last.headers)
    Webhook(secret).verify(last.body, last.headers)


def test_without_a_secret_id_requests_go_out_unsigned(aws, receiver, load_event, lambda_context, configure):
    configure(signing_secret_id=None)
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])

    lambda_handler(event, lambda_context)

    (request,) = receiver.requests_for("/webhooks/orders")
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"] == "ntf-order-1001"


@pytest.fixture
def emitted(monkeypatch, capsys):
    """EMF metrics (printed) and JSON log lines as Lambda would ship them; the shared test env turns both down."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    level = logger.log_level
    logger.setLevel("INFO")
    log_stream = io.StringIO()
    previous_stream = logger.registered_handler.setStream(log_stream)

    def read() -> tuple[str, str]:
        return capsys.readouterr().out, log_stream.getvalue()

    yield read
    logger.registered_handler.setStream(previous_stream)
    logger.setLevel(level)


def test_logs_and_metrics_show_the_attempt_but_never_the_secret(
    aws, receiver, load_event, lambda_context, secret, emitted
):
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", Step(500, body="boom"))

    with pytest.raises(DeliveryRetryableError):
        lambda_handler(event, lambda_context)

    printed, logs = emitted()
    signature = receiver.requests_for("/webhooks/orders")[0].headers["webhook-signature"]
    for output in (printed, logs):
        assert secret.removeprefix("whsec_") not in output
        assert signature.split(",", 1)[1] not in output
    emf = next(json.loads(line) for line in printed.splitlines() if '"_aws"' in line)
    assert emf["category"] == "SERVER_ERROR"
    assert emf["DeliveryAttempt"] == [1.0]
    assert emf["DeliveryFailed"] == [1.0]
    assert "DeliverySucceeded" not in emf
    assert "DeliveryRetry" not in emf  # the notification's first attempt
    # And the host and latency ride along as properties for the dashboard's per-host query, not as dimensions
    assert emf["targetHost"] == "127.0.0.1"
    assert emf["responseTimeMs"] == emf["DeliveryResponseTime"][0]
    assert all("targetHost" not in dims for m in emf["_aws"]["CloudWatchMetrics"] for dims in m["Dimensions"])
    attempt_log = next(json.loads(line) for line in logs.splitlines() if "delivery attempt finished" in line)
    assert attempt_log["notificationId"] == "ntf-order-1001"
    assert attempt_log["correlation_id"] == "ntf-order-1001"
    assert attempt_log["statusCode"] == 500
    assert attempt_log["function_request_id"] == lambda_context.aws_request_id


def test_huge_error_body_keeps_the_message_under_the_cause_limit(aws, receiver, load_event, lambda_context):
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", Step(502, body="é" * 200_000))

    with pytest.raises(DeliveryRetryableError) as raised:
        lambda_handler(event, lambda_context)

    assert len(failure_of(raised)["outcome"]["responseBodyExcerpt"]) == 1024


def test_an_attempt_after_the_first_counts_as_a_retry(aws, receiver, load_event, lambda_context, emitted):
    # Given a notification whose first attempt failed
    event = load_event("order_created", receiver.base_url)
    aws.claim("ntf-order-1001", event["executionId"])
    receiver.script("/webhooks/orders", [Step(500), Step(200)])
    with pytest.raises(DeliveryRetryableError):
        lambda_handler(event, lambda_context)
    emitted()
    # When the workflow retries it and it succeeds
    lambda_handler(event, lambda_context)
    printed, _ = emitted()
    # Then that attempt is counted as a retry, under its category
    emf = next(json.loads(line) for line in printed.splitlines() if '"_aws"' in line)
    assert emf["DeliveryRetry"] == [1.0]
    assert emf["DeliverySucceeded"] == [1.0]
    assert emf["category"] == "SUCCESS"
