"""Execution status-change events: EventBridge rules created through the API get them; Lambda targets run.

Each test creates its own rule (put_rule with a pattern) and toy Lambda target (tests/local/event_targets.py)
on the embedded stack, runs real executions and waits on what the target received.
"""

from __future__ import annotations

import io
import json
import re
import types
import uuid
import zipfile
from typing import Any

import pytest

from infrastructure.spec import ReconcilerSpec
from notiflow.local.engine import event_delivery, events
from notiflow.local.fixtures import finished_execution, stack_settings_for_tests
from notiflow.local.stack import LAMBDA_ROLE_NAME, STATE_MACHINE_ROLE_NAME, EmbeddedStack, StackSettings
from notiflow.shared.waiting import wait_until
from tests.local import event_targets
from tests.local.helpers import create_function, create_state_machine, start

DETAIL_KEYS = {
    "executionArn",
    "stateMachineArn",
    "stateMachineVersionArn",
    "stateMachineAliasArn",
    "name",
    "status",
    "startDate",
    "stopDate",
    "input",
    "inputDetails",
    "output",
    "outputDetails",
    "redriveCount",
    "redriveDate",
    "redriveStatus",
    "redriveStatusReason",
    "error",
    "cause",
}
EVENT_KEYS = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    # Waits of 200 s last 2 s (long enough to stop a run inside one); target retries wait 0.6 s and 1.2 s.
    return stack_settings_for_tests(time_scale=0.01, max_wait_seconds=None)


def _target(stack: EmbeddedStack, handler: str) -> tuple[str, str]:
    """A toy target function; returns (name, ARN)."""
    name = f"events-{handler.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("event_targets.py", "# runs in-process from tests/local\n")
    arn = stack.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=f"arn:aws:iam::{stack.account_id}:role/{LAMBDA_ROLE_NAME}",
        Handler=f"{event_targets.__name__}.{handler}",
        Code={"ZipFile": archive.getvalue()},
        Timeout=60,
    )["FunctionArn"]
    return name, arn


def _rule(stack: EmbeddedStack, pattern: dict[str, Any], function_arn: str, *, state: str = "ENABLED") -> str:
    name = f"events-test-{uuid.uuid4().hex[:10]}"
    client = stack.client("events")
    client.put_rule(Name=name, EventPattern=json.dumps(pattern), State=state)
    client.put_targets(Rule=name, Targets=[{"Id": "toy", "Arn": function_arn}])
    return name


def _status_changes(machine_arns: list[str]) -> dict[str, Any]:
    return {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"stateMachineArn": machine_arns},
    }


