"""Intake: the queue internal systems write to, its dead-letter queue, and the ingest Lambda.

The ingest Lambda reports batch item failures, so one bad message is retried alone and, after
``maxReceiveCount`` receives, parked on the DLQ while the rest of its batch goes through.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infrastructure.config import NotiflowConfig
from infrastructure.functions import LambdaPackage, NotiflowFunction
from lambdas.shared.constants import DEFAULT_DLQ_NAME, DEFAULT_QUEUE_NAME, STEP_INGEST, EnvVar

INGEST_TIMEOUT: Final = cdk.Duration.seconds(30)
VISIBILITY_TIMEOUT: Final = cdk.Duration.seconds(6 * 30)
"""Six times the ingest timeout, as AWS recommends for a queue that triggers a Lambda."""


class Intake(Construct):
    """SQS queue with an encrypted, SSL-only DLQ, consumed by the ingest Lambda."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: NotiflowConfig,
        package: LambdaPackage,
        state_machine: sfn.IStateMachine,
        table_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=DEFAULT_DLQ_NAME,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=DEFAULT_QUEUE_NAME,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=VISIBILITY_TIMEOUT,
            retention_period=cdk.Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=config.max_receive_count
            ),
        )
        self.ingest = NotiflowFunction(
            self,
            "Ingest",
            step=STEP_INGEST,
            package=package,
            config=config,
            environment={EnvVar.STATE_MACHINE_ARN: state_machine.state_machine_arn, EnvVar.TABLE_NAME: table_name},
            timeout=INGEST_TIMEOUT,
            description="Notiflow: starts one delivery run per queued notification",
        )
        self.ingest.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue, batch_size=config.ingest_batch_size, report_batch_item_failures=True
            )
        )
        state_machine.grant_start_execution(self.ingest.role)
