"""State that outlives a run: the notifications table, the per-host delivery slots and the signing secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infrastructure import signing_key_handler
from infrastructure.config import NotiflowConfig
from infrastructure.functions import architecture, retention, runtime
from infrastructure.nag import acknowledge
from infrastructure.spec import ARCHITECTURE, RUNTIME, NotiflowSpec

NO_ROTATION_REASON: Final = (
    "The Standard Webhooks key is shared with every receiver, which verify signatures with it; an automatic "
    "rotation would break verification everywhere at once. Rotation is a coordinated, manual step "
    "(docs/deploy.md, 'Rotating the signing key')."
)
GENERATOR_RUNTIME_REASON: Final = (
    "The key generator runs on the same pinned python3.13 as the Notiflow functions, so one runtime is reviewed "
    "and upgraded for the whole stack; it runs once per deployment and uses only the standard library and boto3."
)


def _table(
    scope: Construct, construct_id: str, name: str, partition_key: str, ttl_attribute: str, **options: Any
) -> dynamodb.Table:
    """An on-demand, encrypted, recoverable table keyed by one string, its items expired by TTL."""
    return dynamodb.Table(
        scope,
        construct_id,
        table_name=name,
        partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=ttl_attribute,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        **options,
    )


class Storage(Construct):
    """The DynamoDB table (one record per notification) and the Secrets Manager signing secret."""

    def __init__(self, scope: Construct, construct_id: str, *, config: NotiflowConfig, spec: NotiflowSpec) -> None:
        super().__init__(scope, construct_id)
        removal = cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY
        self.table = _table(
            self,
            "Notifications",
            spec.table.name,
            spec.table.partition_key,
            spec.table.ttl_attribute,
            deletion_protection=config.retain_data,
            removal_policy=removal,
        )
        index = spec.table.ops_index
        self.table.add_global_secondary_index(
            index_name=index.name,
            partition_key=dynamodb.Attribute(name=index.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=index.sort_key, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(index.projected),
        )
        # Slots live for one attempt at most: nothing to keep when the stack goes.
        self.host_leases = _table(
            self,
            "HostLeases",
            spec.host_leases.name,
            spec.host_leases.partition_key,
            spec.host_leases.ttl_attribute,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.signing_secret = secretsmanager.Secret(
            self,
            "SigningSecret",
            secret_name=spec.names.signing_secret,
            description="Notiflow Standard Webhooks signing key (whsec_ + base64 of 32 random bytes)",
            removal_policy=removal,
        )
        acknowledge(self.signing_secret, "AwsSolutions-SMG4", NO_ROTATION_REASON)
        self.signing_key = SigningKey(self, "SigningKey", secret=self.signing_secret, config=config)


class SigningKey(Construct):
    """Writes the first key into the secret at deploy time, so it never appears in the template or cdk.out."""

    def __init__(
        self, scope: Construct, construct_id: str, *, secret: secretsmanager.ISecret, config: NotiflowConfig
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(
            self, "Logs", retention=retention(config.log_retention_days), removal_policy=cdk.RemovalPolicy.DESTROY
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Notiflow signing key generator: put the first key into the signing secret",
        )
        log_group.grant_write(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["secretsmanager:PutSecretValue"], resources=[secret.secret_arn])
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="Notiflow: writes a fresh Standard Webhooks key into the signing secret on create",
            runtime=runtime(RUNTIME),
            architecture=architecture(ARCHITECTURE),
            handler="index.handler",
            code=lambda_.Code.from_inline(Path(signing_key_handler.__file__).read_text(encoding="utf-8")),
            role=role,
            log_group=log_group,
            timeout=cdk.Duration.seconds(60),
        )
        acknowledge(self.function, "AwsSolutions-L1", GENERATOR_RUNTIME_REASON)
        self.resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=self.function.function_arn,
            resource_type="Custom::NotiflowSigningKey",
            properties={"SecretId": secret.secret_arn},
        )
