"""Synthesize the Notiflow stack once per session and share the result with every infrastructure test.

Bundling is skipped (``aws:cdk:bundling-stacks`` empty: no pip, no network); everything else,
cdk-nag included, runs exactly as in ``make synth``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The infrastructure package is imported before aws_cdk starts its Node process (see its __init__).
from infrastructure.app import build
from infrastructure.config import stack_name
from infrastructure.synth import SynthReport, load_context, synthesize

if TYPE_CHECKING:
    from aws_cdk.assertions import Template

EXISTING_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:oncall-pager"
CUSTOM_CONTEXT = {
    "deliveryMode": "standard",
    "fastPathRetries": "1",
    "expressLogLevel": "ALL",
    "hostMaxInFlight": "4",
    "hostLimits": "hooks.example.com=2",
    "alarmEmail": "oncall@example.com",
    "alarmTopicArn": EXISTING_TOPIC_ARN,
    "retryIntervalSeconds": "10",
    "retryMaxAttempts": "4",
    "retryBackoffRate": "3",
    "retryMaxDelaySeconds": "600",
    "allowPrivateTargets": "true",
    "allowedTargetHosts": "hooks.example.com, api.example.org",
    "readTimeoutSeconds": "20",
    "retainData": "false",
    "maxReceiveCount": "3",
    "ingestBatchSize": "5",
    "ingestMaxConcurrency": "7",
    "logRetentionDays": "90",
}


@dataclass(frozen=True)
class Synthesized:
    """One synthesized app: the check report, the raw template and an assertions view of it."""

    report: SynthReport
    template_path: Path
    raw: dict[str, Any]
    template: Template

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resource, for one CloudFormation type."""
        return {lid: res for lid, res in self.raw["Resources"].items() if res["Type"] == resource_type}


def synthesize_notiflow(outdir: Path, overrides: dict[str, str] | None = None) -> Synthesized:
    """Build and synthesize the app the way ``make synth --skip-bundling`` does."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    context = load_context(overrides)
    context["aws:cdk:bundling-stacks"] = []
    app = cdk.App(outdir=str(outdir), context=context)
    build(app)
    report = synthesize(app)
    path = report.templates[stack_name((overrides or {}).get("stage") or None)]
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Synthesized(report=report, template_path=path, raw=raw, template=Template.from_json(raw))


@pytest.fixture(scope="session")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize_notiflow(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def custom_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize_notiflow(tmp_path_factory.mktemp("cdk-custom"), CUSTOM_CONTEXT)
