"""The deployed DefinitionStrings are the rendered ASL files: what runs locally is what deploys, for both workflows."""

from __future__ import annotations

import json
from typing import Any

from infrastructure.config import NotiflowConfig
from infrastructure.spec import (
    STANDARD_ARN_PLACEHOLDER,
    STANDARD_EXECUTION_PREFIX_PLACEHOLDER,
    TABLE_PLACEHOLDER,
    placeholder_for,
)
from lambdas.shared.constants import (
    DEFAULT_FAST_PATH_STATE_MACHINE_NAME,
    DEFAULT_STATE_MACHINE_NAME,
    DEFAULT_TABLE_NAME,
    WORKFLOW_STEPS,
    handler_path,
)
from tests.infrastructure.conftest import CUSTOM_CONTEXT
from workflows.definition import (
    DELIVER_STATE,
    DeliveryRetryPolicy,
    default_retry_policy,
    fast_path_attempts,
    placeholder_names,
    render_definition,
    render_fast_path_definition,
)

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}


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


def deployed_definitions(stack) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, str]]:
    """Both definitions as CloudFormation will create them (by machine name), plus the values substituted."""
    references: dict[Any, str] = dict(PSEUDO)
    substitutions: dict[str, str] = {}
    for lid, res in stack.resources("AWS::Lambda::Function").items():
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{res['Properties'].get('FunctionName', lid)}"
        references[(lid, "Arn")] = arn
        for step in WORKFLOW_STEPS:
            if res["Properties"].get("Handler") == handler_path(step):
                substitutions[placeholder_for(step)] = arn
    for lid, res in stack.resources("AWS::DynamoDB::Table").items():
        references[lid] = res["Properties"]["TableName"]
        if res["Properties"]["TableName"] == DEFAULT_TABLE_NAME:
            substitutions[TABLE_PLACEHOLDER] = res["Properties"]["TableName"]
    machines = {
        res["Properties"]["StateMachineName"]: json.loads(resolve(res["Properties"]["DefinitionString"], references))
        for res in stack.resources("AWS::StepFunctions::StateMachine").values()
    }
    standard_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{DEFAULT_STATE_MACHINE_NAME}"
    fast_substitutions = {
        **{key: value for key, value in substitutions.items() if key != placeholder_for("failure_gate")},
        STANDARD_ARN_PLACEHOLDER: standard_arn,
        STANDARD_EXECUTION_PREFIX_PLACEHOLDER: standard_arn.replace(":stateMachine:", ":execution:") + ":",
    }
    return machines, substitutions, fast_substitutions


def test_the_deployed_definitions_are_the_rendered_asl_files(default_stack):
    # Given the synthesized stack in its default fast-path mode
    # When its DefinitionStrings are resolved with the function ARNs and the table name
    machines, substitutions, fast_substitutions = deployed_definitions(default_stack)
    config = NotiflowConfig()
    # Then each is exactly the render of its repository file: the Standard one continuing the schedule
    # after the fast path's attempts, the Express one with the claim lease of the deliver timeout
    assert substitutions[TABLE_PLACEHOLDER] == DEFAULT_TABLE_NAME
    assert machines[DEFAULT_STATE_MACHINE_NAME] == json.loads(
        render_definition(substitutions, fast_attempts=fast_path_attempts())
    )
    assert machines[DEFAULT_FAST_PATH_STATE_MACHINE_NAME] == json.loads(
        render_fast_path_definition(fast_substitutions, attempt_deadline_seconds=config.deliver_timeout_seconds)
    )
    for definition in machines.values():
        assert not placeholder_names(json.dumps(definition))


def test_each_task_invokes_the_function_of_its_own_step(default_stack):
    # Given the resolved definitions
    machines, substitutions, _ = deployed_definitions(default_stack)
    # When the Lambda tasks are read
    for name, expected_steps in (
        (DEFAULT_STATE_MACHINE_NAME, {"Validate", "Deduplicate", "Deliver", "FailureGate"}),
        (DEFAULT_FAST_PATH_STATE_MACHINE_NAME, {"Validate", "Deduplicate", "Deliver"}),
    ):
        invoked = {
            state_name: state["Parameters"]["FunctionName"]
            for state_name, state in machines[name]["States"].items()
            if state.get("Resource") == "arn:aws:states:::lambda:invoke"
        }
        # Then every task calls its own handler's function (the fast path has no failure gate)
        assert invoked == {state: substitutions[f"{state}FunctionArn"] for state in expected_steps}


def test_the_fast_path_hands_over_to_the_standard_machine_of_the_same_stack(default_stack):
    machines, _, fast_substitutions = deployed_definitions(default_stack)
    fast = machines[DEFAULT_FAST_PATH_STATE_MACHINE_NAME]["States"]
    assert fast["StartStandard"]["Parameters"]["StateMachineArn"] == fast_substitutions[STANDARD_ARN_PLACEHOLDER]
    transfer = fast["TransferClaim"]["Parameters"]["ExpressionAttributeValues"][":standard"]["S.$"]
    assert fast_substitutions[STANDARD_EXECUTION_PREFIX_PLACEHOLDER] + "{}" in transfer


def test_a_retry_override_from_context_is_the_only_difference(custom_stack):
    # Given a stack synthesized in standard mode with retryIntervalSeconds=10, retryMaxAttempts=4,
    # retryBackoffRate=3, retryMaxDelaySeconds=600
    policy = DeliveryRetryPolicy(interval_seconds=10, max_attempts=4, backoff_rate=3.0, max_delay_seconds=600)
    # When its definitions are resolved
    machines, substitutions, fast_substitutions = deployed_definitions(custom_stack)
    deployed = machines[DEFAULT_STATE_MACHINE_NAME]
    # Then the Standard one is the ASL file rendered with that policy (standard mode: the whole schedule), and
    # only the Deliver retrier (and the Retry-After bound that follows its longest wait) changed
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
    # And the Express one (deployed in standard mode too) follows the same schedule and the quick-retry override
    config = NotiflowConfig.from_context(CUSTOM_CONTEXT.get)
    assert machines[DEFAULT_FAST_PATH_STATE_MACHINE_NAME] == json.loads(
        render_fast_path_definition(
            fast_substitutions, policy, int(CUSTOM_CONTEXT["fastPathRetries"]), config.deliver_timeout_seconds
        )
    )