def _events_of(function_name: str, execution_arn: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events the target got for one execution: RUNNING first, then by redrive.

    Deliveries are asynchronous, so they may arrive in any order, as on AWS.
    """

    def mine() -> list[dict[str, Any]]:
        return [e for e in event_targets.received(function_name) if e["detail"]["executionArn"] == execution_arn]

    got = wait_until(
        mine, lambda found: len(found) >= count, timeout=30, describe=f"{count} events for {execution_arn}"
    )
    return sorted(got, key=lambda e: (e["detail"]["status"] != "RUNNING", e["detail"]["redriveCount"]))


def _millis(value: Any) -> int:
    return int(value.timestamp() * 1000)


def _choice_machine(stack: EmbeddedStack, *, timeout_seconds: int | None = None) -> str:
    definition: dict[str, Any] = {
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.outcome", "StringEquals": "fail", "Next": "Broken"},
                    {"Variable": "$.outcome", "StringEquals": "wait", "Next": "Linger"},
                ],
                "Default": "Done",
            },
            "Broken": {"Type": "Fail", "Error": "ToyError", "Cause": "failed on purpose"},
            "Linger": {"Type": "Wait", "Seconds": 200, "Next": "Done"},
            "Done": {"Type": "Pass", "Result": {"answer": 42}, "End": True},
        },
    }
    if timeout_seconds is not None:
        definition["TimeoutSeconds"] = timeout_seconds
    return create_state_machine(stack, definition)


def test_every_status_change_reaches_a_matching_rule_in_the_documented_shape(local_stack: EmbeddedStack) -> None:
    # Given a rule on two machines' status changes with a toy Lambda target
    sfn = local_stack.client("stepfunctions")
    machine = _choice_machine(local_stack)
    short = _choice_machine(local_stack, timeout_seconds=1)
    function, function_arn = _target(local_stack, "record")
    _rule(local_stack, _status_changes([machine, short]), function_arn)

    # When runs succeed, fail, are stopped and time out
    succeeded = start(local_stack, machine, {"outcome": "done"})
    failed = start(local_stack, machine, {"outcome": "fail"})
    stopped = start(local_stack, machine, {"outcome": "wait"})
    timed_out = start(local_stack, short, {"outcome": "wait"})
    wait_until(lambda: sfn.describe_execution(executionArn=stopped)["status"], lambda s: s == "RUNNING", timeout=10)
    sfn.stop_execution(executionArn=stopped, error="ToyStop", cause="stopped by the test")

    # Then the target gets RUNNING then the final status of each, shaped as AWS documents them
    expected = {succeeded: "SUCCEEDED", failed: "FAILED", stopped: "ABORTED", timed_out: "TIMED_OUT"}
    for arn, final in expected.items():
        running, ended = _events_of(function, arn, 2)
        described = finished_execution(sfn, arn).description
        assert (running["detail"]["status"], ended["detail"]["status"]) == ("RUNNING", final)
        for event in (running, ended):
            assert set(event) == EVENT_KEYS
            assert set(event["detail"]) == DETAIL_KEYS
            assert event["version"] == "0"
            assert event["source"] == "aws.states"
            assert event["detail-type"] == "Step Functions Execution Status Change"
            assert (event["account"], event["region"]) == (local_stack.account_id, local_stack.region)
            assert event["resources"] == [arn]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
            detail = event["detail"]
            assert (detail["executionArn"], detail["stateMachineArn"]) == (arn, described["stateMachineArn"])
            assert (detail["name"], detail["input"]) == (described["name"], described["input"])
            assert detail["inputDetails"] == {"included": True}
            assert detail["startDate"] == _millis(described["startDate"])
            assert (detail["redriveCount"], detail["redriveDate"]) == (0, None)
        assert running["id"] != ended["id"]
        assert running["detail"]["stopDate"] is None
        assert running["detail"]["output"] is running["detail"]["outputDetails"] is None
        assert running["detail"]["redriveStatus"] == "NOT_REDRIVABLE"
        assert running["detail"]["redriveStatusReason"] == "Execution is RUNNING and cannot be redriven"
        # moto's DescribeExecution leaves stopDate out for TIMED_OUT (AWS gives it); the event has it
        stop = described.get("stopDate")
        assert ended["detail"]["stopDate"] >= ended["detail"]["startDate"]
        assert stop is None or abs(ended["detail"]["stopDate"] - _millis(stop)) <= 1
        assert ended["detail"]["output"] == described.get("output")
        assert (ended["detail"]["error"], ended["detail"]["cause"]) == (described.get("error"), described.get("cause"))

    done = _events_of(function, succeeded, 2)[1]["detail"]
    assert (json.loads(done["output"]), done["outputDetails"]) == ({"answer": 42}, {"included": True})
    assert (done["redriveStatus"], done["redriveStatusReason"]) == (
        "NOT_REDRIVABLE",
        "Execution is SUCCEEDED and cannot be redriven",
    )
    broken = _events_of(function, failed, 2)[1]["detail"]
    assert (broken["error"], broken["cause"]) == ("ToyError", "failed on purpose")
    assert (broken["output"], broken["outputDetails"]) == (None, None)
    assert (broken["redriveStatus"], broken["redriveStatusReason"]) == ("REDRIVABLE", None)
    assert _events_of(function, timed_out, 2)[1]["detail"]["redriveStatus"] == "REDRIVABLE"


def test_rules_that_do_not_match_get_nothing(local_stack: EmbeddedStack) -> None:
    # Given, on one machine, a rule for its failures, a disabled rule for everything, a rule for another
    # source, and a rule for everything of the machine
    machine = _choice_machine(local_stack)
    failures, failures_arn = _target(local_stack, "record")
    disabled, disabled_arn = _target(local_stack, "record")
    elsewhere, elsewhere_arn = _target(local_stack, "record")
    everything, everything_arn = _target(local_stack, "record")
    _rule(local_stack, {**_status_changes([machine]), "detail": {"status": ["FAILED"]}}, failures_arn)
    _rule(local_stack, _status_changes([machine]), disabled_arn, state="DISABLED")
    _rule(local_stack, {"source": ["aws.s3"]}, elsewhere_arn)
    _rule(local_stack, _status_changes([machine]), everything_arn)

    # When a run succeeds
    arn = start(local_stack, machine, {"outcome": "done"})
    assert [e["detail"]["status"] for e in _events_of(everything, arn, 2)] == ["RUNNING", "SUCCEEDED"]

    # Then, every delivery made, only the rule for everything got its events
    assert events.wait_idle(30)
    assert [event_targets.calls(name) for name in (failures, disabled, elsewhere)] == [0, 0, 0]


def test_a_pattern_on_the_input_and_a_target_input_path(local_stack: EmbeddedStack) -> None:
    # Given a rule on the runs whose input asks to fail, whose target gets only the event's detail
    machine = _choice_machine(local_stack)
    function, function_arn = _target(local_stack, "record")
    name = f"events-test-{uuid.uuid4().hex[:10]}"
    client = local_stack.client("events")
    pattern = {**_status_changes([machine]), "detail": {"input": [{"prefix": '{"outcome": "fail'}]}}
    client.put_rule(Name=name, EventPattern=json.dumps(pattern))
    client.put_targets(Rule=name, Targets=[{"Id": "toy", "Arn": function_arn, "InputPath": "$.detail"}])

    # When one run fails and one succeeds
    succeeded = start(local_stack, machine, {"outcome": "done"})
    failed = start(local_stack, machine, {"outcome": "fail"})
    finished_execution(local_stack.client("stepfunctions"), succeeded)

    # Then only the failing run's two changes arrive, as bare details
    got = wait_until(lambda: event_targets.received(function), lambda found: len(found) >= 2, timeout=30)
    assert events.wait_idle(30)
    assert sorted(detail["status"] for detail in event_targets.received(function)) == ["FAILED", "RUNNING"]
    assert {detail["executionArn"] for detail in got} == {failed}


def test_a_redrive_sends_running_with_its_redrive_count_to_the_reconciler_pattern(local_stack: EmbeddedStack) -> None:
    # Given a rule with the reconciler's own pattern (stopped runs, and RUNNING only for a redrive)
    flaky = create_function(local_stack, "fail_until")
    machine = create_state_machine(
        local_stack,
        {
            "StartAt": "Flaky",
            "States": {
                "Flaky": {
                    "Type": "Task",
                    "Resource": flaky,
                    "Parameters": {"key.$": "$.key", "failures": 1},
                    "End": True,
                }
            },
        },
    )
    function, function_arn = _target(local_stack, "record")
    _rule(local_stack, ReconcilerSpec.event_pattern(machine), function_arn)
    sfn = local_stack.client("stepfunctions")

    # When a run fails, is redriven and then succeeds
    arn = start(local_stack, machine, {"key": f"events-{uuid.uuid4().hex}"})
    assert finished_execution(sfn, arn).status == "FAILED"
    redriven = sfn.redrive_execution(executionArn=arn)
    assert finished_execution(sfn, arn).status == "SUCCEEDED"

    # Then the target got the FAILED change and the redrive's RUNNING change with its count and date,
    # but neither the first RUNNING nor the SUCCEEDED change
    by_status = {event["detail"]["status"]: event for event in _events_of(function, arn, 2)}
    failed, rerun = by_status["FAILED"], by_status["RUNNING"]
    assert events.wait_idle(30)
    assert len(event_targets.received(function)) == 2
    assert (failed["detail"]["status"], failed["detail"]["redriveCount"]) == ("FAILED", 0)
    assert failed["detail"]["error"] == "ProbeRetryableError"
    assert (rerun["detail"]["status"], rerun["detail"]["redriveCount"]) == ("RUNNING", 1)
    assert rerun["detail"]["redriveDate"] == _millis(redriven["redriveDate"])
    assert rerun["detail"]["stopDate"] is None
    assert rerun["detail"]["startDate"] == failed["detail"]["startDate"]
    assert (rerun["detail"]["error"], rerun["detail"]["cause"]) == (None, None)


def test_a_failing_target_is_retried_then_counted_and_delivery_is_at_least_once(local_stack: EmbeddedStack) -> None:
    # Given a target that always fails and one that fails the first delivery of each event
    machine = _choice_machine(local_stack)
    failing, failing_arn = _target(local_stack, "always_fail")
    once, once_arn = _target(local_stack, "fail_once_per_event")
    _rule(local_stack, _status_changes([machine]), failing_arn)
    _rule(local_stack, _status_changes([machine]), once_arn)
    before = events.stats()

    # When a run succeeds
    arn = start(local_stack, machine, {"outcome": "done"})

    # Then the second target got both events on their second delivery
    assert [e["detail"]["status"] for e in _events_of(once, arn, 2)] == ["RUNNING", "SUCCEEDED"]
    assert event_targets.calls(once) == 4
    # And the first was tried three times per event (Lambda's two retries), then each event counted as failed
    assert events.wait_idle(30)
    after = events.stats()
    assert event_targets.calls(failing) == 6
    assert after["failed"] - before["failed"] == 2
    assert after["retried"] - before["retried"] == 2 * 2 + 2
    assert after["delivered"] - before["delivered"] == 2


def test_a_slow_target_does_not_hold_the_run(local_stack: EmbeddedStack) -> None:
    # Given a target that does not return until the test releases it
    machine = _choice_machine(local_stack)
    slow, slow_arn = _target(local_stack, "blocked")
    _rule(local_stack, _status_changes([machine]), slow_arn)
    event_targets.release.clear()
    try:
        # When a run starts, then it succeeds while its RUNNING event is still being delivered
        arn = start(local_stack, machine, {"outcome": "done"})
        assert finished_execution(local_stack.client("stepfunctions"), arn).status == "SUCCEEDED"
        wait_until(lambda: event_targets.calls(slow), lambda n: n >= 1, timeout=30, describe="the slow delivery")
        assert event_targets.received(slow) == []
    finally:
        event_targets.release.set()
    # And once released, both events arrive
    assert [e["detail"]["status"] for e in _events_of(slow, arn, 2)] == ["RUNNING", "SUCCEEDED"]


def test_put_events_reaches_a_lambda_target(local_stack: EmbeddedStack) -> None:
    # Given a rule on an application's own events with a Lambda target
    function, function_arn = _target(local_stack, "record")
    _rule(local_stack, {"source": ["notiflow.test"], "detail": {"kind": ["probe"]}}, function_arn)

    # When the application puts a matching event and one that does not match
    entries = [
        {"Source": "notiflow.test", "DetailType": "Probe", "Detail": json.dumps({"kind": kind})}
        for kind in ("probe", "other")
    ]
    assert local_stack.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0

    # Then the function gets the matching one, shaped as EventBridge delivers it
    got = wait_until(lambda: event_targets.received(function), timeout=30, describe="the put event")
    assert events.wait_idle(30)
    assert len(event_targets.received(function)) == 1
    assert (got[0]["source"], got[0]["detail-type"], got[0]["detail"]) == ("notiflow.test", "Probe", {"kind": "probe"})
    assert set(got[0]) == EVENT_KEYS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got[0]["time"])


def test_a_full_queue_drops_and_counts_events(local_stack: EmbeddedStack) -> None:
    # Given a queue with room for one delivery and a target that holds the delivery threads
    _, function_arn = _target(local_stack, "blocked")
    _rule(local_stack, {"source": ["notiflow.test"], "detail-type": ["Flood"]}, function_arn)
    event_targets.release.clear()
    events.configure(queue_limit=1)
    before = events.stats()
    try:
        # When more events arrive than the threads and the queue hold
        for n in range(event_delivery.DELIVERY_THREADS + 3):
            local_stack.client("events").put_events(
                Entries=[{"Source": "notiflow.test", "DetailType": "Flood", "Detail": json.dumps({"n": n})}]
            )
        # Then some were dropped and counted
        after = events.stats()
        assert after["dropped"] - before["dropped"] >= 2
        assert (after["submitted"] - before["submitted"]) + (after["dropped"] - before["dropped"]) == 5
    finally:
        events.configure()
        event_targets.release.set()
    assert events.wait_idle(30)


def _execution(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "sm_type": "STANDARD",
        "exec_status": "SUCCEEDED",
        "exec_arn": "arn:aws:states:us-east-1:123456789012:execution:m:e",
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:m",
        "name": "e",
        "account_id": "123456789012",
        "region_name": "us-east-1",
        "start_date": None,
        "stop_date": None,
        "input_data": {},
        "output": {},
        "error": None,
        "cause": None,
    }
    fields.update(overrides)
    return types.SimpleNamespace(**fields)


def test_large_payloads_are_left_out_as_aws_does() -> None:
    big = "x" * (events.PAYLOAD_LIMIT_BYTES // 2 + 10)
    # An input and output that together exceed the limit: the input is left out
    detail = events.status_change_detail(_execution(input_data={"a": big}, output={"b": big}))
    assert (detail["input"], detail["inputDetails"]) == (None, {"included": False})
    assert (json.loads(detail["output"]), detail["outputDetails"]) == ({"b": big}, {"included": True})
    # An output over the limit on its own: the output is left out, the input stays
    detail = events.status_change_detail(_execution(output={"b": big * 2}))
    assert (detail["output"], detail["outputDetails"]) == (None, {"included": False})
    assert (detail["input"], detail["inputDetails"]) == ("{}", {"included": True})


def test_express_runs_send_no_status_change_events(local_stack: EmbeddedStack) -> None:
    # Given an Express machine (on AWS only Standard workflows emit these events) and a rule on it,
    # and a Standard machine with a rule of its own
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    express = local_stack.client("stepfunctions").create_state_machine(
        name=f"events-express-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{local_stack.account_id}:role/{STATE_MACHINE_ROLE_NAME}",
        type="EXPRESS",
    )["stateMachineArn"]
    standard = create_state_machine(local_stack, definition)
    express_target, express_arn = _target(local_stack, "record")
    standard_target, standard_arn = _target(local_stack, "record")
    _rule(local_stack, _status_changes([express]), express_arn)
    _rule(local_stack, _status_changes([standard]), standard_arn)

    # When both run (the Express one first)
    start(local_stack, express, {})
    arn = start(local_stack, standard, {})

    # Then only the Standard run's changes were delivered
    assert len(_events_of(standard_target, arn, 2)) == 2
    assert events.wait_idle(30)
    assert event_targets.calls(express_target) == 0


def test_the_cheap_check_admits_only_patterns_that_could_match() -> None:
    assert not events.may_match({"source": ["aws.s3"]})
    assert not events.may_match({"source": ["aws.states"], "detail-type": ["AWS API Call via CloudTrail"]})
    assert not events.may_match({})  # a rule with only a schedule
    assert events.may_match({"source": [{"prefix": "aws."}]})
    assert events.may_match({"detail": {"status": ["FAILED"]}})
    assert events.may_match({"$or": [{"source": ["aws.states"]}, {"source": ["aws.s3"]}]})
    # Statuses a pattern lists, also in each $or branch, as the reconciler's pattern does
    reconciler = ReconcilerSpec.event_pattern("arn:aws:states:us-east-1:123456789012:stateMachine:m")
    assert [events.may_match(reconciler, status) for status in ("SUCCEEDED", "RUNNING", "FAILED")] == [
        False,
        True,
        True,
    ]
    assert events.may_match({"detail": {"status": [{"anything-but": ["RUNNING"]}]}}, "SUCCEEDED")
    assert events.may_match({"detail": {"$or": [{"status": ["FAILED"]}, {"name": ["x"]}]}}, "SUCCEEDED")
    assert not events.may_match({"detail": {"status": ["FAILED"]}}, "SUCCEEDED")
