"""What the local engine promises, run through tiny state machines on the embedded stack.

Handler exceptions by class name, the function's environment and context, RedriveCount, the time
scale, the runtime's error names, conflicting environments, shared parsed programs, atomic
conditional writes and Step Functions Local mock configs. The moto internals behind them are
guarded by tests/local/test_engine_guard.py.
"""

from __future__ import annotations

import json
import threading
import time
import types
from typing import Any

import pytest
from botocore.exceptions import ClientError

from notiflow.local import engine
from notiflow.local.engine import speed
from notiflow.local.fixtures import finished_execution
from notiflow.local.stack import EmbeddedStack
from tests.local import fake_handlers
from tests.local.helpers import create_function, create_state_machine, start

P = "moto.stepfunctions.parser"


def test_parsed_programs_are_shared_with_every_heap_key_generated():
    # Given a definition parsed through the cache
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}})
    first = speed.parse_program(definition)

    # Then the same object comes back and every component already holds its heap key
    assert speed.parse_program(definition) is first
    components = []
    pending: list[Any] = [first]
    while pending:
        obj = pending.pop()
        if isinstance(obj, list):
            pending.extend(obj)
        elif isinstance(obj, dict):
            pending.extend(obj.values())
        elif type(obj).__module__.startswith(P) and hasattr(obj, "__dict__"):
            if isinstance(obj, EvalComponent):
                components.append(obj)
            pending.extend(vars(obj).values())
    assert components
    assert all("_EvalComponent__heap_key" in vars(component) for component in components)


def test_conflicting_environment_is_refused_at_invocation():
    # Given two functions that disagree on one variable
    first = types.SimpleNamespace(function_arn="arn:first", environment_vars={"NOTIFLOW_CONFLICT_PROBE": "a"})
    second = types.SimpleNamespace(function_arn="arn:second", environment_vars={"NOTIFLOW_CONFLICT_PROBE": "b"})
    try:
        engine.apply_function_environment(first)

        # When the second one is about to run, then it is refused with both values named
        with pytest.raises(engine.EnvironmentConflictError, match="NOTIFLOW_CONFLICT_PROBE"):
            engine.apply_function_environment(second)
    finally:
        engine.restore_environment()


# -- the engine behaves ---------------------------------------------------------------------------


def _catching_machine(stack: EmbeddedStack, function_arn: str) -> str:
    return create_state_machine(
        stack,
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                    "Catch": [{"ErrorEquals": ["ProbePermanentError"], "ResultPath": "$.caught", "Next": "Caught"}],
                    "OutputPath": "$.Payload",
                    "End": True,
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        },
    )


def test_handler_exception_is_caught_by_its_class_name(local_stack):
    # Given a Lambda task whose handler raises ProbePermanentError, caught by that name
    machine = _catching_machine(local_stack, create_function(local_stack, "always_fail"))

    # When it runs
    result = finished_execution(local_stack.client("stepfunctions"), start(local_stack, machine, {"message": "nope"}))

    # Then the Catch matched the class name and the cause is the runtime's error payload
    assert result.status == "SUCCEEDED"
    assert result.summary.entered == ["Call", "Caught"]
    caught = result.output["caught"]
    assert caught["Error"] == "ProbePermanentError"
    cause = json.loads(caught["Cause"])
    assert cause["errorType"] == "ProbePermanentError"
    assert cause["errorMessage"] == "nope"
    assert cause["requestId"]
    assert any("always_fail" in line for line in cause["stackTrace"])


def test_environment_and_context_reach_the_handler(local_stack):
    # Given a function with an Environment variable and a 7 s Timeout
    arn = create_function(
        local_stack, "echo", environment={fake_handlers.PROBE_VARIABLE: "from-function-config"}, timeout=7
    )
    machine = _catching_machine(local_stack, arn)

    # When it runs
    result = finished_execution(local_stack.client("stepfunctions"), start(local_stack, machine, {"k": "v"}))

    # Then the handler saw the variable and a Lambda-like context
    assert result.status == "SUCCEEDED"
    echoed = result.output
    assert echoed["event"] == {"k": "v"}
    assert echoed["probe"] == "from-function-config"
    assert echoed["invokedFunctionArn"] == arn
    assert echoed["functionName"] == arn.rsplit(":", 1)[1]
    assert echoed["functionVersion"] == "$LATEST"
    assert echoed["memoryLimitInMb"] == 128
    assert echoed["logGroupName"] == f"/aws/lambda/{echoed['functionName']}"
    assert 0 < echoed["remainingMillis"] <= 7000


