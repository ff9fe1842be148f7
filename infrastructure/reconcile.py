"""The reconciler: an EventBridge rule on the state machine's status changes, its Lambda and their DLQ.

Runs that stop outside the workflow's own writes (stopped, timed out, an error no Catch handles) would
leave their record PROCESSING for ever; the rule sends their status changes, and the RUNNING changes of
redrives, to the reconcile function (``lambdas/reconcile``). The function may read and update the table and read
the runs of this one state machine (DescribeExecution for the input and error when an event lacks them,
GetExecutionHistory for the state the run stopped in), nothing else. Events EventBridge could not deliver
and invocations that failed after Lambda's own retries land on an encrypted, SSL-only queue.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infrastructure.functions import NotiflowFunction
from infrastructure.nag import acknowledge
from infrastructure.spec import NotiflowSpec, Ref

EXECUTIONS_WILDCARD_REASON: Final = (
    "Step Functions names each execution at run time, so reading runs is granted on the executions of this one "
    "state machine (execution:<machine>:*), the narrowest resource DescribeExecution and GetExecutionHistory take."
)
DLQ_REASON: Final = (
    "This queue is itself the dead-letter queue of the reconciler's rule target and of its asynchronous "
    "invocations; a dead-letter queue of a dead-letter queue would only move the same messages once more."
)
TARGET_RETRY_ATTEMPTS: Final = 8
MAX_EVENT_AGE: Final = cdk.Duration.hours(6)


class Reconciler(Construct):
    """Rule -> reconcile function, least privilege, with a DLQ for what could not be handled."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: NotiflowSpec,
        code: lambda_.Code,
        table: dynamodb.ITable,
        state_machine: sfn.IStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        reconciler = spec.reconciler
        self.function = NotiflowFunction(
            self,
            "Function",
            spec=reconciler.function,
            code=code,
            log_retention_days=spec.log_retention_days,
            refs={Ref.TABLE_NAME: table.table_name},
        )
        self.function.allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [table.table_arn])
        executions = cdk.Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{spec.state_machine.name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.function.allow(["states:DescribeExecution", "states:GetExecutionHistory"], [executions])
        pseudo = "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>"
        finding = f"Resource::{pseudo}:execution:{spec.state_machine.name}:*"
        acknowledge(self.function.role, f"AwsSolutions-IAM5[{finding}]", EXECUTIONS_WILDCARD_REASON)

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=reconciler.dead_letter_queue_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.seconds(reconciler.dead_letter_retention_seconds),
        )
        acknowledge(self.dead_letter_queue, "AwsSolutions-SQS3", DLQ_REASON)
        self.function.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letter_queue), retry_attempts=2
        )

        pattern = reconciler.event_pattern(state_machine.state_machine_arn)
        self.rule = events.Rule(
            self,
            "Rule",
            rule_name=reconciler.rule_name,
            description="Notiflow: run status changes the reconciler closes or reopens records for",
            event_pattern=events.EventPattern(
                source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                self.function.function,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=TARGET_RETRY_ATTEMPTS,
                max_event_age=MAX_EVENT_AGE,
            )
        )
