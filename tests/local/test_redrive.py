"""RedriveExecution on the local endpoint, with AWS semantics, through boto3 and the AWS CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from notiflow.local.fixtures import (
    execution_history,
    execution_history_states,
    finished_execution,
    stack_settings_for_tests,
)
from notiflow.local.stack import StackSettings
from notiflow.shared.waiting import wait_until
from tests.local.helpers import create_function, create_state_machine, start


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    # Waits of 200 s last 2 s: long enough to stop a run inside one.
    return stack_settings_for_tests(time_scale=0.01, max_wait_seconds=None)


def _three_step_machine(stack) -> str:
    echo = create_function(stack, "echo")
    flaky = create_function(stack, "fail_until")
    return create_state_machine(
        stack,
        {
            "StartAt": "First",
            "States": {
                "First": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": echo, "Payload": {"requestedBy.$": "$.key"}},
                    "ResultSelector": {"requestId.$": "$.Payload.requestId"},
                    "ResultPath": "$.first",
                    "Next": "Flaky",
                },
                "Flaky": {
                    "Type": "Task",
                    "Resource": flaky,
                    "Parameters": {"key.$": "$.key", "failures.$": "$.failures"},
                    "Retry": [{"ErrorEquals": ["ProbeRetryableError"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                    "ResultPath": "$.flaky",
                    "Next": "Read",
                },
                "Read": {
                    "Type": "Pass",
                    "Parameters": {
                        "redriveCount.$": "$$.Execution.RedriveCount",
                        "first.$": "$.first",
                        "flaky.$": "$.flaky",
                    },
                    "End": True,
                },
            },
        },
    )


def test_redrive_resumes_at_the_failed_state_under_the_same_arn(local_stack):
    # Given a run that failed in its second state after one retry (the handler fails 3 times)
    sfn = local_stack.client("stepfunctions")
    machine = _three_step_machine(local_stack)
    key = f"redrive-{time.monotonic_ns()}"
    arn = start(local_stack, machine, {"key": key, "failures": 3})
    failed = finished_execution(sfn, arn)
    assert failed.status == "FAILED"
    assert failed.description["error"] == "ProbeRetryableError"
    assert failed.description["redriveCount"] == 0
    assert failed.description["redriveStatus"] == "REDRIVABLE"
    first_output = next(
        json.loads(e["stateExitedEventDetails"]["output"])["first"]
        for e in failed.history
        if e.get("stateExitedEventDetails", {}).get("name") == "First"
    )

    # When it is redriven
    redriven = sfn.redrive_execution(executionArn=arn)
    result = finished_execution(sfn, arn)

    # Then the same ARN succeeded, resuming at Flaky with its original input; First ran only once
    assert redriven["redriveDate"]
    assert result.status == "SUCCEEDED"
    assert result.description["executionArn"] == arn
    assert result.description["startDate"] == failed.description["startDate"]
    assert result.description["redriveCount"] == 1
    assert result.description["redriveDate"] == redriven["redriveDate"]
    assert result.description["redriveStatus"] == "NOT_REDRIVABLE"
    assert result.summary.entered == ["First", "Flaky", "Flaky", "Read"]
    assert result.summary.redrives == 1
    assert result.summary.retries["Flaky"] == 2
    assert result.output["redriveCount"] == 1
    assert result.output["flaky"] == {"attempts": 4}
    assert result.output["first"] == first_output
    types = [event["type"] for event in result.history]
    assert types.count("ExecutionFailed") == 1
    assert types.count("ExecutionRedriven") == 1
    assert types.index("ExecutionFailed") < types.index("ExecutionRedriven")
    redriven_event = result.history[types.index("ExecutionRedriven")]
    assert redriven_event["executionRedrivenEventDetails"] == {"redriveCount": 1}
    assert [event["id"] for event in result.history] == list(range(1, len(result.history) + 1))


def test_only_unsuccessful_runs_can_be_redriven(local_stack):
    # Given a run that succeeded
    sfn = local_stack.client("stepfunctions")
    machine = _three_step_machine(local_stack)
    arn = start(local_stack, machine, {"key": f"ok-{time.monotonic_ns()}", "failures": 0})
    succeeded = finished_execution(sfn, arn)
    assert succeeded.status == "SUCCEEDED"

    # When it is redriven, then Step Functions refuses with ExecutionNotRedrivable
    with pytest.raises(ClientError) as refused:
        sfn.redrive_execution(executionArn=arn)
    assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert "SUCCEEDED" in refused.value.response["Error"]["Message"]
    assert succeeded.description["redriveStatusReason"] == "Execution is SUCCEEDED and cannot be redriven"


def test_an_aborted_run_redrives_from_the_state_it_was_stopped_in(local_stack):
    # Given a run stopped while waiting in a 200 s Wait (2 s at this scale)
    sfn = local_stack.client("stepfunctions")
    machine = create_state_machine(
        local_stack,
        {
            "StartAt": "Mark",
            "States": {
                "Mark": {"Type": "Pass", "Result": "marked", "ResultPath": "$.mark", "Next": "Hold"},
                "Hold": {"Type": "Wait", "Seconds": 200, "Next": "Done"},
                "Done": {
                    "Type": "Pass",
                    "Parameters": {"mark.$": "$.mark", "redrives.$": "$$.Execution.RedriveCount"},
                    "End": True,
                },
            },
        },
    )
    arn = start(local_stack, machine, {"n": 1})
    wait_until(
        lambda: [e["type"] for e in execution_history(sfn, arn)],
        lambda types: "WaitStateEntered" in types,
        timeout=10,
        describe="the run to enter Hold",
    )
    sfn.stop_execution(executionArn=arn, error="Operator", cause="testing")
    aborted = finished_execution(sfn, arn)
    assert aborted.status == "ABORTED"

    # When it is redriven
    sfn.redrive_execution(executionArn=arn)
    result = finished_execution(sfn, arn, timeout=20)

    # Then it resumed in Hold with Hold's input and finished
    assert result.status == "SUCCEEDED"
    assert result.output == {"mark": "marked", "redrives": 1}
    assert execution_history_states(result.history).entered == ["Mark", "Hold", "Hold", "Done"]


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_aws_cli_redrives_and_describes(local_stack):
    # Given a failed run
    sfn = local_stack.client("stepfunctions")
    machine = _three_step_machine(local_stack)
    arn = start(local_stack, machine, {"key": f"cli-{time.monotonic_ns()}", "failures": 2})
    assert finished_execution(sfn, arn).status == "FAILED"
    aws = [shutil.which("aws"), "--endpoint-url", local_stack.endpoint_url, "--region", "us-east-1", "--output", "json"]

    # When the AWS CLI redrives it, unchanged
    redriven = subprocess.run(
        [*aws, "stepfunctions", "redrive-execution", "--execution-arn", arn],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    finished_execution(sfn, arn)
    described = subprocess.run(
        [*aws, "stepfunctions", "describe-execution", "--execution-arn", arn],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # Then it reports the redrive like AWS does
    assert "redriveDate" in json.loads(redriven.stdout)
    description = json.loads(described.stdout)
    assert description["status"] == "SUCCEEDED"
    assert description["redriveCount"] == 1
    assert description["redriveStatus"] == "NOT_REDRIVABLE"
