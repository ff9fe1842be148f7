"""One Lambda step as a construct: shared code and layer, its own role, log group and environment.

Each function gets a role of its own (no AWS managed policy) that can write only to its own log
group; what a step may touch beyond that is granted by the construct that wires it up.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infrastructure.bundling import ARCHITECTURE, RUNTIME, LocalPipBundling, lambda_code
from infrastructure.config import NotiflowConfig
from infrastructure.nag import acknowledge
from lambdas.shared.constants import SERVICE_NAME, handler_path

RUNTIME_PIN_REASON: Final = (
    "python3.13 is pinned on purpose: the AWS-managed Powertools layer (python313 build) and the wheels "
    "bundled by pip are chosen for exactly this runtime, so moving up is one deliberate change of all three."
)
XRAY_WILDCARD_REASON: Final = (
    "Active tracing makes CDK grant xray:PutTraceSegments and xray:PutTelemetryRecords; X-Ray supports no "
    "resource-level permissions for them, so AWS documents Resource '*'."
)
_RETENTION: Final = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    """The CloudWatch Logs retention for a number of days the config has already validated."""
    return _RETENTION[days]


def pascal(step: str) -> str:
    """``failure_gate`` -> ``FailureGate``: construct ids and ASL placeholder names."""
    return "".join(part.capitalize() for part in step.split("_"))


def function_name(step: str) -> str:
    """Physical function name, e.g. ``notiflow-failure-gate``: predictable for the console and the CLI."""
    return f"{SERVICE_NAME}-{step.replace('_', '-')}"


class LambdaPackage(Construct):
    """What every Notiflow function shares: one code asset and the AWS-managed Powertools layer."""

    def __init__(self, scope: Construct, construct_id: str, *, config: NotiflowConfig) -> None:
        super().__init__(scope, construct_id)
        self.code = lambda_code(LocalPipBundling())
        self.powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", config.layer_arn(cdk.Stack.of(self).region)
        )


class NotiflowFunction(Construct):
    """A Notiflow step: handler ``lambdas.<step>.handler.lambda_handler``, traced, logging to its own group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        step: str,
        package: LambdaPackage,
        config: NotiflowConfig,
        environment: dict[str, str],
        timeout: cdk.Duration,
        description: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.step = step
        name = function_name(step)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=retention(config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Notiflow {step} Lambda: its own log group plus what this step touches",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler_path(step),
            code=package.code,
            layers=[package.powertools],
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            memory_size=256,
            timeout=timeout,
            environment={**config.settings_environment(), **environment},
        )
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::*]", XRAY_WILDCARD_REASON)
        acknowledge(self.function, "AwsSolutions-L1", RUNTIME_PIN_REASON)

    def allow(self, actions: list[str], resources: list[str]) -> None:
        """Grant exactly these actions on exactly these resources, nothing implied."""
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))
