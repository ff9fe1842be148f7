"""The reconciler on the embedded stack: the EventBridge rule to its function (made with the others), from the spec.

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
    spec: NotiflowSpec, events_client: Any, *, function_arn: str, state_machine_arn: str
) -> LocalReconciler:
    """Create the rule that sends the state machine's status changes to the reconcile function (made by the stack
    with the other functions)."""
    rule_arn = events_client.put_rule(
        Name=spec.reconciler.rule_name,
        EventPattern=json.dumps(spec.reconciler.event_pattern(state_machine_arn)),
        State="ENABLED",
        Description="Notiflow: run status changes the reconciler closes or reopens records for",
    )["RuleArn"]
    events_client.put_targets(Rule=spec.reconciler.rule_name, Targets=[{"Id": TARGET_ID, "Arn": function_arn}])
    return LocalReconciler(function_arn=function_arn, rule_arn=rule_arn)
