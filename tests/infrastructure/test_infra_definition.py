"""The deployed DefinitionString is render_definition(...) of the ASL file: what runs locally is what deploys."""

from __future__ import annotations

import json
from typing import Any

from infrastructure.spec import TABLE_PLACEHOLDER, placeholder_for
from lambdas.shared.constants import DEFAULT_TABLE_NAME, WORKFLOW_STEPS, handler_path
from workflows.definition import (
    DELIVER_STATE,
    DeliveryRetryPolicy,
    default_retry_policy,
    placeholder_names,
    render_definition,
)

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def resolve(value: Any, references: dict[Any, str]) -> str:
    """Evaluate the Fn::Join / Fn::GetAtt / Ref a definition string is made of."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(part, references) for part in parts)
    if "Fn::GetAtt" in value:
        return references[tuple(value["Fn::GetAtt"])]
    if "Ref" in value:
        return references[value["Ref"]]
    raise AssertionError(f"unexpected intrinsic in the definition: {value}")


def deployed_definition(stack) -> tuple[dict[str, Any], dict[str, str]]:
    """The state machine's definition as CloudFormation will create it, plus the values substituted."""
    references: dict[Any, str] = {}
    substitutions: dict[str, str] = {}
    for lid, res in stack.resources("AWS::Lambda::Function").items():
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{res['Properties'].get('FunctionName', lid)}"
        references[(lid, "Arn")] = arn
        for step in WORKFLOW_STEPS:
            if res["Properties"].get("Handler") == handler_path(step):
                substitutions[placeholder_for(step)] = arn
    for lid, res in stack.resources("AWS::DynamoDB::Table").items():
        references[lid] = res["Properties"]["TableName"]
        substitutions[TABLE_PLACEHOLDER] = res["Properties"]["TableName"]
    (machine,) = stack.resources("AWS::StepFunctions::StateMachine").values()
    text = resolve(machine["Properties"]["DefinitionString"], references)
    return json.loads(text), substitutions


def test_the_deployed_definition_is_the_rendered_asl_file(default_stack):
    # Given the synthesized stack with the default retry schedule
    # When its DefinitionString is resolved with the function ARNs and the table name
    deployed, substitutions = deployed_definition(default_stack)
    # Then it is exactly render_definition of the repository's ASL file with those values
    assert substitutions[TABLE_PLACEHOLDER] == DEFAULT_TABLE_NAME
    assert len(substitutions) == len(WORKFLOW_STEPS) + 1
    assert deployed == json.loads(render_definition(substitutions))
    assert not placeholder_names(json.dumps(deployed))


def test_each_task_invokes_the_function_of_its_own_step(default_stack):
    # Given the resolved definition
    deployed, substitutions = deployed_definition(default_stack)
    # When the Lambda tasks are read
    invoked = {
        name: state["Parameters"]["FunctionName"]
        for name, state in deployed["States"].items()
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    }
    # Then Validate, Deduplicate, Deliver and FailureGate each call their own handler's function
    assert invoked == {
        "Validate": substitutions["ValidateFunctionArn"],
        "Deduplicate": substitutions["DeduplicateFunctionArn"],
        "Deliver": substitutions["DeliverFunctionArn"],
        "FailureGate": substitutions["FailureGateFunctionArn"],
    }


def test_a_retry_override_from_context_is_the_only_difference(custom_stack):
    # Given a stack synthesized with retryIntervalSeconds=10, retryMaxAttempts=4, retryBackoffRate=3,
    # retryMaxDelaySeconds=600
    policy = DeliveryRetryPolicy(interval_seconds=10, max_attempts=4, backoff_rate=3.0, max_delay_seconds=600)
    # When its definition is resolved
    deployed, substitutions = deployed_definition(custom_stack)
    # Then it is the ASL file rendered with that policy, and only the Deliver retrier (and the
    # Retry-After bound that follows its longest wait) changed
    assert deployed == json.loads(render_definition(substitutions, policy))
    untouched = json.loads(render_definition(substitutions))
    retrier = deployed["States"][DELIVER_STATE]["Retry"][0]
    assert retrier == policy.to_retrier()
    assert retrier != default_retry_policy().to_retrier()
    payload = deployed["States"][DELIVER_STATE]["Parameters"]["Payload"]
    assert payload["maxRetryAfterSeconds"] == policy.max_delay_seconds
    deployed["States"][DELIVER_STATE]["Retry"][0] = untouched["States"][DELIVER_STATE]["Retry"][0]
    payload["maxRetryAfterSeconds"] = untouched["States"][DELIVER_STATE]["Parameters"]["Payload"][
        "maxRetryAfterSeconds"
    ]
    assert deployed == untouched
