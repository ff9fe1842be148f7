"""Step Functions API answers shaped as AWS documents them, through boto3 and the AWS CLI against the local server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from notiflow.local.fixtures import execution_history, finished_execution
from tests.local.helpers import create_function, create_state_machine, start

_VENV_CLI = Path(sys.executable).with_name("aws")
AWS_CLI = str(_VENV_CLI) if _VENV_CLI.exists() else (shutil.which("aws") or "aws")
"""The AWS CLI of this virtualenv (a dev dependency), else one on PATH."""
HAS_AWS_CLI = _VENV_CLI.exists() or shutil.which("aws") is not None


def _failing_machine(stack) -> str:
    """Pass, then a Lambda task that fails until its probe has no failures left."""
    flaky = create_function(stack, "fail_until")
    return create_state_machine(
        stack,
        {
            "StartAt": "Prepare",
            "States": {
                "Prepare": {"Type": "Pass", "Next": "Flaky"},
                "Flaky": {"Type": "Task", "Resource": flaky, "End": True},
            },
        },
    )


def _aws(stack, *args: str) -> dict:
    command = [AWS_CLI, "--endpoint-url", stack.endpoint_url, "--region", "us-east-1", "--output", "json", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_list_executions_honours_redrive_filter_and_lists_redrive_fields(local_stack):
    # Given three failed runs of one machine, one of them redriven to success
    sfn = local_stack.client("stepfunctions")
    machine = _failing_machine(local_stack)
    key = f"list-{time.monotonic_ns()}"
    arns = [start(local_stack, machine, {"key": f"{key}-{n}", "failures": 1}) for n in range(3)]
    for arn in arns:
        assert finished_execution(sfn, arn).status == "FAILED"
    redrive_date = sfn.redrive_execution(executionArn=arns[0])["redriveDate"]
    assert finished_execution(sfn, arns[0]).status == "SUCCEEDED"

    # When they are listed with each redrive filter
    redriven = sfn.list_executions(stateMachineArn=machine, redriveFilter="REDRIVEN")["executions"]
    not_redriven = sfn.list_executions(stateMachineArn=machine, redriveFilter="NOT_REDRIVEN")["executions"]
    everything = sfn.list_executions(stateMachineArn=machine)["executions"]

    # Then the filter splits them and every item carries its redrive count (and date once redriven)
    assert [item["executionArn"] for item in redriven] == [arns[0]]
    assert redriven[0]["redriveCount"] == 1
    assert redriven[0]["redriveDate"] == redrive_date
    assert sorted(item["executionArn"] for item in not_redriven) == sorted(arns[1:])
    assert all(item["redriveCount"] == 0 and "redriveDate" not in item for item in not_redriven)
    assert len(everything) == 3
    assert all("stopDate" in item for item in everything)


def test_list_executions_pages_and_refuses_pending_redrive_without_a_map_run(local_stack):
    # Given five finished runs
    sfn = local_stack.client("stepfunctions")
    machine = create_state_machine(local_stack, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    arns = [start(local_stack, machine) for _ in range(5)]
    for arn in arns:
        finished_execution(sfn, arn)

    # When they are listed two at a time
    pages = list(
        sfn.get_paginator("list_executions").paginate(stateMachineArn=machine, PaginationConfig={"PageSize": 2})
    )

    # Then every run comes once, newest first, over three pages
    listed = [item for page in pages for item in page["executions"]]
    assert len(pages) == 3
    assert sorted(item["executionArn"] for item in listed) == sorted(arns)
    assert [item["startDate"] for item in listed] == sorted((item["startDate"] for item in listed), reverse=True)
    with pytest.raises(ClientError) as refused:
        sfn.list_executions(stateMachineArn=machine, statusFilter="PENDING_REDRIVE")
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_execution_history_honours_reverse_order_paging_and_execution_data(local_stack):
    # Given a finished run with a history of several events
    sfn = local_stack.client("stepfunctions")
    machine = _failing_machine(local_stack)
    arn = start(local_stack, machine, {"key": f"history-{time.monotonic_ns()}", "failures": 0, "secret": "s3cr3t"})
    assert finished_execution(sfn, arn).status == "SUCCEEDED"
    full = execution_history(sfn, arn)
    assert len(full) > 5

    # When it is read newest first in pages of two, and once without execution data
    pages, token = [], None
    while True:
        request = {"executionArn": arn, "reverseOrder": True, "maxResults": 2}
        if token:
            request["nextToken"] = token
        page = sfn.get_execution_history(**request)
        pages.append(page["events"])
        token = page.get("nextToken")
        if not token:
            break
    bare = sfn.get_execution_history(executionArn=arn, includeExecutionData=False, maxResults=1000)["events"]

    # Then the pages hold the same events in reverse order, two at a time
    assert all(len(page) <= 2 for page in pages)
    assert [event["id"] for page in pages for event in page] == [event["id"] for event in reversed(full)]
    # And without execution data no event carries an input or output, while the events stay
    assert [event["type"] for event in bare] == [event["type"] for event in full]
    assert "s3cr3t" in json.dumps(full, default=str)
    assert "s3cr3t" not in json.dumps(bare, default=str)
    started = next(event for event in bare if event["type"] == "ExecutionStarted")
    assert "input" not in started["executionStartedEventDetails"]


def test_execution_history_refuses_a_token_of_another_request(local_stack):
    sfn = local_stack.client("stepfunctions")
    machine = _failing_machine(local_stack)
    arn = start(local_stack, machine, {"key": f"token-{time.monotonic_ns()}", "failures": 0})
    finished_execution(sfn, arn)
    token = sfn.get_execution_history(executionArn=arn, maxResults=1)["nextToken"]

    with pytest.raises(ClientError) as refused:
        sfn.get_execution_history(executionArn=arn, maxResults=1, reverseOrder=True, nextToken=token)

    assert refused.value.response["Error"]["Code"] == "InvalidToken"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_describe_execution_has_input_and_output_details(local_stack):
    # Given a succeeded run, a failed run, and a run whose output is a bare string
    sfn = local_stack.client("stepfunctions")
    machine = _failing_machine(local_stack)
    succeeded = start(local_stack, machine, {"key": f"details-ok-{time.monotonic_ns()}", "failures": 0})
    failed = start(local_stack, machine, {"key": f"details-ko-{time.monotonic_ns()}", "failures": 5})
    text = create_state_machine(
        local_stack, {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "hello", "End": True}}}
    )
    string_run = start(local_stack, text)

    ok, ko, string = (finished_execution(sfn, arn).description for arn in (succeeded, failed, string_run))

    # Then every description has inputDetails; outputDetails comes with an output only
    assert ok["inputDetails"] == {"included": True}
    assert ko["inputDetails"] == {"included": True}
    assert ok["outputDetails"] == {"included": True}
    assert json.loads(ok["output"]) == {"attempts": 1}
    assert "output" not in ko
    assert "outputDetails" not in ko
    # And a string output is JSON, as every output is
    assert json.loads(string["output"]) == "hello"


def test_redrive_of_a_runtime_failure_answers_as_aws_does(local_stack):
    # Given a run that failed with States.Runtime (a path its input lacks)
    sfn = local_stack.client("stepfunctions")
    machine = create_state_machine(
        local_stack,
        {"StartAt": "Read", "States": {"Read": {"Type": "Pass", "Parameters": {"v.$": "$.missing"}, "End": True}}},
    )
    arn = start(local_stack, machine, {})
    first = finished_execution(sfn, arn)
    assert first.description["error"] == "States.Runtime"
    assert first.description["redriveStatus"] == "REDRIVABLE"

    # When it is redriven (AWS lists no reason that makes States.Runtime unredrivable)
    answer = sfn.redrive_execution(executionArn=arn)

    # Then the answer is AWS's JSON, and the run resumes at the state that failed, failing the same way
    assert "redriveDate" in answer
    again = finished_execution(sfn, arn)
    assert again.status == "FAILED"
    assert again.description["error"] == "States.Runtime"
    assert again.description["redriveCount"] == 1
    assert [event["type"] for event in again.history].count("ExecutionRedriven") == 1


def test_validate_state_machine_definition_answers_with_diagnostics(local_stack):
    sfn = local_stack.client("stepfunctions")
    good = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    missing_state = {"StartAt": "Nowhere", "States": {"P": {"Type": "Pass", "End": True}}}

    ok = sfn.validate_state_machine_definition(definition=json.dumps(good))
    broken = sfn.validate_state_machine_definition(definition=json.dumps(missing_state))
    not_json = sfn.validate_state_machine_definition(definition="{not json")

    assert ok["result"] == "OK"
    assert ok["diagnostics"] == []
    assert broken["result"] == "FAIL"
    assert broken["diagnostics"][0]["severity"] == "ERROR"
    assert broken["diagnostics"][0]["code"] == "MISSING_TRANSITION_TARGET"
    assert broken["diagnostics"][0]["location"] == "/StartAt"
    unknown_type = sfn.validate_state_machine_definition(
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Teleport", "End": True}}})
    )
    assert unknown_type["result"] == "FAIL"
    assert unknown_type["diagnostics"][0]["code"] == "SCHEMA_VALIDATION_FAILED"
    assert broken["diagnostics"][0]["message"]
    assert not_json["result"] == "FAIL"
    assert not_json["diagnostics"][0]["code"] == "INVALID_JSON_DESCRIPTION"


def test_an_internal_error_is_an_aws_shaped_json_error(local_stack, monkeypatch):
    # Given a backend call that raises something no AWS error maps to
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    def broken(self, *args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(StepFunctionsParserBackend, "list_state_machines", broken)
    sfn = local_stack.client("stepfunctions")

    # When a client calls it
    with pytest.raises(ClientError) as failed:
        sfn.list_state_machines()

    # Then it gets AWS's InternalFailure as JSON, not werkzeug's HTML page
    error = failed.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["Error"]["Code"] == "InternalFailure"
    assert "<html" not in error["Error"]["Message"].lower()


@pytest.mark.skipif(not HAS_AWS_CLI, reason="the AWS CLI is not installed")
def test_aws_cli_filters_pages_and_validates(local_stack):
    # Given a redriven run and a run never redriven
    sfn = local_stack.client("stepfunctions")
    machine = _failing_machine(local_stack)
    key = f"cli-{time.monotonic_ns()}"
    redriven, plain = (start(local_stack, machine, {"key": f"{key}-{n}", "failures": 1}) for n in range(2))
    for arn in (redriven, plain):
        finished_execution(sfn, arn)
    sfn.redrive_execution(executionArn=redriven)
    finished_execution(sfn, redriven)

    # When the AWS CLI lists, reads history and validates
    listed = _aws(
        local_stack, "stepfunctions", "list-executions", "--state-machine-arn", machine, "--redrive-filter", "REDRIVEN"
    )
    history = _aws(
        local_stack,
        "stepfunctions",
        "get-execution-history",
        "--execution-arn",
        plain,
        "--reverse-order",
        "--max-items",
        "1",
    )
    described = _aws(local_stack, "stepfunctions", "describe-execution", "--execution-arn", plain)
    validated = _aws(
        local_stack, "stepfunctions", "validate-state-machine-definition", "--definition", '{"StartAt": "X"}'
    )

    # Then it sees what AWS would answer
    assert [item["executionArn"] for item in listed["executions"]] == [redriven]
    assert listed["executions"][0]["redriveCount"] == 1
    assert history["events"][0]["type"] == "ExecutionFailed"
    assert "NextToken" in history
    assert described["inputDetails"] == {"included": True}
    assert validated["result"] == "FAIL"
    assert validated["diagnostics"]
