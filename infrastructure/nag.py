"""cdk-nag wiring: the AwsSolutions pack as a validation plugin, and acknowledgements that carry a reason.

cdk-nag 3 runs as a CDK policy-validation plugin (``Validations.of(app).add_plugins``) instead of an
aspect, and findings are acknowledged with ``Validations.of(construct).acknowledge``. Every
acknowledgement in this app goes through :func:`acknowledge`, which refuses an empty reason.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def apply_checks(app: cdk.App) -> None:
    """Run AwsSolutionsChecks on every stack; reasons are copied into the template Metadata for audit."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding (e.g. ``AwsSolutions-IAM5[Resource::*]``) on a construct and its children."""
    if len(reason.split()) < 5:
        raise ValueError(f"acknowledging {rule_id} needs a written reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))
