"""The Notiflow stack: storage, workflow, intake and observability, composed in dependency order."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infrastructure.bundling import lambda_code
from infrastructure.config import NotiflowConfig
from infrastructure.dashboard import Dashboard
from infrastructure.intake import Intake
from infrastructure.observability import Observability
from infrastructure.reconcile import Reconciler
from infrastructure.spec import build_spec
from infrastructure.storage import Storage
from infrastructure.workflow import Workflow
from lambdas.shared.constants import SERVICE_NAME


class NotiflowStack(cdk.Stack):
    """Everything Notiflow needs in one account and region (environment-agnostic: no lookups at synth)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: NotiflowConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.spec = spec = build_spec(config)
        self.storage = Storage(self, "Storage", config=config, spec=spec)
        code = lambda_code()
        self.workflow = Workflow(self, "Workflow", spec=spec, storage=self.storage, code=code)
        self.intake = Intake(
            self,
            "Intake",
            spec=spec,
            code=code,
            state_machine=self.workflow.state_machine,
            fast_path=self.workflow.fast_path,
            table_name=self.storage.table.table_name,
        )
        self.reconciler = Reconciler(
            self,
            "Reconciler",
            spec=spec,
            code=code,
            table=self.storage.table,
            state_machine=self.workflow.state_machine,
        )
        functions = [self.intake.ingest, *self.workflow.functions.values(), self.reconciler.function]
        self.observability = Observability(
            self,
            "Observability",
            config=config,
            spec=spec,
            workflow=self.workflow,
            intake=self.intake,
            reconciler=self.reconciler,
            functions=functions,
        )
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            spec=spec,
            workflow=self.workflow,
            intake=self.intake,
            functions=functions,
            queue_age_threshold_seconds=self.observability.queue_age_threshold_seconds,
        )
        cdk.Tags.of(self).add("project", SERVICE_NAME)
        if config.stage:
            cdk.Tags.of(self).add("stage", config.stage)

        cdk.CfnOutput(self, "QueueUrl", value=self.intake.queue.queue_url, description="Send notifications here")
        cdk.CfnOutput(
            self,
            "DeadLetterQueueUrl",
            value=self.intake.dead_letter_queue.queue_url,
            description="Messages ingest gave up on",
        )
        cdk.CfnOutput(self, "StateMachineArn", value=self.workflow.state_machine.state_machine_arn)
        cdk.CfnOutput(
            self,
            "FastPathStateMachineArn",
            value=self.workflow.fast_path.state_machine_arn,
            description="The Express workflow ingest runs in fast-path mode",
        )
        cdk.CfnOutput(self, "DeliveryMode", value=spec.delivery_mode.value)
        cdk.CfnOutput(
            self,
            "DashboardName",
            value=self.dashboard.dashboard.dashboard_name,
            description="CloudWatch dashboard: intake, deliveries by category, retries, failures, latency per host",
        )
        cdk.CfnOutput(self, "TableName", value=self.storage.table.table_name)
        cdk.CfnOutput(self, "HostLeasesTableName", value=self.storage.host_leases.table_name)
        cdk.CfnOutput(
            self,
            "SigningSecretArn",
            value=self.storage.signing_secret.secret_arn,
            description="Standard Webhooks key that receivers verify signatures with",
        )
        if self.observability.topic is not None:
            cdk.CfnOutput(
                self, "AlarmTopicArn", value=self.observability.topic.topic_arn, description="The alarmEmail topic"
            )
