"""Bounded memory: runs beyond the retention are evicted like expired runs on AWS; moto tracks no Items or Messages."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from notiflow.local.engine import retention
from notiflow.local.fixtures import finished_execution, stack_settings_for_tests
from notiflow.local.stack import StackSettings
from notiflow.shared.waiting import wait_until
from tests.local.helpers import create_state_machine, start

RETENTION = 5


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    # No cap on waits, so a run can be held in a Wait state (100,000 s last 10 s at the test scale).
    return stack_settings_for_tests(execution_retention=RETENTION, start_poller=False, max_wait_seconds=None)


def _recording_machine(stack) -> str:
    """A machine whose run writes one record named after the execution."""
    return create_state_machine(
        stack,
        {
            "StartAt": "Record",
            "States": {
                "Record": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::dynamodb:putItem",
                    "Parameters": {
                        "TableName": stack.table_name,
                        "Item": {"notificationId": {"S.$": "$$.Execution.Name"}, "probe": {"S": "retention"}},
                    },
                    "End": True,
                }
            },
        },
    )


def _missing(call) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"] == "ExecutionDoesNotExist"
    return False


def test_runs_beyond_the_retention_are_evicted_but_their_records_stay(local_stack):
    # Given eight runs, one after the other, with five kept
    sfn = local_stack.client("stepfunctions")
    machine = _recording_machine(local_stack)
    names = [f"kept-or-not-{index}" for index in range(8)]
    arns = []
    for name in names:
        arn = start(local_stack, machine, name=name)
        assert finished_execution(sfn, arn).status == "SUCCEEDED"
        arns.append(arn)

    # When the oldest three have been evicted
    wait_until(
        lambda: [_missing(lambda arn=arn: sfn.describe_execution(executionArn=arn)) for arn in arns],
        lambda missing: missing == [True] * 3 + [False] * 5,
        timeout=10,
        describe="the three oldest runs to be evicted",
    )

    # Then they answer like unknown runs, ListExecutions has the five most recent, and every record stays
    assert _missing(lambda: sfn.get_execution_history(executionArn=arns[0]))
    listed = [execution["name"] for execution in sfn.list_executions(stateMachineArn=machine)["executions"]]
    assert sorted(listed) == sorted(names[3:])
    dynamodb = local_stack.client("dynamodb")
    for name in names:
        item = dynamodb.get_item(TableName=local_stack.table_name, Key={"notificationId": {"S": name}})["Item"]
        assert item["probe"] == {"S": "retention"}
    assert retention.evicted_count() >= 3

    # And an evicted run's name can start a new run, as after AWS's retention period
    again = start(local_stack, machine, name=names[0])
    assert finished_execution(sfn, again).status == "SUCCEEDED"


def test_a_running_run_is_never_evicted(local_stack):
    # Given a run parked in a long Wait, then more finished runs than the retention keeps
    sfn = local_stack.client("stepfunctions")
    waiting_machine = create_state_machine(
        local_stack, {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 100_000, "End": True}}}
    )
    waiting = start(local_stack, waiting_machine)
    machine = _recording_machine(local_stack)
    for _ in range(RETENTION + 2):
        assert finished_execution(sfn, start(local_stack, machine)).status == "SUCCEEDED"

    # Then the waiting run is still there and still running
    assert sfn.describe_execution(executionArn=waiting)["status"] == "RUNNING"
    sfn.stop_execution(executionArn=waiting)
    assert finished_execution(sfn, waiting).status == "ABORTED"


def test_moto_keeps_no_dynamodb_item_or_sqs_message_it_built(local_stack):
    from moto.dynamodb.models.dynamo_type import Item
    from moto.sqs.models import Message

    # Given the number of Items and Messages moto tracks
    items_before, messages_before = len(Item.instances_tracked), len(Message.instances_tracked)
    dynamodb, sqs = local_stack.client("dynamodb"), local_stack.client("sqs")

    # When records are written and scanned, and messages sent and received
    for index in range(20):
        dynamodb.put_item(TableName=local_stack.table_name, Item={"notificationId": {"S": f"tracked-{index}"}})
    for _ in range(3):
        assert dynamodb.scan(TableName=local_stack.table_name)["Count"] >= 20
    queue = sqs.create_queue(QueueName="untracked-probe")["QueueUrl"]
    for index in range(10):
        sqs.send_message(QueueUrl=queue, MessageBody=str(index))
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert received

    # Then moto tracks none of them
    assert len(Item.instances_tracked) == items_before
    assert len(Message.instances_tracked) == messages_before
