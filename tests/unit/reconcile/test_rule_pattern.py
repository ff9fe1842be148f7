"""The reconciler's EventBridge pattern, matched by moto's EventBridge: what invokes the function and what not."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infrastructure.config import NotiflowConfig
from infrastructure.spec import build_spec

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:notiflow-delivery"
OTHER_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:someone-else"


def detail(status: str, *, machine: str = MACHINE, redrive_count: int | None = 0, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "executionArn": machine.replace(":stateMachine:", ":execution:") + ":n-1",
        "stateMachineArn": machine,
        "name": "n-1",
        "status": status,
        "startDate": 1796075000000,
        "input": "{}",
        **extra,
    }
    if redrive_count is not None:
        body["redriveCount"] = redrive_count
    return body


@pytest.mark.parametrize(
    ("body", "delivered"),
    [
        (detail("ABORTED"), True),
        (detail("TIMED_OUT"), True),
        (detail("FAILED", error="States.Runtime"), True),
        (detail("FAILED", error="DeliveryPermanentError"), True),  # the function itself skips these, without a write
        (detail("RUNNING", redrive_count=1), True),
        (detail("RUNNING", redrive_count=0), False),  # every first start: never invokes the function
        (detail("RUNNING", redrive_count=None), False),
        (detail("SUCCEEDED", redrive_count=2), False),
        (detail("ABORTED", machine=OTHER_MACHINE), False),
    ],
)
def test_the_rule_selects_stopped_runs_and_redrives_of_its_own_machine(body: dict[str, Any], delivered: bool) -> None:
    with mock_aws():
        # Given the spec's rule on moto's default bus, its target a queue we can read
        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="observed")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        reconciler = build_spec(NotiflowConfig()).reconciler
        events.put_rule(Name=reconciler.rule_name, EventPattern=json.dumps(reconciler.event_pattern(MACHINE)))
        events.put_targets(Rule=reconciler.rule_name, Targets=[{"Id": "observed", "Arn": queue_arn}])

        # When Step Functions publishes the status change
        events.put_events(
            Entries=[
                {
                    "Source": "aws.states",
                    "DetailType": "Step Functions Execution Status Change",
                    "Detail": json.dumps(body),
                    "Resources": [body["executionArn"]],
                }
            ]
        )

        # Then it reaches the target exactly when the reconciler has something to do
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        assert len(received) == (1 if delivered else 0)
        if delivered:
            assert json.loads(received[0]["Body"])["detail"]["status"] == body["status"]
