"""The ASL file parsed and checked: every transition resolves, every Task is guarded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.shared import errors
from workflows.definition import (
    DEFINITION_PATH,
    PLACEHOLDERS,
    DeliveryRetryPolicy,
    default_retry_policy,
    load_definition,
    placeholder_names,
    render_definition,
)

DEFINITION = load_definition()
STATES: dict[str, Any] = DEFINITION["States"]
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
DYNAMODB_THROTTLING = {"DynamoDB.ProvisionedThroughputExceededException", "DynamoDB.ThrottlingException"}
SUBSTITUTIONS = {name: f"arn:test:{name}" for name in PLACEHOLDERS}


def transitions(state: dict[str, Any]) -> list[str]:
    targets = [state[key] for key in ("Next", "Default") if key in state]
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def test_uses_jsonpath_not_jsonata() -> None:
    # The embedded engine cannot evaluate JSONata.
    assert DEFINITION.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert "{%" not in DEFINITION_PATH.read_text()


def test_every_transition_resolves_and_every_state_is_reachable() -> None:
    assert DEFINITION["StartAt"] in STATES
    reachable, frontier = set(), [DEFINITION["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name in reachable:
            continue
        reachable.add(name)
        for target in transitions(STATES[name]):
            assert target in STATES, f"{name} -> {target} does not resolve"
            frontier.append(target)
    assert reachable == set(STATES)


def test_non_terminal_states_have_a_way_out() -> None:
    for name, state in STATES.items():
        if state["Type"] in ("Succeed", "Fail"):
            continue
        assert state.get("End") or transitions(state), f"{name} never ends"


@pytest.mark.parametrize(
    "name", [n for n, s in STATES.items() if s.get("Resource") == "arn:aws:states:::lambda:invoke"]
)
def test_lambda_tasks_retry_service_errors(name: str) -> None:
    retried = {error for retrier in STATES[name]["Retry"] for error in retrier["ErrorEquals"]}
    assert retried >= LAMBDA_SERVICE_ERRORS


@pytest.mark.parametrize("name", ["Validate", "Deduplicate", "FailureGate"])
def test_idempotent_lambda_steps_retry_a_timed_out_invocation(name: str) -> None:
    # A cold start under load can time out; these steps are safe to run twice for one run.
    retried = {error for retrier in STATES[name]["Retry"] for error in retrier["ErrorEquals"]}
    assert "Sandbox.Timedout" in retried


def test_deliver_does_not_retry_a_timed_out_invocation_blindly() -> None:
    # A timed-out delivery may have reached the receiver: it is recorded FAILED and left to a redrive.
    retried = {error for retrier in STATES["Deliver"]["Retry"] for error in retrier["ErrorEquals"]}
    assert "Sandbox.Timedout" not in retried


@pytest.mark.parametrize("name", [n for n, s in STATES.items() if "dynamodb:" in s.get("Resource", "")])
def test_dynamodb_tasks_retry_throttling_and_catch_stale_writes(name: str) -> None:
    state = STATES[name]
    retried = {error for retrier in state["Retry"] for error in retrier["ErrorEquals"]}
    assert retried >= DYNAMODB_THROTTLING
    caught = {error for catcher in state["Catch"] for error in catcher["ErrorEquals"]}
    assert "DynamoDB.ConditionalCheckFailedException" in caught
    assert "ConditionExpression" in state["Parameters"]


def test_deliver_retries_only_retryable_errors_and_catches_the_rest() -> None:
    deliver = STATES["Deliver"]
    retried = {error for retrier in deliver["Retry"] for error in retrier["ErrorEquals"]}
    assert errors.DeliveryRetryableError.__name__ in retried
    assert errors.DeliveryPermanentError.__name__ not in retried
    delivery_retry = deliver["Retry"][0]
    assert delivery_retry["JitterStrategy"] == "FULL"
    assert {"BackoffRate", "MaxDelaySeconds", "IntervalSeconds", "MaxAttempts"} <= delivery_retry.keys()
    caught = [set(catcher["ErrorEquals"]) for catcher in deliver["Catch"]]
    assert {errors.DeliveryRetryableError.__name__, errors.DeliveryPermanentError.__name__} in caught
    assert deliver["Catch"][-1]["ErrorEquals"] == ["States.ALL"]


def test_error_names_in_the_definition_exist_as_exception_classes() -> None:
    # Error names are the contract: any name the ASL matches must be a class a Lambda can raise.
    ours = {
        error
        for state in STATES.values()
        for rule in state.get("Retry", []) + state.get("Catch", [])
        for error in rule["ErrorEquals"]
        if not error.startswith(("States.", "Lambda.", "DynamoDB.", "Sandbox."))
    }
    assert ours
    for name in ours:
        assert issubclass(getattr(errors, name), errors.NotiflowError)


def test_terminal_writes_are_native_dynamodb_updates_guarded_by_status() -> None:
    for name in ("RecordSuccess", "RecordFailure", "RecordUnexpectedFailure"):
        state = STATES[name]
        assert state["Resource"] == "arn:aws:states:::dynamodb:updateItem"
        assert "#status = :processing" in state["Parameters"]["ConditionExpression"]
    assert "deliveredAt" in STATES["RecordSuccess"]["Parameters"]["UpdateExpression"]
    assert "deliveredAt" not in STATES["RecordFailure"]["Parameters"]["UpdateExpression"]


def test_delivery_failures_end_in_the_redrive_gate_not_a_fail_state() -> None:
    assert STATES["RecordFailure"]["Next"] == "FailureGate"
    assert STATES["RecordUnexpectedFailure"]["Next"] == "FailureGate"
    gate = STATES["FailureGate"]
    assert gate["Type"] == "Task"
    assert "Catch" not in gate, "the gate must fail the run itself so a redrive re-runs it"
    assert gate["Parameters"]["Payload"]["redriveCount.$"] == "$$.Execution.RedriveCount"
    assert STATES["ReopenForRedrive"]["Next"] == "Deliver"


def test_render_substitutes_every_placeholder() -> None:
    assert placeholder_names(DEFINITION_PATH.read_text()) == set(PLACEHOLDERS)
    rendered = render_definition(SUBSTITUTIONS)
    assert placeholder_names(rendered) == set()
    assert json.loads(rendered)["States"]["Deliver"]["Parameters"]["FunctionName"] == "arn:test:DeliverFunctionArn"
    with pytest.raises(KeyError, match="missing"):
        render_definition({})


def test_default_retry_schedule_keeps_trying_for_about_a_day() -> None:
    policy = default_retry_policy()
    expected_hours = sum(policy.nominal_delays()) / 2 / 3600  # FULL jitter: uniform below each bound
    assert 12 <= expected_hours <= 36
    assert max(policy.nominal_delays()) == policy.max_delay_seconds


def test_retry_override_changes_only_the_delivery_retrier() -> None:
    fast = DeliveryRetryPolicy(interval_seconds=1, max_attempts=2, backoff_rate=1.5, max_delay_seconds=5)
    rendered = json.loads(render_definition(SUBSTITUTIONS, fast))
    assert rendered["States"]["Deliver"]["Retry"][0]["MaxAttempts"] == 2
    assert rendered["States"]["Deliver"]["Retry"][1] == STATES["Deliver"]["Retry"][1]
    with pytest.raises(ValueError, match="backoff_rate"):
        render_definition(SUBSTITUTIONS, fast.with_overrides(backoff_rate=0.5))


def test_retry_after_loop_waits_then_delivers_again_within_the_schedule_bounds() -> None:
    deliver = STATES["Deliver"]
    assert deliver["Catch"][0] == {
        "ErrorEquals": [errors.DeliveryThrottledError.__name__],
        "ResultPath": "$.error",
        "Next": "DescribeRetryAfter",
    }
    payload = deliver["Parameters"]["Payload"]
    assert payload["maxRetryAfterSeconds"] == deliver["Retry"][0]["MaxDelaySeconds"]
    assert payload["maxRetryAfterWaits"] >= 1
    assert STATES["WaitRetryAfter"]["Type"] == "Wait"
    assert STATES["WaitRetryAfter"]["Next"] == "Deliver"
    assert STATES["IsDuplicate"]["Default"] == "PrepareDelivery"
    assert STATES["PrepareDelivery"]["Result"] == {"waits": 0}


def test_retry_override_also_bounds_retry_after_waits() -> None:
    fast = DeliveryRetryPolicy(interval_seconds=1, max_attempts=2, backoff_rate=1.5, max_delay_seconds=5)
    rendered = json.loads(render_definition(SUBSTITUTIONS, fast))
    assert rendered["States"]["Deliver"]["Parameters"]["Payload"]["maxRetryAfterSeconds"] == 5
