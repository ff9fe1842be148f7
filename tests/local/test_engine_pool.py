"""The worker pool: waiting runs are parked without a thread, stops and timeouts reach them, tasks run inline."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from notiflow.local import engine
from notiflow.local.engine import scheduler
from notiflow.local.fixtures import execution_history, finished_execution, stack_settings_for_tests
from notiflow.local.stack import StackSettings
from notiflow.shared.waiting import wait_until
from tests.local.helpers import create_function, create_state_machine, start

WORKERS = 2


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    # Two workers; waits scaled by 0.01 and not capped, so a 10,000 s Wait lasts 100 s unless stopped.
    return stack_settings_for_tests(engine_workers=WORKERS, time_scale=0.01, max_wait_seconds=None)


def _engine_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("engine-worker-")]


def _long_wait_machine(stack) -> str:
    return create_state_machine(
        stack,
        {
            "StartAt": "Mark",
            "States": {
                "Mark": {"Type": "Pass", "Result": "marked", "ResultPath": "$.mark", "Next": "Hold"},
                "Hold": {"Type": "Wait", "Seconds": 10_000, "End": True},
            },
        },
    )


def test_runs_waiting_in_a_wait_state_hold_no_worker(local_stack):
    # Given twelve runs of a machine that waits 100 s (real) in a Wait state, on a pool of two workers
    sfn = local_stack.client("stepfunctions")
    machine = _long_wait_machine(local_stack)
    arns = [start(local_stack, machine, {"n": index}) for index in range(12)]

    # When they have all reached the Wait state
    stats = wait_until(scheduler.stats, lambda s: s["parked"] == 12, timeout=30, describe="12 parked runs")

    # Then all twelve are parked while no more than two worker threads exist, none of them busy
    assert stats["workers"] <= WORKERS
    assert stats["active"] == 0
    assert len(_engine_threads()) <= WORKERS

    # And stopping them wakes each at once: every run ends ABORTED long before its 100 s wait
    for arn in arns:
        sfn.stop_execution(executionArn=arn, error="Test", cause="done waiting")
    results = [finished_execution(sfn, arn, timeout=20) for arn in arns]
    assert {result.status for result in results} == {"ABORTED"}
    assert all(result.summary.outcome == "ExecutionAborted" for result in results)
    assert wait_until(scheduler.stats, lambda s: s["parked"] == 0, timeout=10)["active"] == 0


def test_a_stopped_run_parked_in_a_retry_back_off_ends_at_once(local_stack):
    # Given a run whose task keeps failing, with a 10,000 s back-off (100 s real)
    sfn = local_stack.client("stepfunctions")
    flaky = create_function(local_stack, "fail_until")
    machine = create_state_machine(
        local_stack,
        {
            "StartAt": "Flaky",
            "States": {
                "Flaky": {
                    "Type": "Task",
                    "Resource": flaky,
                    "Retry": [{"ErrorEquals": ["ProbeRetryableError"], "IntervalSeconds": 10_000, "MaxAttempts": 3}],
                    "End": True,
                }
            },
        },
    )
    arn = start(local_stack, machine, {"key": f"parked-retry-{uuid.uuid4().hex[:8]}", "failures": 5})
    wait_until(
        lambda: [event["type"] for event in execution_history(sfn, arn)],
        lambda types: "LambdaFunctionFailed" in types,
        timeout=30,
        describe="the first failed attempt",
    )
    wait_until(scheduler.stats, lambda s: s["parked"] >= 1, timeout=10, describe="the run parked in its back-off")

    # When it is stopped
    sfn.stop_execution(executionArn=arn, error="Operator", cause="no more retries")

    # Then it ends ABORTED without finishing the back-off, after one attempt
    result = finished_execution(sfn, arn, timeout=20)
    assert result.status == "ABORTED"
    assert result.summary.retries["Flaky"] == 0


def test_a_run_stopped_while_queued_is_aborted_when_a_worker_frees(local_stack):
    # Given both workers busy in a handler that sleeps, and a third run queued behind them
    sfn = local_stack.client("stepfunctions")
    sleepy = create_function(local_stack, "sleepy", timeout=30)
    busy_machine = create_state_machine(
        local_stack,
        {"StartAt": "Sleep", "States": {"Sleep": {"Type": "Task", "Resource": sleepy, "End": True}}},
    )
    busy = [start(local_stack, busy_machine, {"seconds": 2}) for _ in range(WORKERS)]
    wait_until(scheduler.stats, lambda s: s["active"] == WORKERS, timeout=20, describe="both workers busy")
    queued = start(local_stack, _long_wait_machine(local_stack))
    assert scheduler.stats()["queued"] == 1

    # When the queued run is stopped
    sfn.stop_execution(executionArn=queued, error="Operator", cause="never mind")

    # Then it ends ABORTED with a history of its start and its abort, and the busy runs succeed
    result = finished_execution(sfn, queued, timeout=30)
    assert result.status == "ABORTED"
    assert [event["type"] for event in result.history] == ["ExecutionStarted", "ExecutionAborted"]
    assert {finished_execution(sfn, arn, timeout=30).status for arn in busy} == {"SUCCEEDED"}


def test_a_task_running_past_its_timeout_seconds_fails_with_states_timeout(local_stack):
    # Given a task with TimeoutSeconds 1 whose handler takes 2 s (within the function's own Timeout)
    sleepy = create_function(local_stack, "sleepy", timeout=30)
    machine = create_state_machine(
        local_stack,
        {"StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": sleepy, "TimeoutSeconds": 1, "End": True}}},
    )

    # When it runs, then the run fails as Step Functions reports a timed-out task
    result = finished_execution(local_stack.client("stepfunctions"), start(local_stack, machine, {"seconds": 2}))
    assert result.status == "FAILED"
    assert result.description["error"] == "States.Timeout"


def test_a_program_past_its_timeout_seconds_times_out_while_parked(local_stack):
    # Given a machine with TimeoutSeconds 1 that waits 100 s (real) in a Wait state
    machine = create_state_machine(
        local_stack,
        {
            "TimeoutSeconds": 1,
            "StartAt": "Hold",
            "States": {"Hold": {"Type": "Wait", "Seconds": 10_000, "End": True}},
        },
    )

    # When it runs, then it ends TIMED_OUT once its second is up, not after the wait
    result = finished_execution(local_stack.client("stepfunctions"), start(local_stack, machine), timeout=20)
    assert result.status == "TIMED_OUT"
    assert result.summary.outcome == "ExecutionTimedOut"


def test_listeners_hear_of_every_end_including_after_a_redrive(local_stack):
    # Given a listener and a run that fails once, then is redriven
    sfn = local_stack.client("stepfunctions")
    flaky = create_function(local_stack, "fail_until")
    machine = create_state_machine(
        local_stack,
        {"StartAt": "Flaky", "States": {"Flaky": {"Type": "Task", "Resource": flaky, "End": True}}},
    )
    ends: list[tuple[str, str]] = []
    lock = threading.Lock()

    def hear(execution) -> None:
        with lock:
            ends.append((execution.exec_arn, execution.status))

    remove = engine.add_execution_listener(hear)
    try:
        arn = start(local_stack, machine, {"key": f"listener-{uuid.uuid4().hex[:8]}", "failures": 1})
        assert finished_execution(sfn, arn).status == "FAILED"
        sfn.redrive_execution(executionArn=arn)
        assert finished_execution(sfn, arn).status == "SUCCEEDED"

        # Then the listener heard both ends, in order
        heard = wait_until(lambda: [end for end in ends if end[0] == arn], lambda e: len(e) == 2, timeout=10)
    finally:
        remove()
    assert heard == [(arn, "FAILED"), (arn, "SUCCEEDED")]


def test_executions_share_one_snapshot_of_their_state_machine_per_revision(local_stack):
    # Given a machine run twice, then updated, then run again
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    sfn = local_stack.client("stepfunctions")
    backend = stepfunctions_parser_backends[local_stack.account_id][local_stack.region]
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}}
    machine = create_state_machine(local_stack, definition)
    first, second = (start(local_stack, machine) for _ in range(2))
    sfn.update_state_machine(
        stateMachineArn=machine,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 2, "End": True}}}),
    )
    third = start(local_stack, machine)
    results = [finished_execution(sfn, arn) for arn in (first, second, third)]

    # Then the first two share one snapshot, the third has the new revision, and each ran its own
    snapshots = [backend.describe_execution(arn).state_machine for arn in (first, second, third)]
    assert snapshots[0] is snapshots[1]
    assert snapshots[2] is not snapshots[0]
    assert [result.output for result in results] == [1, 1, 2]
    assert snapshots[0].executions == []
