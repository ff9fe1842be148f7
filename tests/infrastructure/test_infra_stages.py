"""One stack per stage: two stages synthesized side by side share no physical name."""

from __future__ import annotations

from typing import Any

import pytest

from infrastructure.config import ContextError, NotiflowConfig
from lambdas.shared.constants import EnvVar
from tests.infrastructure.conftest import Synthesized, synthesize_notiflow

NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Events::Rule": "Name",
    "AWS::SNS::Topic": "TopicName",
}
"""Every resource type whose physical name is account-and-region wide, and the property that names it."""
DEV_TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:dev-alarms"


def physical_names(stack: Synthesized) -> dict[str, str]:
    """Physical name -> resource type, for every resource given a fixed name."""
    names = {}
    for resource in stack.raw["Resources"].values():
        prop = NAME_PROPERTIES.get(resource["Type"])
        if prop and prop in resource.get("Properties", {}):
            names[resource["Properties"][prop]] = resource["Type"]
    return names


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory, default_stack: Synthesized) -> dict[str, Synthesized]:
    return {
        "default": default_stack,
        "dev": synthesize_notiflow(
            tmp_path_factory.mktemp("cdk-dev"), {"stage": "dev", "alarmTopicArn": DEV_TOPIC_ARN}
        ),
        "prod": synthesize_notiflow(
            tmp_path_factory.mktemp("cdk-prod"), {"stage": "prod", "alarmEmail": "oncall@example.com"}
        ),
    }


def test_each_stage_is_its_own_cloudformation_stack(stages):
    # Given the default deployment and two stages
    # When their stacks are synthesized
    # Then each is a stack of its own name
    assert list(stages["default"].report.templates) == ["Notiflow"]
    assert list(stages["dev"].report.templates) == ["Notiflow-dev"]
    assert list(stages["prod"].report.templates) == ["Notiflow-prod"]
    # And each is cdk-nag clean
    assert all(stack.report.ok for stack in stages.values()), [s.report.findings for s in stages.values()]


def test_two_stages_and_the_default_share_no_physical_name(stages):
    # Given the physical names of every stage
    named = {stage: physical_names(stack) for stage, stack in stages.items()}
    # When they are compared
    # Then no name is used twice in one account and region
    for first in named:
        for second in named:
            if first < second:
                assert set(named[first]).isdisjoint(named[second]), (first, second)
    # And a stage prefixes every fixed name (after /aws/... for log groups)
    for stage in ("dev", "prod"):
        assert all(f"notiflow-{stage}" in name for name in named[stage]), named[stage]
    # And the names cover every kind the stack fixes a name for
    kinds = set(named["dev"].values())
    assert {
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::StepFunctions::StateMachine",
        "AWS::Lambda::Function",
        "AWS::Logs::LogGroup",
        "AWS::SecretsManager::Secret",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::Events::Rule",
    } <= kinds


def test_a_stage_names_its_functions_settings_and_workflows_after_itself(stages):
    # Given the dev stage
    stack = stages["dev"]
    machines = {
        res["Properties"]["StateMachineName"]: res
        for res in stack.resources("AWS::StepFunctions::StateMachine").values()
    }
    # When the function environments and the Express definition are read
    functions = stack.resources("AWS::Lambda::Function").values()
    services = {
        f["Properties"]["Environment"]["Variables"][EnvVar.POWERTOOLS_SERVICE_NAME]
        for f in functions
        if "Environment" in f["Properties"]
    }
    express: Any = machines["notiflow-dev-fast-path"]["Properties"]["DefinitionString"]
    # Then their metrics carry the stage's service dimension and the fast path hands over to this stage's run
    assert services == {"notiflow-dev"}
    assert set(machines) == {"notiflow-dev-delivery", "notiflow-dev-fast-path"}
    assert "notiflow-dev-delivery" in repr(express)
    assert "notiflow-delivery" not in repr(express).replace("notiflow-dev-delivery", "")
    # And the stack is tagged with its stage
    tags = stack.resources("AWS::SQS::Queue").popitem()[1]["Properties"]["Tags"]
    assert {"Key": "stage", "Value": "dev"} in tags


@pytest.mark.parametrize("stage", ["Prod", "a_b", "-x", "x-", "a--b", "9lives", "a" * 17])
def test_a_stage_that_cannot_prefix_every_name_is_refused(stage):
    # Given a stage name some resource could not carry (or that would read ambiguously)
    # When the context is parsed
    # Then synthesis stops naming the key
    with pytest.raises(ContextError, match="stage"):
        NotiflowConfig.from_context({"stage": stage}.get)


def test_a_valid_stage_prefixes_and_a_blank_one_is_the_default():
    assert NotiflowConfig.from_context({"stage": "eu-test2"}.get).prefix == "notiflow-eu-test2"
    assert NotiflowConfig.from_context({"stage": ""}.get).prefix == "notiflow"


def test_an_existing_topic_alone_gets_every_alarm_and_no_topic_is_created(stages):
    # Given the dev stage, deployed with alarmTopicArn and no alarmEmail
    stack = stages["dev"]
    # When its topics and alarm actions are read
    alarms = list(stack.resources("AWS::CloudWatch::Alarm").values())
    # Then no topic is created and every alarm, and its recovery, notifies the existing topic
    assert stack.resources("AWS::SNS::Topic") == {}
    assert "AlarmTopicArn" not in stack.raw["Outputs"]
    assert alarms
    assert all(a["Properties"]["AlarmActions"] == [DEV_TOPIC_ARN] for a in alarms)
    assert all(a["Properties"]["OKActions"] == [DEV_TOPIC_ARN] for a in alarms)
