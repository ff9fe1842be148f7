"""Step Functions Local mock configs behave as Step Functions Local's do, through boto3 and the AWS CLI."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from notiflow.local import engine
from notiflow.local.fixtures import finished_execution
from tests.local.helpers import create_function, create_state_machine
from tests.local.test_api_fidelity import AWS_CLI, HAS_AWS_CLI

POLL = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:comprehend:detectSentiment",
            "Parameters": {"Text": "how is it going", "LanguageCode": "en"},
            "ResultPath": "$.check",
            "Next": "Done?",
        },
        "Done?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.check.Sentiment", "StringEquals": "POSITIVE", "Next": "Finished"}],
            "Default": "Check",
        },
        "Finished": {"Type": "Pass", "Parameters": {"sentiment.$": "$.check.Sentiment"}, "End": True},
    },
}


@pytest.fixture
def mock_config() -> Iterator[dict]:
    """A mock config the test fills in; loaded for the test, cleared afterwards."""
    config: dict = {"StateMachines": {}, "MockedResponses": {}}
    yield config
    engine.set_mock_config(None)


def _machine(stack, config: dict, definition: dict, cases: dict, responses: dict) -> str:
    name = f"mocked-{uuid.uuid4().hex[:10]}"
    arn = create_state_machine(stack, definition, name=name)
    config["StateMachines"][name] = {"TestCases": cases}
    config["MockedResponses"].update(responses)
    engine.set_mock_config(config)
    return arn


def _run(stack, arn: str, test_case: str, execution_input: object = None):
    sfn = stack.client("stepfunctions")
    started = sfn.start_execution(
        stateMachineArn=f"{arn}#{test_case}", name=uuid.uuid4().hex, input=json.dumps(execution_input or {})
    )
    return finished_execution(sfn, started["executionArn"])


def test_a_state_revisited_through_a_choice_loop_takes_the_next_response(local_stack, mock_config):
    # Given a polling loop whose check answers NEUTRAL twice, then POSITIVE
    arn = _machine(
        local_stack,
        mock_config,
        POLL,
        {"Polls": {"Check": "PendingThenDone"}},
        {
            "PendingThenDone": {
                "0-1": {"Return": {"Sentiment": "NEUTRAL"}},
                "2": {"Return": {"Sentiment": "POSITIVE"}},
            }
        },
    )

    # When the test case runs
    result = _run(local_stack, arn, "Polls")

    # Then each pass through Check took the next response, and the loop ended
    assert result.status == "SUCCEEDED"
    assert result.output == {"sentiment": "POSITIVE"}
    assert result.summary.entered.count("Check") == 3


def test_a_state_invoked_more_often_than_it_has_responses_fails_the_run(local_stack, mock_config):
    arn = _machine(
        local_stack,
        mock_config,
        POLL,
        {"NeverDone": {"Check": "AlwaysPending"}},
        {"AlwaysPending": {"0-1": {"Return": {"Sentiment": "NEUTRAL"}}}},
    )

    result = _run(local_stack, arn, "NeverDone")

    assert result.status == "FAILED"
    assert result.summary.entered.count("Check") == 3


def test_a_throw_mocked_on_the_second_map_iteration_fires(local_stack, mock_config):
    # Given a Map (one at a time, as the AWS docs advise for predictable responses) over three items
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 1,
                "Iterator": {
                    "StartAt": "Score",
                    "States": {
                        "Score": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::aws-sdk:comprehend:detectSentiment",
                            "Parameters": {"Text.$": "$", "LanguageCode": "en"},
                            "End": True,
                        }
                    },
                },
                "Catch": [{"ErrorEquals": ["Comprehend.TextSizeLimitExceededException"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "Result": "caught", "End": True},
        },
    }
    arn = _machine(
        local_stack,
        mock_config,
        definition,
        {"SecondFails": {"Score": "OkThenThrow"}},
        {
            "OkThenThrow": {
                "0": {"Return": {"Sentiment": "POSITIVE"}},
                "1": {"Throw": {"Error": "Comprehend.TextSizeLimitExceededException", "Cause": "too long"}},
                "2": {"Return": {"Sentiment": "NEGATIVE"}},
            }
        },
    )

    # When it runs
    result = _run(local_stack, arn, "SecondFails", {"items": ["a", "b", "c"]})

    # Then the second iteration threw the mocked error, which the Catch routed
    assert result.status == "SUCCEEDED"
    assert result.output == "caught"
    assert result.summary.entered.count("Score") == 2


def test_aws_sdk_task_events_name_resource_as_step_functions_local_does(local_stack, mock_config):
    arn = _machine(
        local_stack,
        mock_config,
        POLL,
        {"Happy": {"Check": "Positive"}},
        {"Positive": {"0": {"Return": {"Sentiment": "POSITIVE"}}}},
    )

    result = _run(local_stack, arn, "Happy")

    task_events = [
        event for event in result.history if event["type"].startswith("Task") and "State" not in event["type"]
    ]
    assert [event["type"] for event in task_events] == ["TaskScheduled", "TaskStarted", "TaskSucceeded"]
    for event in task_events:
        details = next(value for key, value in event.items() if key.endswith("EventDetails"))
        assert details["resourceType"] == "aws-sdk"
        assert details["resource"] == "comprehend:detectSentiment"


def test_a_string_output_is_json_encoded(local_stack, mock_config):
    definition = {
        "StartAt": "Greet",
        "States": {
            "Greet": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:comprehend:detectSentiment",
                "Parameters": {"Text": "hi", "LanguageCode": "en"},
                "End": True,
            }
        },
    }
    arn = _machine(
        local_stack, mock_config, definition, {"Text": {"Greet": "Plain"}}, {"Plain": {"0": {"Return": "hello"}}}
    )

    result = _run(local_stack, arn, "Text")

    assert result.status == "SUCCEEDED"
    assert result.description["output"] == '"hello"'


def test_a_function_arn_mocked_without_payload_returns_the_mocked_result(local_stack, mock_config):
    # Given a Task whose Resource is the function ARN itself, mocked with and without the Invoke envelope
    function = create_function(local_stack, "echo")
    definition = {
        "StartAt": "Direct",
        "States": {
            "Direct": {"Type": "Task", "Resource": function, "ResultPath": "$.direct", "Next": "Enveloped"},
            "Enveloped": {"Type": "Task", "Resource": function, "ResultPath": "$.enveloped", "End": True},
        },
    }
    arn = _machine(
        local_stack,
        mock_config,
        definition,
        {"Bare": {"Direct": "BareResult", "Enveloped": "EnvelopedResult"}},
        {
            "BareResult": {"0": {"Return": {"accepted": True}}},
            "EnvelopedResult": {"0": {"Return": {"StatusCode": 200, "Payload": {"accepted": "enveloped"}}}},
        },
    )

    result = _run(local_stack, arn, "Bare")

    assert result.status == "SUCCEEDED", result.description
    assert result.output == {"direct": {"accepted": True}, "enveloped": {"accepted": "enveloped"}}


@pytest.mark.skipif(not HAS_AWS_CLI, reason="the AWS CLI is not installed")
def test_aws_cli_runs_a_polling_test_case(local_stack, mock_config):
    arn = _machine(
        local_stack,
        mock_config,
        POLL,
        {"Polls": {"Check": "PendingOnce"}},
        {"PendingOnce": {"0": {"Return": {"Sentiment": "MIXED"}}, "1": {"Return": {"Sentiment": "POSITIVE"}}}},
    )
    aws = [AWS_CLI, "--endpoint-url", local_stack.endpoint_url, "--region", "us-east-1", "--output", "json"]

    started = subprocess.run(
        [*aws, "stepfunctions", "start-execution", "--state-machine-arn", f"{arn}#Polls", "--name", uuid.uuid4().hex],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = finished_execution(local_stack.client("stepfunctions"), json.loads(started.stdout)["executionArn"])

    assert result.status == "SUCCEEDED"
    assert result.output == {"sentiment": "POSITIVE"}
