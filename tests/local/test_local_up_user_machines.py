"""``notiflow local up`` runs a user's own state machines beside Notiflow's, driven by the AWS CLI and boto3."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from notiflow.local.fixtures import finished_execution
from tests.local.test_api_fidelity import AWS_CLI, HAS_AWS_CLI
from tests.local.test_server import _client, server  # noqa: F401  (the module-scoped `local up` process)

ROLE = "arn:aws:iam::123456789012:role/my-own-role"


def _user_definition(function_arn: str, table: str) -> dict:
    """A user's workflow: their own Lambda (in-process), their own table (native integration), a Choice."""
    return {
        "StartAt": "Enrich",
        "States": {
            "Enrich": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                "ResultSelector": {"function.$": "$.Payload.functionName"},
                "ResultPath": "$.enriched",
                "Next": "Save",
            },
            "Save": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {
                    "TableName": table,
                    "Item": {"id": {"S.$": "$.id"}, "by": {"S.$": "$.enriched.function"}},
                },
                "ResultPath": None,
                "Next": "Big?",
            },
            "Big?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.size", "NumericGreaterThan": 10, "Next": "Big"}],
                "Default": "Small",
            },
            "Big": {"Type": "Pass", "Result": "big", "End": True},
            "Small": {"Type": "Pass", "Result": "small", "End": True},
        },
    }


def _provision(endpoint: str) -> tuple[str, str]:
    """The user's own function and table; returns (function ARN, table name)."""
    suffix = uuid.uuid4().hex[:8]
    table = f"my-items-{suffix}"
    # As on AWS, a function needs a role Lambda can assume.
    role = _client(endpoint, "iam").create_role(
        RoleName=f"my-lambda-role-{suffix}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    _client(endpoint, "dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    function = _client(endpoint, "lambda").create_function(
        FunctionName=f"my-enrich-{suffix}",
        Runtime="python3.12",
        Role=role,
        # The server runs handlers in its own process: the module must be importable there.
        Handler="tests.local.fake_handlers.echo",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )
    return function["FunctionArn"], table


def test_a_user_state_machine_runs_beside_notiflows(server):  # noqa: F811
    # Given `local up` running Notiflow, and a user's own function, table and state machine on it
    endpoint, _, _ = server
    sfn = _client(endpoint, "stepfunctions")
    function_arn, table = _provision(endpoint)
    machine = sfn.create_state_machine(
        name=f"my-workflow-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(_user_definition(function_arn, table)),
        roleArn=ROLE,
    )["stateMachineArn"]

    # When the user runs it
    arn = sfn.start_execution(stateMachineArn=machine, name="first", input=json.dumps({"id": "a-1", "size": 12}))[
        "executionArn"
    ]
    result = finished_execution(sfn, arn, timeout=60)

    # Then it ran their Lambda, wrote their table and took their Choice, beside Notiflow's machine
    assert result.status == "SUCCEEDED", result.description
    assert result.output == "big"
    item = _client(endpoint, "dynamodb").get_item(TableName=table, Key={"id": {"S": "a-1"}})["Item"]
    assert item["by"]["S"] == function_arn.rsplit(":", 1)[-1]
    names = {m["name"] for m in sfn.list_state_machines()["stateMachines"]}
    assert "notiflow-delivery" in names
    assert machine.rsplit(":", 1)[-1] in names


@pytest.mark.skipif(not HAS_AWS_CLI, reason="the AWS CLI is not installed")
def test_the_aws_cli_creates_and_runs_a_user_state_machine(server, tmp_path):  # noqa: F811
    endpoint, _, _ = server
    aws = [AWS_CLI, "--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    definition = tmp_path / "workflow.asl.json"
    definition.write_text(
        json.dumps(
            {"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "Parameters": {"hi.$": "$.who"}, "End": True}}}
        )
    )

    def cli(*args: str) -> dict:
        done = subprocess.run([*aws, *args], capture_output=True, text=True, timeout=120, check=True, env=env)
        return json.loads(done.stdout)

    machine = cli(
        "stepfunctions",
        "create-state-machine",
        "--name",
        f"cli-workflow-{uuid.uuid4().hex[:8]}",
        "--definition",
        f"file://{definition}",
        "--role-arn",
        ROLE,
    )["stateMachineArn"]
    started = cli("stepfunctions", "start-execution", "--state-machine-arn", machine, "--input", '{"who": "me"}')
    result = finished_execution(_client(endpoint, "stepfunctions"), started["executionArn"], timeout=60)

    assert result.status == "SUCCEEDED"
    assert result.output == {"hi": "me"}
