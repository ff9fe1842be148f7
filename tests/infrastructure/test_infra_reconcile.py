"""The operator index and the reconciler, as the CDK app deploys them and as the embedded stack builds them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from infrastructure.config import NotiflowConfig
from infrastructure.spec import TargetPolicy, build_spec
from lambdas.shared.constants import STEP_RECONCILE, handler_path
from notiflow.local.stack import EmbeddedStack, StackSettings
from tests.infrastructure.test_infra_stack import (
    arn_of,
    function_for,
    granted,
    only,
    standard_machine,
    statements_of_role,
    table_id,
)


@pytest.fixture(scope="module")
def local() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(StackSettings(target_policy=TargetPolicy.PRODUCTION, start_poller=False)) as stack:
        yield stack


def test_the_table_carries_the_sparse_operator_index_on_both_platforms(default_stack, local) -> None:
    # Given the deployed table and the local one
    table = default_stack.resources("AWS::DynamoDB::Table")[table_id(default_stack)]
    described = local.client("dynamodb").describe_table(TableName=local.table_name)["Table"]
    # When their indexes are read
    deployed = table["Properties"]["GlobalSecondaryIndexes"]
    # Then both have exactly the spec's index: status and time keys, the list's attributes projected
    expected = local.spec.table.ops_index.request()
    assert deployed == [expected]
    assert [
        {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        for index in described["GlobalSecondaryIndexes"]
    ] == [expected]
    assert expected["KeySchema"] == [
        {"AttributeName": "opsStatus", "KeyType": "HASH"},
        {"AttributeName": "opsSince", "KeyType": "RANGE"},
    ]
    definitions = {d["AttributeName"]: d["AttributeType"] for d in table["Properties"]["AttributeDefinitions"]}
    assert definitions == {"notificationId": "S", "opsStatus": "S", "opsSince": "S"}


def test_the_rule_sends_this_machines_status_changes_to_the_reconciler_with_a_dlq(default_stack) -> None:
    # Given the rule, the state machine, the reconcile function and the queues
    _, rule = only(default_stack.resources("AWS::Events::Rule"))
    machine_id, _ = standard_machine(default_stack)
    function_id, function = function_for(default_stack, STEP_RECONCILE)
    props = rule["Properties"]
    # Then the pattern is the spec's, naming this state machine
    spec_pattern = json.loads(json.dumps(build_spec(NotiflowConfig()).reconciler.event_pattern("<machine>")))
    spec_pattern["detail"]["stateMachineArn"] = [{"Ref": machine_id}]
    assert props["EventPattern"] == spec_pattern
    # And the one target is the function, retried, with an SSL-only encrypted dead-letter queue
    (target,) = props["Targets"]
    assert target["Arn"] == arn_of(function_id)
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    dlq_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    dlq = default_stack.raw["Resources"][dlq_id]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True
    # And failed asynchronous invocations go to the same queue
    _, invoke_config = only(default_stack.resources("AWS::Lambda::EventInvokeConfig"))
    assert invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == arn_of(dlq_id)
    assert function["Properties"]["Handler"] == handler_path(STEP_RECONCILE)
    # And EventBridge may invoke the function
    permissions = [p["Properties"] for p in default_stack.resources("AWS::Lambda::Permission").values()]
    assert any(
        p["Principal"] == "events.amazonaws.com" and p["FunctionName"] == arn_of(function_id) for p in permissions
    )


def test_the_reconciler_may_read_and_update_items_and_read_only_its_machines_runs(default_stack) -> None:
    # Given the reconcile function's role
    _, function = function_for(default_stack, STEP_RECONCILE)
    statements = statements_of_role(default_stack, function["Properties"]["Role"])
    # Then it updates items of the one table, reads runs of the one state machine, and nothing more
    table = arn_of(table_id(default_stack))
    assert granted(statements, "dynamodb:") == [("dynamodb:GetItem", table), ("dynamodb:UpdateItem", table)]
    states = granted(statements, "states:")
    assert [action for action, _ in states] == ["states:DescribeExecution", "states:GetExecutionHistory"]
    for _, resource in states:
        joined = "".join(part if isinstance(part, str) else "" for part in resource["Fn::Join"][1])
        assert joined.endswith(":execution:notiflow-delivery:*")
    assert granted(statements, "lambda:") == []
    assert granted(statements, "secretsmanager:") == []
    assert {action for action, _ in granted(statements, "sqs:")} <= {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }


def test_the_local_stack_wires_the_same_function_and_rule(default_stack, local) -> None:
    # Given the local reconcile function and rule
    function = local.spec.reconciler.function
    configuration = local.client("lambda").get_function_configuration(FunctionName=function.name)
    _, deployed = function_for(default_stack, STEP_RECONCILE)
    # Then the function runs as deployed
    for key in ("Runtime", "MemorySize", "Timeout", "Handler", "Description"):
        assert configuration[key] == deployed["Properties"][key], key
    # And the rule has the spec's pattern for the local state machine, targeting that function
    events = local.client("events")
    rule = events.describe_rule(Name=local.spec.reconciler.rule_name)
    assert json.loads(rule["EventPattern"]) == local.spec.reconciler.event_pattern(local.state_machine_arn)
    targets = events.list_targets_by_rule(Rule=local.spec.reconciler.rule_name)["Targets"]
    assert [t["Arn"] for t in targets] == [configuration["FunctionArn"]]
