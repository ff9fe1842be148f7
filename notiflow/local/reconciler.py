"""The reconciler on the embedded stack: its function and the EventBridge rule, from the same spec as on AWS.

The rule and target are created through moto's EventBridge API with the spec's pattern. The local engine
(:mod:`notiflow.local.engine.events`) sends every Standard run's AWS-shaped "Step Functions Execution Status
Change" event to the default bus's matching rules and invokes their Lambda targets in-process, asynchronously
and with Lambda's two retries, so the same handler runs on the same events as on AWS. One difference: a
delivery that still fails is counted and logged, not sent to the dead-letter queue the CDK app configures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infrastructure.spec import NotiflowSpec

TARGET_ID = "reconcile"


@dataclass(frozen=True)
class LocalReconciler:
    """What :func:`wire_reconciler` created."""

    function_arn: str
    rule_arn: str


def wire_reconciler(
    spec: NotiflowSpec,
    lambda_client: Any,
    events_client: Any,
    *,
    role_arn: str,
    code: bytes,
    environment: dict[str, str],
    state_machine_arn: str,
) -> LocalReconciler:
    """Create the reconcile function and the rule that sends the state machine's status changes to it."""
    function = spec.reconciler.function
    function_arn = lambda_client.create_function(
        FunctionName=function.name,
        Description=function.description,
        Runtime=function.runtime,
        Role=role_arn,
        Handler=function.handler,
        Code={"ZipFile": code},
        Timeout=function.timeout_seconds,
        MemorySize=function.memory_mb,
        Environment={"Variables": environment},
        Architectures=[function.architecture],
    )["FunctionArn"]
    rule_arn = events_client.put_rule(
        Name=spec.reconciler.rule_name,
        EventPattern=json.dumps(spec.reconciler.event_pattern(state_machine_arn)),
        State="ENABLED",
        Description="Notiflow: run status changes the reconciler closes or reopens records for",
    )["RuleArn"]
    events_client.put_targets(Rule=spec.reconciler.rule_name, Targets=[{"Id": TARGET_ID, "Arn": function_arn}])
    return LocalReconciler(function_arn=function_arn, rule_arn=rule_arn)
