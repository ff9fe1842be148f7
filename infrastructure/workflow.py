"""The delivery workflows: the four step Lambdas, the Standard state machine and the Express fast path.

Both definitions are the repository's ASL files rendered by the spec (``workflows/definition.py``:
ARNs and names substituted, the retry schedule, the quick retries and the claim lease written in)
and kept inline as ``DefinitionString``, so what the local engine runs, what linters read and what
deploys are one text. Both machines are deployed whatever the delivery mode; ingest starts the one
the mode names.

Standard execution logging is at level ALL without execution data: state inputs carry the
notification, whose target headers may hold receivers' bearer tokens and whose payload may hold
personal data. Those stay in the execution history (IAM-guarded, kept 90 days, where redrive
works from) rather than being copied into a log group with its own readers and retention. The
Express machine has no service-kept history: its log group is its only one, at a configurable
level (ERROR by default, so failed runs stay findable without paying to log every success), also
without execution data.

The Express role may invoke only the three steps it runs, update only the notifications table and
start executions of the Standard machine only.
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
from infrastructure.spec import FAST_PATH_STEPS, NotiflowSpec, Ref, pascal
from infrastructure.storage import Storage
from lambdas.shared.constants import STEP_DEDUPLICATE, STEP_DELIVER, WORKFLOW_STEPS

EXPRESS_LOG_LEVEL_REASON: Final = (
    "The fast path runs once per notification; logging every Express run at level ALL would bill CloudWatch Logs "
    "ingestion for every successful delivery. Its level is the expressLogLevel setting (ERROR by default): failed "
    "and timed-out runs stay findable, and everything after a hand-over is in the Standard run's history."
)
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
        refs = {
            Ref.TABLE_NAME: table.table_name,
            Ref.SIGNING_SECRET_ARN: storage.signing_secret.secret_arn,
            Ref.HOST_LEASES_TABLE_NAME: storage.host_leases.table_name,
        }
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
        deliver.allow(["dynamodb:UpdateItem"], [storage.host_leases.table_arn])
        deliver.node.add_dependency(storage.signing_key)

        machine = spec.state_machine
        arns = {step: fn.function.function_arn for step, fn in self.functions.items()}
        self.definition = machine.render(arns, table.table_name)

        self.log_group, self.state_machine = self._state_machine(
            "StateMachine",
            "Logs",
            name=machine.name,
            machine_type=machine.type,
            definition=self.definition,
            log_group_name=machine.log_group,
            log_level=machine.log_level,
            log_retention_days=spec.log_retention_days,
            invokes=list(self.functions),
            table_arn=table.table_arn,
        )

        # The Express machine names the Standard one by its predictable ARN (a token of the stack's
        # partition, region and account), and derives each hand-over's execution ARN from it.
        stack = cdk.Stack.of(self)
        standard_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=machine.name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        execution_prefix = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{machine.name}:",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        fast_path = spec.fast_path
        self.fast_path_definition = fast_path.render(arns, table.table_name, standard_arn, execution_prefix)
        self.fast_path_log_group, self.fast_path = self._state_machine(
            "FastPath",
            "FastPathLogs",
            name=fast_path.name,
            machine_type=fast_path.type,
            definition=self.fast_path_definition,
            log_group_name=fast_path.log_group,
            log_level=fast_path.log_level,
            log_retention_days=spec.log_retention_days,
            invokes=list(FAST_PATH_STEPS),
            table_arn=table.table_arn,
        )
        self.fast_path.node.add_dependency(self.state_machine)
        self.fast_path.add_to_role_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[self.state_machine.state_machine_arn])
        )
        if fast_path.log_level != "ALL":
            acknowledge(self.fast_path, "AwsSolutions-SF1", EXPRESS_LOG_LEVEL_REASON)

    def _state_machine(
        self,
        construct_id: str,
        log_group_id: str,
        *,
        name: str,
        machine_type: str,
        definition: str,
        log_group_name: str,
        log_level: str,
        log_retention_days: int,
        invokes: list[str],
        table_arn: str,
    ) -> tuple[logs.LogGroup, sfn.StateMachine]:
        """One state machine as both workflows are deployed: its own log group (no execution data), tracing on,
        allowed to invoke only the steps it runs and to update only the notifications table."""
        log_group = logs.LogGroup(
            self,
            log_group_id,
            log_group_name=log_group_name,
            retention=retention(log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        machine = sfn.StateMachine(
            self,
            construct_id,
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType(machine_type),
            definition_body=sfn.DefinitionBody.from_string(definition),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel(log_level), include_execution_data=False),
            tracing_enabled=True,
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[self.functions[step].function.function_arn for step in invokes],
            )
        )
        machine.add_to_role_policy(iam.PolicyStatement(actions=["dynamodb:UpdateItem"], resources=[table_arn]))
        acknowledge(machine.role, "AwsSolutions-IAM5[Resource::*]", STATE_MACHINE_WILDCARD_REASON)
        return log_group, machine
