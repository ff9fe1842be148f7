"""Which Notiflow deployment a command talks to: AWS (stack outputs) or the embedded stack (endpoint).

Both go through the same boto3 code path; only the endpoint and the way names are
found differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infrastructure.config import STACK_NAME, stage_prefix
from infrastructure.config import stack_name as stage_stack_name
from infrastructure.spec import Names
from notiflow.operate.runs import RunStore

DEFAULT_STACK_NAME = STACK_NAME
OUTPUT_KEYS = {"QueueUrl": "queue_url", "StateMachineArn": "state_machine_arn", "TableName": "table_name"}


class DeploymentNotFoundError(RuntimeError):
    """The command could not tell which queue, table or state machine to use."""


@dataclass
class Deployment:
    """Names and endpoint of one deployment."""

    region: str
    endpoint_url: str | None = None
    table_name: str | None = None
    state_machine_arn: str | None = None
    queue_url: str | None = None

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url)

    def store(self) -> RunStore:
        if not (self.table_name and self.state_machine_arn):
            raise DeploymentNotFoundError("table name and state machine ARN are unknown")
        return RunStore(self.client("dynamodb"), self.client("stepfunctions"), self.table_name, self.state_machine_arn)


def resolve(
    endpoint_url: str | None = None,
    region: str | None = None,
    stack_name: str | None = None,
    table_name: str | None = None,
    state_machine_arn: str | None = None,
    stage: str | None = None,
) -> Deployment:
    """Explicit values first, then the embedded stack's names (with an endpoint) or the stack's outputs.

    ``stage`` (or ``NOTIFLOW_STAGE``) picks one deployment among several: the stack ``Notiflow-<stage>``
    on AWS, the ``notiflow-<stage>-*`` names on an embedded stack. An explicit stack name wins.
    """
    stage = stage or os.environ.get("NOTIFLOW_STAGE") or None
    endpoint_url = endpoint_url or os.environ.get("NOTIFLOW_ENDPOINT_URL")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    deployment = Deployment(
        region=region,
        endpoint_url=endpoint_url,
        table_name=table_name,
        state_machine_arn=state_machine_arn,
    )
    if endpoint_url:
        if endpoint_url.startswith("http://127.0.0.1") or endpoint_url.startswith("http://localhost"):
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        _from_defaults(deployment, Names(prefix=stage_prefix(stage)))
    else:
        _from_stack(deployment, stack_name or os.environ.get("NOTIFLOW_STACK_NAME") or stage_stack_name(stage))
    return deployment


def _from_defaults(deployment: Deployment, names: Names) -> None:
    deployment.table_name = deployment.table_name or names.table
    if not deployment.state_machine_arn:
        machines = deployment.client("stepfunctions").list_state_machines()["stateMachines"]
        match = [m["stateMachineArn"] for m in machines if m["name"] == names.state_machine]
        if not match:
            raise DeploymentNotFoundError(f"no state machine named {names.state_machine} at {deployment.endpoint_url}")
        deployment.state_machine_arn = match[0]
    try:
        deployment.queue_url = deployment.client("sqs").get_queue_url(QueueName=names.queue)["QueueUrl"]
    except ClientError:  # the queue is optional for read-only commands
        deployment.queue_url = None


def _from_stack(deployment: Deployment, stack_name: str) -> None:
    if deployment.table_name and deployment.state_machine_arn:
        return
    stacks = deployment.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    for key, attribute in OUTPUT_KEYS.items():
        if key in outputs and not getattr(deployment, attribute):
            setattr(deployment, attribute, outputs[key])
    if not (deployment.table_name and deployment.state_machine_arn):
        raise DeploymentNotFoundError(f"stack {stack_name} has no TableName/StateMachineArn outputs")
