"""The real ASL under Step Functions Local mock test cases (tests/workflows/mock_config.json).

Each test starts ``notiflow-delivery#<TestCase>``: the Lambda and DynamoDB tasks answer from the
mock config (returns and throws per retry), everything else (Choice, Pass, intrinsics, Retry,
Catch, Fail) is the real definition interpreted. Assertions cover the path, retries and the exact
parameters the definition builds for each task.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from lambdas.shared.constants import DeliveryMode
from notiflow.local.fixtures import finished_execution, stack_settings_for_tests
from notiflow.local.stack import StackSettings

EXECUTION_INPUT = {
    "notificationId": "mock-1",
    "notification": {
        "notificationId": "mock-1",
        "target": {"url": "https://hooks.example.com/orders"},
        "payload": {"orderId": 42},
        "eventType": "order.created",
        "correlationId": "corr-1",
    },
    "rawBody": None,
    "parseError": None,
    "source": {"sqsMessageId": "m-1", "queueArn": "arn:aws:sqs:us-east-1:123456789012:notiflow-intake"},
    "replay": False,
    "expiresAt": 1900000000,
}


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    """Standard mode: the Standard workflow renders the full delivery schedule (24 retries)."""
    return stack_settings_for_tests(delivery_mode=DeliveryMode.STANDARD)


def _record(stack: Any, notification_id: str) -> dict[str, Any]:
    item = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"notificationId": {"S": notification_id}}, ConsistentRead=True
    )["Item"]
    return {key: TypeDeserializer().deserialize(value) for key, value in item.items()}


def _scheduled(history: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    """Parameters of every task scheduled while in ``state``, in order."""
    current = None
    found = []
    for event in history:
        if event["type"].endswith("StateEntered"):
            current = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "TaskScheduled" and current == state:
            found.append(json.loads(event["taskScheduledEventDetails"]["parameters"]))
    return found


def _values(history: list[dict[str, Any]], state: str) -> dict[str, Any]:
    (parameters,) = _scheduled(history, state)
    return parameters["ExpressionAttributeValues"]


def test_happy_path(sfn_mock_config):
    # When the happy path runs
    result = sfn_mock_config.run("HappyPath", EXECUTION_INPUT)

    # Then it delivered once and recorded SUCCESS for this run
    assert result.status == "SUCCEEDED"
    assert result.summary.entered == ["Route", "Validate", "Deduplicate", "IsDuplicate", "Deliver", "RecordSuccess"]
    assert sum(result.summary.retries.values()) == 0
    (deliver,) = _scheduled(result.history, "Deliver")
    assert deliver["Payload"]["retryCount"] == 0
    assert deliver["Payload"]["executionId"] == result.description["executionArn"]
    values = _values(result.history, "RecordSuccess")
    assert values[":success"] == {"S": "SUCCESS"}
    assert values[":exec"] == {"S": result.description["executionArn"]}
    assert values[":attempts"] == {"N": "1"}
    assert values[":deliveredAt"] == {"S": "2026-01-01T00:00:00.012Z"}
    assert values[":result"]["M"]["statusCode"] == {"N": "200"}
    assert result.output["claim"] == {"claimed": True, "duplicate": False, "reason": "claimed for this execution"}


def test_retry_path(sfn_mock_config):
    # When delivery fails retryably twice, then succeeds
    result = sfn_mock_config.run("RetryPath", EXECUTION_INPUT)

    # Then Deliver was retried twice, seeing its retry count, and SUCCESS records 3 attempts
    assert result.status == "SUCCEEDED"
    assert result.summary.entered[-2:] == ["Deliver", "RecordSuccess"]
    assert result.summary.retries["Deliver"] == 2
    assert [p["Payload"]["retryCount"] for p in _scheduled(result.history, "Deliver")] == [0, 1, 2]
    assert result.summary.errors == [("Deliver", "DeliveryRetryableError")] * 2
    assert _values(result.history, "RecordSuccess")[":attempts"] == {"N": "3"}


def test_retry_exhaustion(sfn_mock_config):
    # When delivery fails retryably on every attempt
    result = sfn_mock_config.run("RetryExhausted", EXECUTION_INPUT)

    # Then the 24 retries of the schedule ran, FAILED was recorded with the last outcome,
    # and the gate failed the run with the delivery error
    assert result.status == "FAILED"
    assert result.description["error"] == "DeliveryRetryableError"
    assert result.summary.retries["Deliver"] == 24
    assert result.summary.entered[3:] == [
        "IsDuplicate",
        "Deliver",
        "DescribeDeliveryFailure",
        "DescribeLastOutcome",
        "RecordFailure",
        "FailureGate",
    ]
    values = _values(result.history, "RecordFailure")
    assert values[":failed"] == {"S": "FAILED"}
    assert values[":errorName"] == {"S": "DeliveryRetryableError"}
    assert values[":attempts"] == {"N": "25"}
    assert values[":reason"] == {"S": "HTTP 503 Service Unavailable after 25 attempts"}
    assert values[":redriveCount"] == {"N": "0"}
    assert values[":result"]["M"]["category"] == {"S": "SERVER_ERROR"}
    (gate,) = _scheduled(result.history, "FailureGate")
    assert gate["Payload"]["redriveCount"] == 0
    assert gate["Payload"]["failedAtRedriveCount"] == 0
    assert gate["Payload"]["error"]["Error"] == "DeliveryRetryableError"


def test_permanent_failure(sfn_mock_config):
    # When the endpoint refuses the notification for good
    result = sfn_mock_config.run("PermanentFailure", EXECUTION_INPUT)

    # Then nothing is retried and FAILED is recorded with the 400
    assert result.status == "FAILED"
    assert result.description["error"] == "DeliveryPermanentError"
    assert result.summary.retries["Deliver"] == 0
    values = _values(result.history, "RecordFailure")
    assert values[":errorName"] == {"S": "DeliveryPermanentError"}
    assert values[":attempts"] == {"N": "1"}
    assert values[":result"]["M"]["statusCode"] == {"N": "400"}


def test_unexpected_failure(sfn_mock_config):
    # When Deliver fails outside the delivery contract (a Lambda timeout)
    result = sfn_mock_config.run("UnexpectedFailure", EXECUTION_INPUT)

    # Then, once the retries of a lost result are spent, the catch-all path records the error name and cause
    assert result.status == "FAILED"
    assert result.description["error"] == "DeliveryFailedError"
    assert "DescribeUnexpectedFailure" in result.summary.entered
    values = _values(result.history, "RecordUnexpectedFailure")
    assert values[":errorName"] == {"S": "Sandbox.Timedout"}
    assert values[":reason"]["S"].startswith("Sandbox.Timedout: ")


def test_rejected_input(sfn_mock_config):
    # When Validate rejects the notification
    result = sfn_mock_config.run("RejectedInput", EXECUTION_INPUT)

    # Then REJECTED is recorded with the validation message and the run fails visibly
    assert result.status == "FAILED"
    assert result.description["error"] == "InvalidNotificationError"
    assert result.description["cause"] == "target.url: only https targets are allowed"
    assert result.summary.entered == ["Route", "Validate", "DescribeRejection", "RecordRejected", "Rejected"]
    values = _values(result.history, "RecordRejected")
    assert values[":reason"] == {"S": "target.url: only https targets are allowed"}
    assert values[":errorName"] == {"S": "InvalidNotificationError"}
    assert values[":expiresAt"] == {"N": "1900000000"}


def test_duplicate(sfn_mock_config):
    # When another run already owns the notification
    result = sfn_mock_config.run("Duplicate", EXECUTION_INPUT)

    # Then nothing is delivered
    assert result.status == "SUCCEEDED"
    assert result.summary.entered == ["Route", "Validate", "Deduplicate", "IsDuplicate", "SkipDuplicate"]


def test_stale_write_is_ignored(sfn_mock_config):
    # When the SUCCESS write's condition fails (the record is no longer this run's)
    result = sfn_mock_config.run("StaleWrite", EXECUTION_INPUT)

    # Then the run ends without changing anything
    assert result.status == "SUCCEEDED"
    assert result.summary.entered[-2:] == ["RecordSuccess", "StaleWriteIgnored"]
    assert result.output["staleWrite"]["Error"] == "DynamoDB.ConditionalCheckFailedException"


def test_transient_infrastructure_errors_are_retried(sfn_mock_config):
    # When Lambda throttles Validate once and DynamoDB throttles the claim twice
    result = sfn_mock_config.run("TransientInfrastructure", EXECUTION_INPUT)

    # Then both are retried and the run delivers
    assert result.status == "SUCCEEDED"
    assert result.summary.retries["Validate"] == 1
    assert result.summary.retries["Deduplicate"] == 2
    assert result.summary.entered[-1] == "RecordSuccess"


def test_unknown_test_case_is_refused(sfn_mock_config):
    # When a test case the mock config lacks is started, then StartExecution is refused
    with pytest.raises(ClientError) as refused:
        sfn_mock_config.start("NoSuchCase", EXECUTION_INPUT)
    assert refused.value.response["Error"]["Code"] == "InvalidName"
    assert "NoSuchCase" in refused.value.response["Error"]["Message"]


def test_validate_crash_is_recorded_failed_and_a_redrive_resumes_at_validate(sfn_mock_config, local_stack):
    # Given Validate failing outside its contract (an unhandled error, not retried), before any claim
    execution_input = {**EXECUTION_INPUT, "notificationId": "mock-validate-crash", "fastPathExecutionArn": None}
    result = sfn_mock_config.run("ValidateCrash", execution_input)

    # Then the run failed visibly and left a FAILED record naming the error and the step
    assert result.status == "FAILED"
    assert result.summary.entered == [
        "Route",
        "Validate",
        "DescribeValidateFailure",
        "RecordStepFailure",
        "FailureGate",
    ]
    record = _record(local_stack, "mock-validate-crash")
    assert record["status"] == record["opsStatus"] == "FAILED"
    assert record["errorName"] == "Lambda.Unknown"
    assert record["failedStep"] == "Validate"
    assert record["failureReason"].startswith("Lambda.Unknown: ")
    assert record["executionArn"] == result.description["executionArn"]
    assert record["expiresAt"] == EXECUTION_INPUT["expiresAt"]

    # When the run is redriven
    sfn = local_stack.client("stepfunctions")
    sfn.redrive_execution(executionArn=result.description["executionArn"])
    redriven = finished_execution(sfn, result.description["executionArn"], timeout=60)

    # Then it reopened the record and resumed at Validate (a mocked response is per state entry, so the
    # mock crashes again: the second failure is recorded under the redrive that met it)
    assert redriven.summary.entered[5:] == [
        "FailureGate",
        "ReopenForRedrive",
        "ResumeAfterRedrive",
        "Validate",
        "DescribeValidateFailure",
        "RecordStepFailure",
        "FailureGate",
    ]
    assert redriven.status == "FAILED"
    record = _record(local_stack, "mock-validate-crash")
    assert (record["status"], record["failedStep"], record["failedAtRedriveCount"]) == ("FAILED", "Validate", 1)
    assert record["redriveCount"] == 1


def test_deduplicate_crash_is_recorded_failed_with_its_error_name(sfn_mock_config, local_stack):
    # Given Deduplicate failing with an error no retrier knows
    result = sfn_mock_config.run("DeduplicateCrash", EXECUTION_INPUT)

    # Then a FAILED record exists although nothing was claimed, and the run failed visibly
    assert result.status == "FAILED"
    assert result.summary.entered[-4:] == [
        "Deduplicate",
        "DescribeDeduplicateFailure",
        "RecordStepFailure",
        "FailureGate",
    ]
    record = _record(local_stack, "mock-dedup-crash")
    assert (record["status"], record["errorName"], record["failedStep"]) == ("FAILED", "KeyError", "Deduplicate")
    assert record["executionArn"] == result.description["executionArn"]
    assert result.description["error"] == "DeliveryFailedError"
    assert json.loads(result.description["cause"])["errorMessage"].startswith("KeyError: ")


def test_a_lambda_throttled_ten_times_in_a_row_still_delivers(sfn_mock_config):
    # Given Lambda refusing Validate ten times in a row (a burst above the account's concurrency)
    result = sfn_mock_config.run("LambdaThrottlingBurst", EXECUTION_INPUT)

    # Then the long, jittered back-off rode it out: the run delivered instead of failing
    assert result.status == "SUCCEEDED"
    assert result.summary.retries["Validate"] == 10
    assert result.summary.errors == [("Validate", "Lambda.TooManyRequestsException")] * 10
    assert result.summary.entered[-1] == "RecordSuccess"


def test_host_busy_waits_do_not_spend_the_delivery_retry_budget(sfn_mock_config):
    # Given a host busy three times, then a receiver failing 24 times (the whole retry budget), then 200
    result = sfn_mock_config.run("HostBusyApartFromDeliveryBudget", EXECUTION_INPUT)

    # Then the busy waits had their own counter: all 24 delivery retries were still available
    assert result.status == "SUCCEEDED"
    assert result.summary.retries["Deliver"] == 27
    errors = [error for _, error in result.summary.errors]
    assert errors == ["HostBusyError"] * 3 + ["DeliveryRetryableError"] * 24
    assert result.summary.entered[-1] == "RecordSuccess"
