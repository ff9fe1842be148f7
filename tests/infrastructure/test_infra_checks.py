"""The offline checks of ``make synth``: cdk-nag and cfn-lint pass, and they do fail on bad infrastructure."""

from __future__ import annotations

import json

import pytest

from infrastructure.nag import acknowledge, apply_checks
from infrastructure.synth import CFN_LINT_IGNORED, lint_template, main, synthesize

EXPECTED_ACKNOWLEDGEMENTS = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-L1",
    "AwsSolutions-SMG4",
    # the reconciler reads the runs of its state machine and owns the dead-letter queue of its rule
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:notiflow-delivery:*]",
    "AwsSolutions-SQS3",
}


def test_cdk_nag_reports_no_unacknowledged_finding(default_stack, custom_stack):
    # Given the default stack and one with every optional resource (alarm topic) switched on
    # When cdk-nag AwsSolutions ran during their synthesis
    # Then nothing is left unacknowledged
    assert default_stack.report.findings == []
    assert custom_stack.report.findings == []


def test_every_acknowledgement_is_one_of_the_reviewed_ones_and_carries_its_reason(custom_stack):
    # Given the acknowledgements cdk-nag copied into the template metadata
    acknowledged = [
        rule
        for res in custom_stack.raw["Resources"].values()
        for rule in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    # When they are listed
    # Then only the reviewed rules are acknowledged, each with a real sentence as its reason
    assert {rule["id"].removeprefix("Annotation::") for rule in acknowledged} == EXPECTED_ACKNOWLEDGEMENTS
    assert all(len(rule["reason"].split()) >= 10 for rule in acknowledged)


def test_only_an_express_log_level_below_all_is_acknowledged(default_stack, custom_stack):
    # Given the default stack (fast path logged at ERROR) and the custom one (expressLogLevel ALL)
    def rules(stack, machine: str) -> set[str]:
        (resource,) = [
            res
            for res in stack.resources("AWS::StepFunctions::StateMachine").values()
            if res["Properties"]["StateMachineName"] == machine
        ]
        return {rule["id"] for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])}

    # When the fast path's acknowledgements are read
    # Then "not logging ALL" is acknowledged (with its cost reason) only where it is true
    assert "AwsSolutions-SF1" in rules(default_stack, "notiflow-fast-path")
    assert "AwsSolutions-SF1" not in rules(custom_stack, "notiflow-fast-path")
    assert "AwsSolutions-SF1" not in rules(default_stack, "notiflow-delivery")


def test_an_acknowledgement_without_a_reason_is_refused():
    # Given a construct tree
    import aws_cdk as cdk

    stack = cdk.Stack(cdk.App(), "Probe")
    # When a finding is acknowledged without saying why
    # Then it is refused
    with pytest.raises(ValueError, match="written reason"):
        acknowledge(stack, "AwsSolutions-SQS3", "fine")


def test_cfn_lint_passes_on_the_synthesized_templates(default_stack, custom_stack):
    # Given both synthesized templates
    # When cfn-lint checks them in every lint region
    # Then it finds nothing, and every ignored rule says why
    assert lint_template(default_stack.template_path) == []
    assert lint_template(custom_stack.template_path) == []
    assert all(len(reason.split()) >= 10 for reason in CFN_LINT_IGNORED.values())


def test_cdk_nag_reports_a_noncompliant_resource(tmp_path):
    # Given an app with a queue that has neither a DLQ nor an SSL-only policy
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs

    app = cdk.App(outdir=str(tmp_path))
    sqs.Queue(cdk.Stack(app, "Probe"), "Plain")
    apply_checks(app)
    # When it is synthesized the way make synth does
    report = synthesize(app)
    # Then the findings name the rules and the resource, and the check fails
    assert not report.ok
    assert any("AwsSolutions-SQS3" in line and "Probe/Plain" in line for line in report.findings)
    assert any("AwsSolutions-SQS4" in line for line in report.findings)


def test_cfn_lint_reports_a_broken_template(tmp_path, default_stack):
    # Given the synthesized template with a typo in a queue property
    template = json.loads(default_stack.template_path.read_text(encoding="utf-8"))
    queue = next(res for res in template["Resources"].values() if res["Type"] == "AWS::SQS::Queue")
    queue["Properties"]["VisibilityTimeOut"] = queue["Properties"].pop("VisibilityTimeout", 30)
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps(template), encoding="utf-8")
    # When cfn-lint checks it
    findings = lint_template(broken)
    # Then the typo is reported
    assert any("VisibilityTimeOut" in line for line in findings)


def test_the_synth_command_rejects_invalid_context_before_synthesizing(tmp_path, capsys):
    # Given a read timeout the deliver state could not wait for
    # When make synth runs with it
    status = main(["--skip-bundling", "--outdir", str(tmp_path / "out"), "-c", "readTimeoutSeconds=200"])
    # Then it exits non-zero naming the key, and writes nothing
    assert status == 2
    assert "readTimeoutSeconds" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_the_synth_command_writes_the_assembly_and_exits_clean(tmp_path, capsys):
    # Given the default context and no network use (bundling skipped)
    outdir = tmp_path / "cdk.out"
    # When make synth's entry point runs
    status = main(["--skip-bundling", "--outdir", str(outdir)])
    # Then the template is written and both checks report clean
    assert status == 0
    assert (outdir / "Notiflow.template.json").is_file()
    assert "cdk-nag AwsSolutions and cfn-lint" in capsys.readouterr().out
