"""Intake: the queue internal systems write to, its dead-letter queue, and the ingest Lambda.

The ingest Lambda reports batch item failures, so one bad message is retried alone and, after
``maxReceiveCount`` receives, parked on the DLQ while the rest of its batch goes through. The trigger's
maximum concurrency (``ingestMaxConcurrency``) is the back-pressure: a burst waits on the queue
instead of scaling ingest, and every Express run and step Lambda behind it, toward the account's quota. It may start
exactly the workflow the delivery mode names: StartSyncExecution on the Express machine (fast path)
or StartExecution on the Standard one, nothing else.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infrastructure.functions import NotiflowFunction
from infrastructure.spec import NotiflowSpec, Ref
from lambdas.shared.constants import STEP_INGEST, DeliveryMode


class Intake(Construct):
    """SQS queue with an encrypted, SSL-only DLQ, consumed by the ingest Lambda."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: NotiflowSpec,
        code: lambda_.Code,
        state_machine: sfn.IStateMachine,
        fast_path: sfn.IStateMachine,
        table_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        intake = spec.intake
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=intake.dead_letter_queue_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.seconds(intake.dead_letter_retention_seconds),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=intake.queue_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(intake.visibility_timeout_seconds),
            retention_period=cdk.Duration.seconds(intake.retention_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=intake.max_receive_count
            ),
        )
        self.ingest = NotiflowFunction(
            self,
            "Ingest",
            spec=spec.function(STEP_INGEST),
            code=code,
            log_retention_days=spec.log_retention_days,
            refs={
                Ref.STATE_MACHINE_ARN: state_machine.state_machine_arn,
                Ref.FAST_PATH_STATE_MACHINE_ARN: fast_path.state_machine_arn,
                Ref.TABLE_NAME: table_name,
            },
        )
        self.ingest.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=intake.batch_size,
                max_concurrency=intake.max_concurrency,
                report_batch_item_failures=True,
            )
        )
        if spec.delivery_mode is DeliveryMode.FAST_PATH:
            self.ingest.allow(["states:StartSyncExecution"], [fast_path.state_machine_arn])
        else:
            self.ingest.allow(["states:StartExecution"], [state_machine.state_machine_arn])
