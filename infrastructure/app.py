"""CDK app entry point (``cdk.json``: ``python -m infrastructure.app``).

``build`` is shared with ``infrastructure.synth`` and the tests, so the CLI, the offline check and
the assertions all synthesize the same stack with the same checks.
"""

from __future__ import annotations

import sys

import aws_cdk as cdk

from infrastructure.config import STACK_NAME, ContextError, NotiflowConfig, stack_name
from infrastructure.nag import apply_checks
from infrastructure.stack import NotiflowStack

__all__ = ["STACK_NAME", "build", "main"]


def build(app: cdk.App) -> NotiflowStack:
    """Parse the context once, add the stack and the cdk-nag AwsSolutions checks to ``app``."""
    config = NotiflowConfig.from_context(app.node.try_get_context, app.node.get_all_context().keys())
    stack = NotiflowStack(
        app,
        stack_name(config.stage),
        config=config,
        description="Notiflow: reliable HTTP notification delivery on AWS Step Functions",
        analytics_reporting=False,
    )
    apply_checks(app)
    return stack


def main() -> int:
    """Synthesize for the CDK CLI, which passes the context and the output directory."""
    app = cdk.App()
    try:
        build(app)
    except ContextError as exc:
        print(exc, file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