def test_execution_context_has_redrive_count_zero(local_stack):
    # Given a state reading $$.Execution.RedriveCount
    machine = create_state_machine(
        local_stack,
        {
            "StartAt": "Read",
            "States": {
                "Read": {
                    "Type": "Pass",
                    "Parameters": {"redriveCount.$": "$$.Execution.RedriveCount", "name.$": "$$.Execution.Name"},
                    "End": True,
                }
            },
        },
    )

    # When a fresh execution runs
    result = finished_execution(local_stack.client("stepfunctions"), start(local_stack, machine, name="fresh-run"))

    # Then the count is 0
    assert result.output == {"redriveCount": 0, "name": "fresh-run"}


def test_time_scale_shortens_retry_backoff_and_wait(local_stack):
    # Given a task failing twice with a 100 s back-off, then a 300 s Wait (about 8 minutes nominally)
    arn = create_function(local_stack, "fail_until")
    machine = create_state_machine(
        local_stack,
        {
            "StartAt": "Flaky",
            "States": {
                "Flaky": {
                    "Type": "Task",
                    "Resource": arn,
                    "Retry": [
                        {
                            "ErrorEquals": ["ProbeRetryableError"],
                            "IntervalSeconds": 100,
                            "BackoffRate": 1.5,
                            "MaxAttempts": 3,
                        }
                    ],
                    "Next": "Pause",
                },
                "Pause": {"Type": "Wait", "Seconds": 300, "End": True},
            },
        },
    )
    engine.clear_recent_waits()
    started = time.monotonic()

    # When it runs under the test time scale
    result = finished_execution(
        local_stack.client("stepfunctions"),
        start(local_stack, machine, {"key": f"scale-{time.monotonic_ns()}", "failures": 2}),
        timeout=60,
    )

    # Then it succeeded after two retries within seconds, each wait scaled and capped
    assert result.status == "SUCCEEDED"
    assert result.summary.retries["Flaky"] == 2
    assert time.monotonic() - started < 30
    scale, cap = engine.time_scale()
    waits = [(w.kind, w.nominal_seconds) for w in engine.recent_waits()]
    assert ("retry", 100.0) in waits
    assert ("retry", 150.0) in waits
    assert ("wait", 300.0) in waits
    for record in engine.recent_waits():
        assert record.real_seconds == pytest.approx(min(record.nominal_seconds * scale, cap or float("inf")))


