"""The delivery workflow: the four step Lambdas and the Standard state machine that runs them.

The definition is ``workflows/notification_delivery.asl.json`` rendered by
:func:`workflows.definition.render_definition` (ARNs and names substituted, the retry policy
optionally overridden) and kept inline as ``DefinitionString``, so what the local engine runs,
what linters read and what deploys are one text.

Execution logging is at level ALL without execution data: state inputs carry the notification,
whose target headers may hold receivers' bearer tokens and whose payload may hold personal data.
Those stay in the execution history (IAM-guarded, kept 90 days, where redrive works from) rather
than being copied into a log group with its own readers and retention.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infrastructure.config import NotiflowConfig
from infrastructure.functions import LambdaPackage, NotiflowFunction, pascal, retention
from infrastructure.nag import acknowledge
from infrastructure.storage import Storage
from lambdas.shared.constants import (
    DEFAULT_STATE_MACHINE_NAME,
    STEP_DEDUPLICATE,
    STEP_DELIVER,
    STEP_FAILURE_GATE,
    STEP_VALIDATE,
    WORKFLOW_STEPS,
    EnvVar,
)
from workflows.definition import render_definition

TABLE_PLACEHOLDER: Final = "NotificationsTableName"
STATE_MACHINE_WILDCARD_REASON: Final = (
    "CDK grants the state machine role the CloudWatch Logs vended-delivery actions (logs:CreateLogDelivery, "
    "GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, "
    "DescribeResourcePolicies, DescribeLogGroups) and X-Ray trace writes; these APIs take only Resource '*'."
)
_DESCRIPTIONS: Final = {
    STEP_VALIDATE: "Notiflow: checks the notification contract and the target URL policy",
    STEP_DEDUPLICATE: "Notiflow: claims the notification for this run with one conditional write",
    STEP_DELIVER: "Notiflow: one signed HTTP delivery attempt",
    STEP_FAILURE_GATE: "Notiflow: fails the run after a failed delivery, reopens it on redrive",
}
_SHORT_TIMEOUT: Final = cdk.Duration.seconds(15)


def placeholder_for(step: str) -> str:
    """The ASL placeholder of a step's function ARN, e.g. ``FailureGateFunctionArn``."""
    return f"{pascal(step)}FunctionArn"


class Workflow(Construct):
    """Validate, deduplicate, deliver and failure-gate Lambdas plus the state machine wired to them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: NotiflowConfig,
        storage: Storage,
        package: LambdaPackage,
    ) -> None:
        super().__init__(scope, construct_id)
        table = storage.table
        self.functions: dict[str, NotiflowFunction] = {}
        for step in WORKFLOW_STEPS:
            environment = {EnvVar.TABLE_NAME: table.table_name}
            timeout = _SHORT_TIMEOUT
            if step == STEP_DELIVER:
                environment[EnvVar.SIGNING_SECRET_ID] = storage.signing_secret.secret_arn
                timeout = cdk.Duration.seconds(config.deliver_timeout_seconds)
            self.functions[step] = NotiflowFunction(
                self,
                pascal(step),
                step=step,
                package=package,
                config=config,
                environment=environment,
                timeout=timeout,
                description=_DESCRIPTIONS[step],
            )
        for step in (STEP_DEDUPLICATE, STEP_DELIVER):
            self.functions[step].allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [table.table_arn])
        deliver = self.functions[STEP_DELIVER]
        deliver.allow(["secretsmanager:GetSecretValue"], [storage.signing_secret.secret_arn])
        deliver.node.add_dependency(storage.signing_key)

        substitutions = {placeholder_for(step): fn.function.function_arn for step, fn in self.functions.items()}
        substitutions[TABLE_PLACEHOLDER] = table.table_name
        self.definition = render_definition(substitutions, config.retry_policy())

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{DEFAULT_STATE_MACHINE_NAME}",
            retention=retention(config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=DEFAULT_STATE_MACHINE_NAME,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(self.definition),
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[fn.function.function_arn for fn in self.functions.values()],
            )
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:UpdateItem"], resources=[table.table_arn])
        )
        acknowledge(self.state_machine.role, "AwsSolutions-IAM5[Resource::*]", STATE_MACHINE_WILDCARD_REASON)
