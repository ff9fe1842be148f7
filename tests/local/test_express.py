"""Express state machines on the local engine: sync and async starts, the startExecution task, error names.

Small definitions only (a Lambda task, a DynamoDB updateItem, a startExecution into a Standard
machine), started through boto3 and the AWS CLI against the local server.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from notiflow.local.fixtures import finished_execution, stack_settings_for_tests
from notiflow.local.stack import STATE_MACHINE_ROLE_NAME, EmbeddedStack, StackSettings
from tests.local.helpers import create_function, create_state_machine


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    # No cap on waits, so a Wait state can outlast a run's time limit (100,000 s last 100 s at the test scale).
    return stack_settings_for_tests(start_poller=False, max_wait_seconds=None)


def _express(stack: EmbeddedStack, definition: dict[str, Any]) -> str:
    response = stack.client("stepfunctions").create_state_machine(
        name=f"express-{uuid.uuid4().hex[:10]}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{stack.account_id}:role/{STATE_MACHINE_ROLE_NAME}",
        type="EXPRESS",
    )
    return str(response["stateMachineArn"])


def _child(stack: EmbeddedStack) -> str:
    """A Standard machine whose run waits a moment, then succeeds with its input."""
    return create_state_machine(
        stack, {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 1, "End": True}}}
    )


def _hand_over_machine(stack: EmbeddedStack, child_arn: str) -> str:
    """Lambda task -> DynamoDB updateItem -> startExecution of ``child_arn`` named after this run."""
    echo = create_function(stack, "echo")
    return _express(
        stack,
        {
            "StartAt": "Echo",
            "TimeoutSeconds": 60,
            "States": {
                "Echo": {
                    "Type": "Task",
                    "Resource": echo,
                    "ResultSelector": {"seen.$": "$.event.key"},
                    "ResultPath": "$.echo",
                    "Next": "Record",
                },
                "Record": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::dynamodb:updateItem",
                    "Parameters": {
                        "TableName": stack.table_name,
                        "Key": {"notificationId": {"S.$": "$.key"}},
                        "UpdateExpression": "SET probe = :run ADD visits :one",
                        "ExpressionAttributeValues": {":run": {"S.$": "$$.Execution.Id"}, ":one": {"N": "1"}},
                    },
                    "ResultPath": None,
                    "Next": "Start",
                },
                "Start": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::states:startExecution",
                    "Parameters": {
                        "StateMachineArn": child_arn,
                        "Name.$": "$$.Execution.Name",
                        "Input": {"key.$": "$.key", "from.$": "$$.Execution.Id"},
                    },
                    "ResultPath": "$.started",
                    "Catch": [
                        {
                            "ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"],
                            "ResultPath": "$.alreadyStarted",
                            "Next": "Duplicate",
                        }
                    ],
                    "End": True,
                },
                "Duplicate": {
                    "Type": "Pass",
                    "Parameters": {"duplicate": True, "error.$": "$.alreadyStarted.Error"},
                    "End": True,
                },
            },
        },
    )


def _item(stack: EmbeddedStack, key: str) -> dict[str, Any]:
    return stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"notificationId": {"S": key}}, ConsistentRead=True
    )["Item"]


def test_a_sync_start_runs_lambda_dynamodb_and_starts_the_standard_run(local_stack):
    # Given an Express machine handing over to a Standard one
    sfn = local_stack.client("stepfunctions")
    child = _child(local_stack)
    machine = _hand_over_machine(local_stack, child)
    key = f"express-{uuid.uuid4().hex[:8]}"

    # When it is started synchronously
    response = sfn.start_sync_execution(stateMachineArn=machine, name=key, input=json.dumps({"key": key}))

    # Then the answer carries the ended run, billed as AWS bills it
    assert response["status"] == "SUCCEEDED"
    assert response["executionArn"].startswith(machine.replace(":stateMachine:", ":express:") + f":{key}:")
    assert (response["name"], response["stateMachineArn"], json.loads(response["input"])) == (
        key,
        machine,
        {"key": key},
    )
    output = json.loads(response["output"])
    assert output["echo"] == {"seen": key}
    child_arn = output["started"]["ExecutionArn"]
    assert child_arn == child.replace(":stateMachine:", ":execution:") + f":{key}"
    assert isinstance(output["started"]["StartDate"], str)
    elapsed_ms = (response["stopDate"] - response["startDate"]).total_seconds() * 1000
    billing = response["billingDetails"]
    assert billing["billedMemoryUsedInMB"] == 64
    billed_ms = billing["billedDurationInMilliseconds"]
    # Rounded up to the next 100 ms (the dates in the answer are whole milliseconds, so allow 1 ms)
    assert billed_ms % 100 == 0
    assert billed_ms - 100 <= elapsed_ms <= billed_ms + 1
    # And the DynamoDB write and the Standard run happened, the Standard run with the Express run's input
    assert _item(local_stack, key)["probe"] == {"S": response["executionArn"]}
    standard = finished_execution(sfn, child_arn)
    assert standard.status == "SUCCEEDED"
    assert json.loads(standard.description["input"]) == {"key": key, "from": response["executionArn"]}


def test_names_do_not_deduplicate_and_a_second_hand_over_sees_execution_already_exists(local_stack):
    # Given an Express machine whose first run under a name started the Standard run
    sfn = local_stack.client("stepfunctions")
    child = _child(local_stack)
    machine = _hand_over_machine(local_stack, child)
    key = f"again-{uuid.uuid4().hex[:8]}"
    first = sfn.start_sync_execution(stateMachineArn=machine, name=key, input=json.dumps({"key": key}))
    assert first["status"] == "SUCCEEDED"
    finished_execution(sfn, json.loads(first["output"])["started"]["ExecutionArn"])

    # When a second run under the same name starts (asynchronously, as at-least-once delivery may)
    second_arn = sfn.start_execution(stateMachineArn=machine, name=key, input=json.dumps({"key": key}))["executionArn"]
    second = finished_execution(sfn, second_arn)

    # Then it is a second run, not the first one again, and its Catch saw the service's error name
    assert second_arn != first["executionArn"]
    assert second.status == "SUCCEEDED"
    assert second.output == {"duplicate": True, "error": "StepFunctions.ExecutionAlreadyExistsException"}
    assert _item(local_stack, key)["visits"] == {"N": "2"}
    # And both runs are listed and described locally
    listed = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    assert listed == {first["executionArn"], second_arn}
    described = sfn.describe_execution(executionArn=first["executionArn"])
    assert (described["status"], described["name"]) == ("SUCCEEDED", key)
    events = sfn.get_execution_history(executionArn=second_arn)["events"]
    assert events[0]["type"] == "ExecutionStarted"


def test_a_failed_run_answers_failed_with_the_task_error_name(local_stack):
    failing = create_function(local_stack, "always_fail")
    machine = _express(
        local_stack,
        {"StartAt": "Fail", "States": {"Fail": {"Type": "Task", "Resource": failing, "End": True}}},
    )
    response = local_stack.client("stepfunctions").start_sync_execution(
        stateMachineArn=machine, input=json.dumps({"message": "no luck"})
    )
    assert response["status"] == "FAILED"
    assert response["error"] == "ProbePermanentError"
    assert "no luck" in response["cause"]
    assert "output" not in response
    assert response["billingDetails"]["billedDurationInMilliseconds"] >= 100


def test_a_run_past_its_timeout_answers_timed_out(local_stack):
    # Given an Express machine waiting far longer than its TimeoutSeconds (1 s: run limits are not scaled)
    machine = _express(
        local_stack,
        {"StartAt": "Wait", "TimeoutSeconds": 1, "States": {"Wait": {"Type": "Wait", "Seconds": 100000, "End": True}}},
    )
    response = local_stack.client("stepfunctions").start_sync_execution(stateMachineArn=machine)
    assert response["status"] == "TIMED_OUT"


def test_an_express_run_never_outlasts_the_five_minute_limit(local_stack, monkeypatch):
    # Given the limit shortened to 1 s, and a definition with no TimeoutSeconds waiting longer
    from notiflow.local.engine import express

    monkeypatch.setattr(express.ExpressExecutionWorker, "max_duration_seconds", 1)
    machine = _express(
        local_stack, {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 100000, "End": True}}}
    )

    # Then the run times out at the limit
    response = local_stack.client("stepfunctions").start_sync_execution(stateMachineArn=machine)
    assert response["status"] == "TIMED_OUT"
    assert response["billingDetails"]["billedDurationInMilliseconds"] >= 1000


def test_wrong_type_and_redrive_answer_as_aws_does(local_stack):
    sfn = local_stack.client("stepfunctions")
    standard = _child(local_stack)
    with pytest.raises(ClientError) as refused:
        sfn.start_sync_execution(stateMachineArn=standard)
    assert refused.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"

    failing = create_function(local_stack, "always_fail")
    machine = _express(
        local_stack, {"StartAt": "F", "States": {"F": {"Type": "Task", "Resource": failing, "End": True}}}
    )
    failed = sfn.start_sync_execution(stateMachineArn=machine)
    assert failed["status"] == "FAILED"
    with pytest.raises(ClientError) as not_redrivable:
        sfn.redrive_execution(executionArn=failed["executionArn"])
    assert not_redrivable.value.response["Error"]["Code"] == "ExecutionNotRedrivable"


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_aws_cli_starts_a_sync_execution(local_stack):
    machine = _express(
        local_stack, {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}
    )
    aws = [shutil.which("aws"), "--endpoint-url", local_stack.endpoint_url, "--region", "us-east-1", "--output", "json"]
    completed = subprocess.run(
        [*aws, "stepfunctions", "start-sync-execution", "--state-machine-arn", machine, "--input", "{}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(completed.stdout)
    assert answer["status"] == "SUCCEEDED"
    assert json.loads(answer["output"]) == {"ok": 1}
    assert answer["billingDetails"]["billedMemoryUsedInMB"] == 64
    assert answer["billingDetails"]["billedDurationInMilliseconds"] % 100 == 0


@pytest.mark.parametrize(
    ("elapsed_ms", "definition_mb", "billed"),
    [(0, 0, (64, 100)), (100, 0, (64, 100)), (100.5, 0, (64, 200)), (1234, 63, (64, 1300)), (50, 65, (128, 100))],
)
def test_billing_rounds_duration_up_to_100_ms_and_memory_up_to_64_mb_chunks(elapsed_ms, definition_mb, billed):
    from notiflow.local.engine import express

    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    execution = SimpleNamespace(
        start_date=start,
        stop_date=start + datetime.timedelta(milliseconds=elapsed_ms),
        execution_input="{}",
        output={"ok": True},
        state_machine=SimpleNamespace(definition="x" * int(definition_mb * 1024 * 1024)),
    )
    assert express.billing_details(execution) == {
        "billedMemoryUsedInMB": billed[0],
        "billedDurationInMilliseconds": billed[1],
    }