def test_timeout_and_unmarshallable_results_fail_like_the_runtime(local_stack):
    # Given a handler sleeping past its 1 s Timeout and one returning something that is not JSON
    sleepy = create_function(local_stack, "sleepy", timeout=1)
    not_json = create_function(local_stack, "not_json")
    sfn = local_stack.client("stepfunctions")

    # When each runs as the only task of a machine
    timed_out = finished_execution(sfn, start(local_stack, _catching_machine(local_stack, sleepy), {"seconds": 3}))
    unmarshallable = finished_execution(sfn, start(local_stack, _catching_machine(local_stack, not_json)))

    # Then the runs fail with the runtime's error names
    assert timed_out.status == "FAILED"
    assert timed_out.description["error"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in timed_out.description["cause"]
    assert unmarshallable.description["error"] == "Runtime.MarshalError"


def test_missing_handler_module_is_an_import_error(local_stack):
    # Given a function whose Handler names a module that does not exist
    arn = local_stack.client("lambda").create_function(
        FunctionName="probe-missing-module",
        Runtime="python3.12",
        Role=f"arn:aws:iam::{local_stack.account_id}:role/notiflow-lambda",
        Handler="lambdas.no_such_step.handler.lambda_handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )["FunctionArn"]

    # When it is invoked
    response = local_stack.client("lambda").invoke(FunctionName=arn, Payload=b"{}")

    # Then the Invoke API reports the runtime's import error
    assert response["FunctionError"]
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert "lambdas.no_such_step.handler" in payload["errorMessage"]


def test_conflicting_environment_is_refused_at_function_creation(local_stack):
    # Given the stack's functions, which set NOTIFLOW_TABLE_NAME
    # When another function wants a different table
    with pytest.raises(ClientError) as refused:
        create_function(local_stack, "echo", environment={"NOTIFLOW_TABLE_NAME": "some-other-table"})

    # Then creation is refused, naming the variable
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "NOTIFLOW_TABLE_NAME" in refused.value.response["Error"]["Message"]


def test_concurrent_executions_share_one_parsed_program_safely(local_stack):
    # Given one machine with a retried task, started 12 times at once
    arn = create_function(local_stack, "fail_until")
    machine = create_state_machine(
        local_stack,
        {
            "StartAt": "Flaky",
            "States": {
                "Flaky": {
                    "Type": "Task",
                    "Resource": arn,
                    "Retry": [{"ErrorEquals": ["ProbeRetryableError"], "IntervalSeconds": 1, "MaxAttempts": 5}],
                    "End": True,
                }
            },
        },
    )
    keys = [f"race-{index}-{time.monotonic_ns()}" for index in range(12)]
    arns: list[str] = []
    lock = threading.Lock()

    def launch(key: str, failures: int) -> None:
        execution = start(local_stack, machine, {"key": key, "failures": failures})
        with lock:
            arns.append(execution)

    threads = [threading.Thread(target=launch, args=(key, index % 4)) for index, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # When they all finish, then each retried exactly as often as its handler failed
    sfn = local_stack.client("stepfunctions")
    results = {arn: finished_execution(sfn, arn, timeout=60) for arn in arns}
    assert len(results) == 12
    for result in results.values():
        assert result.status == "SUCCEEDED", result.description
        failures = json.loads(result.description["input"])["failures"]
        assert result.summary.retries["Flaky"] == failures
        assert result.output == {"attempts": failures + 1}


def _race_to_create(backend: Any, table_name: str, writers: int) -> list[bool]:
    """``writers`` threads released together, each creating one item conditionally; who won."""
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    key = {"notificationId": {"S": f"race-{time.monotonic_ns()}"}}
    barrier = threading.Barrier(writers)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def contend(index: int) -> None:
        barrier.wait()
        try:
            backend.update_item(
                table_name=table_name,
                key=key,
                update_expression="SET claimedBy = :me",
                expression_attribute_names={},
                expression_attribute_values={":me": {"S": str(index)}},
                condition_expression="attribute_not_exists(notificationId)",
            )
            won = True
        except ConditionalCheckFailed:
            won = False
        with lock:
            outcomes.append(won)

    threads = [threading.Thread(target=contend, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_concurrent_conditional_writes_have_exactly_one_winner(local_stack):
    # Given the backend serving the stack (no HTTP in between, so the writers really overlap)
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[local_stack.account_id][local_stack.region]

    # When 16 writers race five times to create one item each time
    rounds = [_race_to_create(backend, local_stack.table_name, 16) for _ in range(5)]

    # Then exactly one write won every race, as DynamoDB guarantees
    assert all(sorted(outcomes) == [False] * 15 + [True] for outcomes in rounds), rounds


@pytest.mark.parametrize(
    ("responses", "problem"),
    [
        ({"0": {"Return": {}, "Throw": {"Error": "E"}}}, "exactly one of Return or Throw"),
        ({"zero": {"Return": {}}}, "not a number or a range"),
        ({"2-1": {"Return": {}}}, "not a number or a range"),
        ({"0": {"Throw": {"Cause": "no error name"}}}, "needs an Error"),
        ({"1": {"Return": {}}}, "consecutively numbered"),
    ],
)
def test_malformed_mock_config_is_reported(responses, problem):
    # Given a mock config whose only mocked response is malformed
    engine.set_mock_config(
        {
            "StateMachines": {"m": {"TestCases": {"T": {"S": "R"}}}},
            "MockedResponses": {"R": responses},
        }
    )
    try:
        # When the test case is resolved, then the problem is named
        with pytest.raises(engine.MockConfigError, match=problem):
            engine.mock_test_case_for("m", "T")
    finally:
        engine.set_mock_config(None)


def test_mock_config_ranges_map_to_retry_counts():
    # Given a response failing on attempts 0-1 and returning on attempt 2
    engine.set_mock_config(
        {
            "StateMachines": {"m": {"TestCases": {"T": {"S": "R"}}}},
            "MockedResponses": {
                "R": {"0-1": {"Throw": {"Error": "E", "Cause": "c"}}, "2": {"Return": {"StatusCode": 200}}}
            },
        }
    )
    try:
        case = engine.mock_test_case_for("m", "T")
    finally:
        engine.set_mock_config(None)

    # Then moto's test case holds one response per retry count
    responses = case.state_mocked_responses["S"].mocked_responses
    assert [type(r).__name__ for r in responses] == [
        "MockedResponseThrow",
        "MockedResponseThrow",
        "MockedResponseReturn",
    ]
    assert responses[2].payload == {"StatusCode": 200}


def test_mock_config_file_named_by_sfn_mock_config(monkeypatch, pytestconfig):
    # Given no explicit config but SFN_MOCK_CONFIG naming the repository's mock config, as for Step Functions Local
    engine.set_mock_config(None)
    monkeypatch.setenv(engine.MOCK_CONFIG_ENV, str(pytestconfig.rootpath / "tests/workflows/mock_config.json"))

    # When a test case is resolved, then it comes from that file
    case = engine.mock_test_case_for("notiflow-delivery", "RetryPath")
    assert set(case.state_mocked_responses) == {"Validate", "Deduplicate", "Deliver", "RecordSuccess"}
    assert len(case.state_mocked_responses["Deliver"].mocked_responses) == 3


def test_in_process_clients_never_reach_the_network(monkeypatch):
    from moto.core import botocore_stubber

    # Given an environment pointing every AWS client at a port nothing listens on
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    speed._clients.clear()
    try:
        # When the engine's in-process client calls DynamoDB, then moto answers in this process
        assert "TableNames" in speed.inprocess_client("dynamodb").list_tables()

        # And a request moto would not answer fails instead of going out
        monkeypatch.setattr(botocore_stubber.BotocoreStubber, "process_request", lambda self, request: None)
        with pytest.raises(speed.NotAnsweredInProcessError, match=r"dynamodb\.us-east-1\.amazonaws\.com"):
            speed.inprocess_client("dynamodb").list_tables()
    finally:
        speed._clients.clear()


def test_state_data_copies_keep_deepcopy_semantics():
    # Given state data with a shared part, and data pickle cannot copy
    shared = {"k": [1, 2]}
    value = {"a": shared, "b": shared, "n": None, "f": 1.5}
    unpicklable = {"lock": threading.Lock()}

    # When the interpreter's copy copies them
    copied = speed.STATE_DATA_COPY.deepcopy(value)

    # Then the copy is equal, independent, and keeps the shared part shared, as deepcopy does
    assert copied == value
    assert copied["a"] is copied["b"]
    assert copied["a"] is not shared
    with pytest.raises(TypeError):
        speed.STATE_DATA_COPY.deepcopy(unpicklable)


def test_invocations_queued_behind_a_cold_start_run_concurrently(local_stack):
    # Given a cold function whose invocations take a while (as a delivery waiting on its receiver does)
    arn = create_function(local_stack, "slow")
    fake_handlers.reset_in_flight()
    client = local_stack.client("lambda")
    calls = 5

    # When several invocations arrive while the first one is still initialising the function
    def invoke() -> None:
        client.invoke(FunctionName=arn, Payload=json.dumps({"seconds": 0.5}).encode())

    threads = [threading.Thread(target=invoke) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then only the cold start ran alone: the ones that queued behind it ran side by side
    assert fake_handlers.peak_in_flight() >= 2
