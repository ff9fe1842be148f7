"""One Lambda step as a construct, built from its :class:`infrastructure.spec.FunctionSpec`.

Each function gets a role of its own (no AWS managed policy) that can write only to its own log
group; what a step may touch beyond that is granted by the construct that wires it up. Runtime,
memory, timeout, names and environment all come from the spec the local stack reads too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infrastructure.nag import acknowledge
from infrastructure.spec import FunctionSpec, Ref

RUNTIME_PIN_REASON: Final = (
    "The runtime is pinned on purpose (infrastructure/spec.py): the wheels bundled into the asset, Powertools "
    "included, are chosen by pip for exactly this Python, so moving up is one deliberate change of both."
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


def runtime(name: str) -> lambda_.Runtime:
    """The CDK runtime object for a spec runtime name such as ``python3.13``."""
    found: lambda_.Runtime = getattr(lambda_.Runtime, "PYTHON_" + name.removeprefix("python").replace(".", "_"))
    return found


def architecture(name: str) -> lambda_.Architecture:
    """The CDK architecture object for a spec architecture name (``arm64`` or ``x86_64``)."""
    return {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}[name]


class NotiflowFunction(Construct):
    """A Notiflow step: its spec's handler, runtime and environment, traced, logging to its own group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        code: lambda_.Code,
        log_retention_days: int,
        refs: Mapping[Ref, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.step = spec.step
        self.spec = spec
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=spec.log_group,
            retention=retention(log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Notiflow {spec.step} Lambda: its own log group plus what this step touches",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=spec.name,
            description=spec.description,
            runtime=runtime(spec.runtime),
            architecture=architecture(spec.architecture),
            handler=spec.handler,
            code=code,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            memory_size=spec.memory_mb,
            timeout=cdk.Duration.seconds(spec.timeout_seconds),
            environment=spec.resolved_environment(refs.__getitem__),
        )
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::*]", XRAY_WILDCARD_REASON)
        acknowledge(self.function, "AwsSolutions-L1", RUNTIME_PIN_REASON)

    def allow(self, actions: list[str], resources: list[str]) -> None:
        """Grant exactly these actions on exactly these resources, nothing implied."""
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))
