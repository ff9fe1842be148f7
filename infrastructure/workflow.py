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
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infrastructure.functions import NotiflowFunction, retention
from infrastructure.nag import acknowledge
from infrastructure.spec import NotiflowSpec, Ref, pascal
from infrastructure.storage import Storage
from lambdas.shared.constants import STEP_DEDUPLICATE, STEP_DELIVER, WORKFLOW_STEPS
from workflows.definition import render_definition

STATE_MACHINE_WILDCARD_REASON: Final = (
    "CDK grants the state machine role the CloudWatch Logs vended-delivery actions (logs:CreateLogDelivery, "
    "GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, "
    "DescribeResourcePolicies, DescribeLogGroups) and X-Ray trace writes; these APIs take only Resource '*'."
)


class Workflow(Construct):
    """Validate, deduplicate, deliver and failure-gate Lambdas plus the state machine wired to them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: NotiflowSpec,
        storage: Storage,
        code: lambda_.Code,
    ) -> None:
        super().__init__(scope, construct_id)
        table = storage.table
        refs = {Ref.TABLE_NAME: table.table_name, Ref.SIGNING_SECRET_ARN: storage.signing_secret.secret_arn}
        self.functions: dict[str, NotiflowFunction] = {
            step: NotiflowFunction(
                self,
                pascal(step),
                spec=spec.function(step),
                code=code,
                log_retention_days=spec.log_retention_days,
                refs=refs,
            )
            for step in WORKFLOW_STEPS
        }
        for step in (STEP_DEDUPLICATE, STEP_DELIVER):
            self.functions[step].allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [table.table_arn])
        deliver = self.functions[STEP_DELIVER]
        deliver.allow(["secretsmanager:GetSecretValue"], [storage.signing_secret.secret_arn])
        deliver.node.add_dependency(storage.signing_key)

        machine = spec.state_machine
        arns = {step: fn.function.function_arn for step, fn in self.functions.items()}
        self.definition = render_definition(machine.substitutions(arns, table.table_name), machine.retry_policy)

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=machine.log_group,
            retention=retention(spec.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=machine.name,
            state_machine_type=sfn.StateMachineType(machine.type),
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
