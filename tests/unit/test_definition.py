"""Both ASL files parsed and checked: every transition resolves, every Task is guarded, the hand-over contract holds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lambdas.shared import errors
from lambdas.shared.constants import FastPathOutcome, HandOverKind, RecordStatus
from workflows.definition import (
    DEFINITION_PATH,
    FAST_PATH_DEFINITION_PATH,
    FAST_PATH_PLACEHOLDERS,
    LEASE_MARGIN_SECONDS,
    PLACEHOLDERS,
    DeliveryRetryPolicy,
    claim_lease_seconds,
    default_fast_retry_policy,
    default_retry_policy,
    fast_path_attempts,
    fast_path_timeout_seconds,
    hand_over_wait_bound,
    load_definition,
    load_fast_path_definition,
    placeholder_names,
    render_definition,
    render_fast_path_definition,
)

STANDARD = load_definition()
EXPRESS = load_fast_path_definition()
STATES: dict[str, Any] = STANDARD["States"]
FAST: dict[str, Any] = EXPRESS["States"]
BOTH = pytest.mark.parametrize("definition", [STANDARD, EXPRESS], ids=["standard", "fast_path"])
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
DYNAMODB_THROTTLING = {"DynamoDB.ProvisionedThroughputExceededException", "DynamoDB.ThrottlingException"}
SUBSTITUTIONS = {name: f"arn:test:{name}" for name in PLACEHOLDERS}
FAST_SUBSTITUTIONS = {name: f"arn:test:{name}" for name in FAST_PATH_PLACEHOLDERS}
EXPRESS_MAX_SECONDS = 300


def transitions(state: dict[str, Any]) -> list[str]:
    targets = [state[key] for key in ("Next", "Default") if key in state]
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def tasks(definition: dict[str, Any], resource: str) -> list[str]:
    return [name for name, state in definition["States"].items() if state.get("Resource") == resource]


def retried(state: dict[str, Any]) -> set[str]:
    return {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}


def retrier_for(state: dict[str, Any], error: str) -> dict[str, Any]:
    (found,) = [retrier for retrier in state["Retry"] if error in retrier["ErrorEquals"]]
    return found


def total_wait(retrier: dict[str, Any]) -> float:
    policy = DeliveryRetryPolicy(
        interval_seconds=retrier["IntervalSeconds"],
        max_attempts=retrier["MaxAttempts"],
        backoff_rate=retrier["BackoffRate"],
        max_delay_seconds=retrier.get("MaxDelaySeconds", 99_999_999),
    )
    return sum(policy.nominal_delays())


# -- both workflows --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DEFINITION_PATH, FAST_PATH_DEFINITION_PATH], ids=lambda p: p.name)
def test_uses_jsonpath_not_jsonata(path: Path) -> None:
    # The embedded engine cannot evaluate JSONata.
    assert json.loads(path.read_text()).get("QueryLanguage", "JSONPath") == "JSONPath"
    assert "{%" not in path.read_text()


@BOTH
def test_every_transition_resolves_and_every_state_is_reachable(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert definition["StartAt"] in states
    reachable, frontier = set(), [definition["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name in reachable:
            continue
        reachable.add(name)
        for target in transitions(states[name]):
            assert target in states, f"{name} -> {target} does not resolve"
            frontier.append(target)
    assert reachable == set(states)


@BOTH
def test_non_terminal_states_have_a_way_out(definition: dict[str, Any]) -> None:
    for name, state in definition["States"].items():
        if state["Type"] in ("Succeed", "Fail"):
            continue
        assert state.get("End") or transitions(state), f"{name} never ends"


@BOTH
def test_lambda_tasks_ride_out_throttling_with_long_jittered_back_off(definition: dict[str, Any]) -> None:
    # Issue 8 item 7: a burst above the Lambda concurrency must never fail a run.
    for name in tasks(definition, "arn:aws:states:::lambda:invoke"):
        state = definition["States"][name]
        assert retried(state) >= LAMBDA_SERVICE_ERRORS, name
        retrier = retrier_for(state, "Lambda.TooManyRequestsException")
        assert retrier["JitterStrategy"] == "FULL"
        assert retrier["MaxDelaySeconds"] >= 120, f"{name}: the cap must be minutes, not seconds"
        assert total_wait(retrier) >= 15 * 60, f"{name}: the back-off must outlast a burst"


@BOTH
def test_idempotent_lambda_steps_retry_a_timed_out_invocation(definition: dict[str, Any]) -> None:
    # A cold start under load can time out; these steps are safe to run twice for one run.
    for name in ("Validate", "Deduplicate", "FailureGate"):
        if name in definition["States"]:
            assert "Sandbox.Timedout" in retried(definition["States"][name]), name


@BOTH
def test_deliver_retries_a_lost_result_a_few_times(definition: dict[str, Any]) -> None:
    # A timed-out or crashed delivery may have reached the receiver; recording it FAILED left a delivered
    # notification to a redrive that sends again anyway. Retried, a written outcome is not sent again and
    # an unwritten one is sent once more (tests/chaos/test_deliver_lost_result.py); the count stays small.
    deliver = definition["States"]["Deliver"]
    assert {"Sandbox.Timedout", "Runtime.ExitError", "Lambda.Unknown"} <= retried(deliver)
    assert retrier_for(deliver, "Runtime.ExitError")["MaxAttempts"] <= 3


@BOTH
def test_dynamodb_tasks_retry_throttling_and_catch_stale_writes(definition: dict[str, Any]) -> None:
    for name in tasks(definition, "arn:aws:states:::dynamodb:updateItem"):
        state = definition["States"][name]
        assert retried(state) >= DYNAMODB_THROTTLING, name
        assert retrier_for(state, "DynamoDB.ThrottlingException")["MaxDelaySeconds"] >= 120, name
        caught = {error for catcher in state["Catch"] for error in catcher["ErrorEquals"]}
        assert "DynamoDB.ConditionalCheckFailedException" in caught, name
        assert "ConditionExpression" in state["Parameters"], name


@BOTH
def test_every_step_before_the_gate_catches_the_unexpected(definition: dict[str, Any]) -> None:
    # Issue 8 item 7: an unexpected error in any step still ends in a record (or a hand-over that writes one).
    for name in ("Validate", "Deduplicate", "Deliver"):
        assert definition["States"][name]["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name


@BOTH
def test_a_busy_host_waits_in_its_own_retrier_apart_from_the_delivery_budget(definition: dict[str, Any]) -> None:
    deliver = definition["States"]["Deliver"]
    busy = retrier_for(deliver, errors.HostBusyError.__name__)
    assert busy["ErrorEquals"] == [errors.HostBusyError.__name__]
    assert busy["JitterStrategy"] == "FULL"
    delivery = retrier_for(deliver, errors.DeliveryRetryableError.__name__)
    assert delivery["ErrorEquals"] == [errors.DeliveryRetryableError.__name__]
    assert deliver["Retry"][0] is delivery


@BOTH
def test_error_names_in_the_definition_exist_as_exception_classes(definition: dict[str, Any]) -> None:
    # Error names are the contract: any name the ASL matches must be a class a Lambda can raise.
    ours = {
        error
        for state in definition["States"].values()
        for rule in state.get("Retry", []) + state.get("Catch", [])
        for error in rule["ErrorEquals"]
        if not error.startswith(("States.", "Lambda.", "DynamoDB.", "Sandbox.", "Runtime.", "StepFunctions."))
    }
    assert ours
    for name in ours:
        assert issubclass(getattr(errors, name), errors.NotiflowError)


def _writes(definition: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        name: (state["Parameters"]["UpdateExpression"], state["Parameters"]["ExpressionAttributeValues"])
        for name, state in definition["States"].items()
        if state.get("Resource") == "arn:aws:states:::dynamodb:updateItem"
    }


def _set_value(expression: str, values: dict[str, Any], attribute: str) -> str | None:
    match = re.search(rf"(?:SET |, ){attribute} = (:\w+)", expression.split(" REMOVE ")[0])
    if match is None:
        return None
    value = values[match.group(1)]
    return value.get("S") if isinstance(value, dict) else None


@BOTH
def test_every_status_write_keeps_the_operator_index_attributes(definition: dict[str, Any]) -> None:
    # The contract with the operator index: opsStatus equals status while PROCESSING under a Standard run,
    # FAILED or REJECTED; a SUCCESS write removes opsStatus and opsSince.
    for name, (expression, values) in _writes(definition).items():
        status = _set_value(expression, values, "#status")
        removed = expression.split(" REMOVE ")[1] if " REMOVE " in expression else ""
        if status == RecordStatus.SUCCESS:
            assert {"opsStatus", "opsSince"} <= set(re.split(r",\s*", removed)), name
        elif status is not None:
            assert _set_value(expression, values, "opsStatus") == status, name
            assert "opsSince = :now" in expression, name
    assert _set_value(*_writes(EXPRESS)["TransferClaim"], "opsStatus") == RecordStatus.PROCESSING


# -- the Standard workflow -------------------------------------------------------------------


def test_standard_routes_every_hand_over_kind_and_everything_else_to_validate() -> None:
    route = STATES[STANDARD["StartAt"]]
    assert route["Type"] == "Choice"
    first = route["Choices"][0]
    assert first == {"Variable": "$.handOver", "IsPresent": False, "Next": "Validate"}
    routed = {rule["StringEquals"]: rule["Next"] for rule in route["Choices"][1:]}
    assert routed == {
        HandOverKind.RETRY: "WaitHandOver",
        HandOverKind.RETRY_AFTER: "WaitRetryAfter",
        HandOverKind.HOST_BUSY: "Deliver",
        HandOverKind.FAILED: "RecordFailure",
        HandOverKind.UNEXPECTED: "RecordUnexpectedFailure",
    }
    assert route["Default"] == "Validate"
    assert STATES["WaitHandOver"]["Next"] == "Deliver"


def test_terminal_writes_are_native_dynamodb_updates_guarded_by_status() -> None:
    for name in ("RecordSuccess", "RecordFailure", "RecordUnexpectedFailure"):
        state = STATES[name]
        assert state["Resource"] == "arn:aws:states:::dynamodb:updateItem"
        assert "#status = :processing" in state["Parameters"]["ConditionExpression"]
    assert "deliveredAt" in STATES["RecordSuccess"]["Parameters"]["UpdateExpression"]
    assert "deliveredAt" not in STATES["RecordFailure"]["Parameters"]["UpdateExpression"]
    assert STATES["RecordSuccess"].get("End") is True, "a first-try success enters no state after its write"


def test_delivery_failures_end_in_the_redrive_gate_not_a_fail_state() -> None:
    assert STATES["RecordFailure"]["Next"] == "FailureGate"
    assert STATES["RecordUnexpectedFailure"]["Next"] == "FailureGate"
    gate = STATES["FailureGate"]
    assert gate["Type"] == "Task"
    assert "Catch" not in gate, "the gate must fail the run itself so a redrive re-runs it"
    assert gate["Parameters"]["Payload"]["redriveCount.$"] == "$$.Execution.RedriveCount"
    assert STATES["ReopenForRedrive"]["Next"] == "ResumeAfterRedrive"


def test_step_failures_are_recorded_and_a_redrive_resumes_at_the_step() -> None:
    for step, describe in (("Validate", "DescribeValidateFailure"), ("Deduplicate", "DescribeDeduplicateFailure")):
        assert STATES[step]["Catch"][-1]["Next"] == describe
        assert STATES[describe]["Parameters"]["resumeAt"] == step
        assert STATES[describe]["Next"] == "RecordStepFailure"
    record = STATES["RecordStepFailure"]
    assert record["Next"] == "FailureGate"
    assert record["Catch"][0]["Next"] == "FailureGate", "a record another run owns: fail visibly, write nothing"
    condition = record["Parameters"]["ConditionExpression"]
    assert condition.startswith("attribute_not_exists(notificationId)"), "a run that failed before claiming"
    resume = {rule.get("StringEquals"): rule["Next"] for rule in STATES["ResumeAfterRedrive"]["Choices"]}
    assert resume == {None: "Deliver", "Validate": "Validate", "Deduplicate": "Deduplicate"}
    assert STATES["ResumeAfterRedrive"]["Default"] == "Deliver"


def test_render_substitutes_every_placeholder() -> None:
    assert placeholder_names(DEFINITION_PATH.read_text()) == set(PLACEHOLDERS)
    rendered = render_definition(SUBSTITUTIONS)
    assert placeholder_names(rendered) == set()
    assert json.loads(rendered)["States"]["Deliver"]["Parameters"]["FunctionName"] == "arn:test:DeliverFunctionArn"
    assert json.loads(rendered) == json.loads(_substituted(DEFINITION_PATH, SUBSTITUTIONS))
    with pytest.raises(KeyError, match="missing"):
        render_definition({})


def _substituted(path: Path, substitutions: dict[str, str]) -> str:
    text = path.read_text()
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", value)
    return text


def test_default_retry_schedule_keeps_trying_for_about_a_day() -> None:
    policy = default_retry_policy()
    expected_hours = sum(policy.nominal_delays()) / 2 / 3600  # FULL jitter: uniform below each bound
    assert 12 <= expected_hours <= 36
    assert max(policy.nominal_delays()) == policy.max_delay_seconds


def test_retry_override_changes_only_the_delivery_retrier() -> None:
    fast = DeliveryRetryPolicy(interval_seconds=1, max_attempts=2, backoff_rate=1.5, max_delay_seconds=5)
    rendered = json.loads(render_definition(SUBSTITUTIONS, fast))
    assert rendered["States"]["Deliver"]["Retry"][0]["MaxAttempts"] == 2
    assert rendered["States"]["Deliver"]["Retry"][1:] == STATES["Deliver"]["Retry"][1:]
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
    assert payload["retryAfterWaits.$"] == "$.retryAfter.waits"
    assert STATES["WaitRetryAfter"]["Type"] == "Wait"
    assert STATES["WaitRetryAfter"]["Next"] == "Deliver"
    assert STATES["IsDuplicate"]["Default"] == "Deliver", "Validate starts the Retry-After count, no Pass state"


def test_retry_override_also_bounds_retry_after_waits() -> None:
    fast = DeliveryRetryPolicy(interval_seconds=1, max_attempts=2, backoff_rate=1.5, max_delay_seconds=5)
    rendered = json.loads(render_definition(SUBSTITUTIONS, fast))
    assert rendered["States"]["Deliver"]["Parameters"]["Payload"]["maxRetryAfterSeconds"] == 5


@pytest.mark.parametrize("fast_retries", [0, 1, 2, 5, 23])
def test_fast_path_mode_continues_the_schedule_and_keeps_the_total_attempt_budget(fast_retries: int) -> None:
    # Given the fast path making 1 + fast_retries attempts before it hands a retryable failure over
    schedule = default_retry_policy()
    attempts = 1 + fast_retries

    # When the Standard definition is rendered for fast-path mode
    rendered = json.loads(render_definition(SUBSTITUTIONS, fast_attempts=attempts))
    retrier = rendered["States"]["Deliver"]["Retry"][0]

    # Then one attempt after the hand-over wait plus the continued retries make up the same total as today
    assert attempts + 1 + retrier["MaxAttempts"] == 1 + schedule.max_attempts
    # And the continued waits are exactly the tail of the schedule after the hand-over's wait
    continued = DeliveryRetryPolicy(
        interval_seconds=retrier["IntervalSeconds"],
        max_attempts=retrier["MaxAttempts"],
        backoff_rate=retrier["BackoffRate"],
        max_delay_seconds=retrier["MaxDelaySeconds"],
    )
    assert continued.nominal_delays() == schedule.nominal_delays()[attempts:]
    assert hand_over_wait_bound(schedule, attempts) == schedule.nominal_delays()[attempts - 1]


def test_more_quick_retries_than_the_schedule_has_are_refused() -> None:
    schedule = default_retry_policy()
    with pytest.raises(ValueError, match="more than the schedule"):
        render_fast_path_definition(FAST_SUBSTITUTIONS, fast_retries=schedule.max_attempts)


# -- the fast path (Express) -----------------------------------------------------------------


def test_fast_path_fits_express_and_waits_only_briefly() -> None:
    assert 0 < EXPRESS["TimeoutSeconds"] <= EXPRESS_MAX_SECONDS
    deliver = FAST["Deliver"]
    quick = retrier_for(deliver, errors.DeliveryRetryableError.__name__)
    busy = retrier_for(deliver, errors.HostBusyError.__name__)
    assert quick["JitterStrategy"] == busy["JitterStrategy"] == "FULL"
    assert total_wait(quick) + total_wait(busy) <= 60, "waiting long belongs to the Standard run"
    assert default_fast_retry_policy().max_attempts == quick["MaxAttempts"]


def test_fast_path_has_no_redrive_gate_and_records_only_success_and_rejection() -> None:
    assert "FailureGate" not in FAST
    statuses = {_set_value(expression, values, "#status") for expression, values in _writes(EXPRESS).values()}
    assert statuses == {RecordStatus.SUCCESS, RecordStatus.REJECTED, None}


def test_every_fast_path_ending_says_its_outcome() -> None:
    endings = {name: state for name, state in FAST.items() if state.get("End")}
    outcomes = {}
    for name, state in endings.items():
        assert state["Type"] == "Pass", name
        outcomes[name] = (state.get("Result") or state.get("Parameters"))["outcome"]
    assert set(outcomes.values()) == {outcome.value for outcome in FastPathOutcome}
    assert FAST["Rejected"]["Type"] == "Fail"
    assert FAST["Rejected"]["ErrorPath"] == "$.rejection.errorName"


def test_every_delivery_failure_is_handed_over_with_its_kind() -> None:
    # Given the Express Deliver state's catchers
    catches = {tuple(c["ErrorEquals"]): c["Next"] for c in FAST["Deliver"]["Catch"]}
    kinds = {}
    for errors_caught, first in catches.items():
        # When the path from each catcher is followed to the transfer of the claim
        name = first
        for _ in range(5):
            if "standardInput" in FAST[name].get("ResultPath", ""):
                break
            name = FAST[name]["Next"]
        state = FAST[name]
        assert state["Next"] == "TransferClaim"
        kinds[errors_caught] = state["Parameters"]["handOver"]["kind"]
    # Then every failure has a kind the Standard Route knows
    assert kinds == {
        ("DeliveryThrottledError",): HandOverKind.RETRY_AFTER,
        ("DeliveryRetryableError",): HandOverKind.RETRY,
        ("DeliveryPermanentError",): HandOverKind.FAILED,
        ("HostBusyError",): HandOverKind.HOST_BUSY,
        ("States.ALL",): HandOverKind.UNEXPECTED,
    }
    assert FAST["TransferClaim"]["Next"] == "StartStandard"
    assert (
        FAST["TransferClaim"]["Parameters"]["ConditionExpression"] == "#status = :processing AND executionArn = :exec"
    )


@pytest.mark.parametrize("kind", list(HandOverKind))
def test_the_hand_over_input_carries_what_the_standard_states_read(kind: HandOverKind) -> None:
    # Given the Standard input the Express run builds for this kind
    (params,) = [
        s["Parameters"]
        for s in FAST.values()
        if s.get("ResultPath") == "$.standardInput" and s["Parameters"].get("handOver", {}).get("kind") == kind
    ]
    keys = {key.removesuffix(".$") for key in params}
    # Then it holds the fields every Standard state on that path reads
    assert {"notificationId", "notification", "expiresAt", "retryAfter", "fastPathExecutionArn", "error"} <= keys
    if kind in (HandOverKind.FAILED, HandOverKind.UNEXPECTED):
        assert "failure" in keys
        failure = params.get("failure") or {}
        assert kind is HandOverKind.FAILED or failure["redriveCount"] == 0
    if kind is HandOverKind.RETRY:
        assert params["handOver"]["waitSeconds.$"].startswith("States.MathRandom(1, ")
    if kind is HandOverKind.RETRY_AFTER:
        assert set(params["retryAfter"]) == {"waits.$", "seconds.$"}


def test_start_standard_is_idempotent_by_the_notifications_execution_name() -> None:
    start = FAST["StartStandard"]
    assert start["Resource"] == "arn:aws:states:::states:startExecution"
    assert start["Parameters"]["StateMachineArn"] == "${StandardStateMachineArn}"
    assert start["Parameters"]["Name.$"] == "$$.Execution.Name"
    assert start["Catch"] == [
        {"ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"], "ResultPath": None, "Next": "HandedOver"}
    ]
    transfer = FAST["TransferClaim"]["Parameters"]["ExpressionAttributeValues"][":standard"]["S.$"]
    assert transfer == FAST["HandedOver"]["Parameters"]["standardExecutionArn.$"]
    assert "${StandardExecutionArnPrefix}" in transfer
    assert "$$.Execution.Name" in transfer


def test_fast_path_render_writes_lease_quick_retries_and_hand_over_wait() -> None:
    # When rendered with 0 quick retries ("deliver once") and a 40 s attempt deadline
    rendered = json.loads(render_fast_path_definition(FAST_SUBSTITUTIONS, fast_retries=0, attempt_deadline_seconds=40))
    states = rendered["States"]
    schedule = default_retry_policy()

    # Then the quick retrier allows none, the hand-over waits the schedule's first back-off,
    # and the claim lease covers the run plus one last attempt
    assert retrier_for(states["Deliver"], "DeliveryRetryableError")["MaxAttempts"] == 0
    assert states["HandOverRetry"]["Parameters"]["handOver"]["waitSeconds.$"] == (
        f"States.MathRandom(1, {schedule.interval_seconds})"
    )
    lease = states["Deduplicate"]["Parameters"]["Payload"]["lease"]
    assert lease["seconds"] == fast_path_timeout_seconds() + 40 + LEASE_MARGIN_SECONDS == claim_lease_seconds(40)
    assert states["Deliver"]["Parameters"]["Payload"]["maxRetryAfterSeconds"] == schedule.max_delay_seconds
    assert placeholder_names(json.dumps(rendered)) == set()
    assert placeholder_names(FAST_PATH_DEFINITION_PATH.read_text()) == set(FAST_PATH_PLACEHOLDERS)
    assert fast_path_attempts() == 1 + retrier_for(FAST["Deliver"], "DeliveryRetryableError")["MaxAttempts"]


def test_the_fast_path_file_as_written_is_what_render_produces_by_default() -> None:
    # The defaults in the file are the rendered defaults (so the file reads true).
    rendered = json.loads(render_fast_path_definition(FAST_SUBSTITUTIONS, attempt_deadline_seconds=30))
    assert rendered == json.loads(_substituted(FAST_PATH_DEFINITION_PATH, FAST_SUBSTITUTIONS))


def test_a_local_lease_override_replaces_only_the_lease() -> None:
    default = json.loads(render_fast_path_definition(FAST_SUBSTITUTIONS))
    short = json.loads(render_fast_path_definition(FAST_SUBSTITUTIONS, lease_seconds=3))
    assert short["States"]["Deduplicate"]["Parameters"]["Payload"]["lease"]["seconds"] == 3
    short["States"]["Deduplicate"]["Parameters"]["Payload"]["lease"]["seconds"] = claim_lease_seconds(30)
    assert short == default
