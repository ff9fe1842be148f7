"""Fault injection: the spec, deterministic decisions, and each kind firing at its real seam with its error name.

Seams are exercised on the embedded stack with toy functions and state machines (each fault at
probability 1 where a test needs it to fire), then the real pipeline runs with throttles on and
every notification must still end SUCCESS: the definitions' Retry absorbs them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdas.ingest.starter import execution_name
from lambdas.shared.constants import DeliveryMode
from notiflow.demo.receiver import WebhookReceiver
from notiflow.local import engine
from notiflow.local.engine import faults
from notiflow.local.fixtures import finished_execution, stack_settings_for_tests, wait_for_execution
from notiflow.local.stack import LAMBDA_ROLE_NAME, STATE_MACHINE_ROLE_NAME, EmbeddedStack, StackSettings
from notiflow.shared.waiting import wait_until
from tests.local import fake_handlers
from tests.local.helpers import _zip, create_function, create_state_machine, start

_sent: list[str] = []


def send_request(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A handler that makes one HTTP request with requests, as the deliver handler does."""
    response = requests.post(event["url"], json={"id": event["notificationId"]}, timeout=5)
    _sent.append(event["notificationId"])
    return {"status": response.status_code}


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    return stack_settings_for_tests(delivery_mode=DeliveryMode.STANDARD)


@pytest.fixture
def inject() -> Iterator[Any]:
    """``inject("kind=p", seed=...)`` configures faults for this test only."""
    yield lambda spec, seed=0: faults.configure(spec, seed=seed)
    faults.clear()


def _task_machine(stack: EmbeddedStack, function_arn: str) -> str:
    return create_state_machine(
        stack,
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                    "End": True,
                }
            },
        },
    )


def _client_without_retries(stack: EmbeddedStack, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack.endpoint_url,
        region_name=stack.region,
        config=Config(retries={"total_max_attempts": 1}),
    )


def _failure(stack: EmbeddedStack, execution_arn: str) -> tuple[str, str]:
    description = wait_for_execution(stack.client("stepfunctions"), execution_arn)
    return description["status"], description.get("error", "")


# -- the spec and the decisions ------------------------------------------------------------------


def test_spec_parses_every_kind_and_prints_back():
    spec = faults.FaultSpec.parse(
        "lambda-throttle=0.05, lambda-timeout=0.01,ddb-throttle=0.05,sqs-duplicate=0.02,crash-after-send=0.01,"
        "crash-after-state=Deliver:0.1,crash-after-state=Validate@hello-1",
        seed=7,
    )

    assert spec.probabilities == {
        "lambda-throttle": 0.05,
        "lambda-timeout": 0.01,
        "ddb-throttle": 0.05,
        "sqs-duplicate": 0.02,
        "crash-after-send": 0.01,
    }
    assert spec.crash_after_state == {"Deliver": 0.1}
    assert spec.crash_once == (("Validate", "hello-1"),)
    assert spec.seed == 7
    assert faults.FaultSpec.parse(spec.text(), 7) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lambda-explode=0.1", "unknown fault kind"),
        ("lambda-throttle=1.5", "not between 0 and 1"),
        ("lambda-throttle=often", "not a probability"),
        ("lambda-throttle", "expected kind=value"),
        ("crash-after-state=0.1", "State:probability"),
        ("crash-after-state=@hello", "State@notification"),
    ],
)
def test_a_bad_spec_is_refused_with_the_reason(text, message):
    with pytest.raises(faults.FaultSpecError, match=message):
        faults.FaultSpec.parse(text)


def test_decisions_depend_on_the_seed_and_subject_only_not_on_the_order():
    subjects = [f"fn|n-{i}" for i in range(2000)] * 2
    first = faults.FaultInjector(faults.FaultSpec.parse("lambda-throttle=0.1", seed=7))
    again = faults.FaultInjector(faults.FaultSpec.parse("lambda-throttle=0.1", seed=7))
    other = faults.FaultInjector(faults.FaultSpec.parse("lambda-throttle=0.1", seed=8))

    decided = {(s, i < 2000): first.decide("lambda-throttle", s) for i, s in enumerate(subjects)}
    reversed_order = {
        (s, i >= 2000): again.decide("lambda-throttle", s) for i, s in reversed(list(enumerate(subjects)))
    }
    with_other_seed = {(s, i < 2000): other.decide("lambda-throttle", s) for i, s in enumerate(subjects)}

    assert decided == reversed_order
    assert decided != with_other_seed
    rate = sum(decided.values()) / len(decided)
    assert 0.08 < rate < 0.12


def test_zero_probability_never_fires_and_one_always_does():
    injector = faults.FaultInjector(faults.FaultSpec.parse("lambda-throttle=0,ddb-throttle=1"))

    assert not any(injector.decide("lambda-throttle", f"s{i}") for i in range(1000))
    assert not any(injector.decide("sqs-duplicate", f"s{i}") for i in range(1000))
    assert all(injector.decide("ddb-throttle", f"s{i}") for i in range(1000))
    assert injector.report()["checks"]["lambda-throttle"] == 0


def test_the_report_file_is_written_for_another_process(tmp_path):
    path = tmp_path / "faults.json"
    injector = faults.configure("lambda-timeout=1", seed=3, report_path=path)
    assert injector is not None
    try:
        injector.record("lambda-timeout", "Sandbox.Timedout", "lambda-invoke", function="f", notification="n-1")
        wait_until(path.exists, timeout=5, describe="the report file")
    finally:
        faults.clear()

    report = json.loads(path.read_text())
    assert report["spec"] == "lambda-timeout=1"
    assert report["seed"] == 3
    assert report["counts"]["lambda-timeout"] == 1
    assert report["hits"][0]["notification"] == "n-1"


# -- each kind at its seam ------------------------------------------------------------------------


def test_lambda_throttle_fails_a_task_with_lambda_too_many_requests_before_the_handler_runs(local_stack, inject):
    # Given a task calling a function, and every invocation throttled
    key = uuid.uuid4().hex
    machine = _task_machine(local_stack, create_function(local_stack, "fail_until"))
    injector = inject("lambda-throttle=1")

    # When a run calls it
    arn = start(local_stack, machine, {"key": key, "failures": 0})

    # Then the task fails with Lambda's error name, the handler never ran, and the hit is recorded
    assert _failure(local_stack, arn) == ("FAILED", "Lambda.TooManyRequestsException")
    assert fake_handlers.attempts(key) == 0
    [hit] = injector.hits("lambda-throttle")
    assert hit.execution == arn.rsplit(":", 1)[-1]
    assert hit.error == "TooManyRequestsException"
    assert injector.counts()["lambda-throttle"] == 1


def test_lambda_throttle_answers_the_invoke_api_with_429(local_stack, inject):
    function = create_function(local_stack, "echo")
    inject("lambda-throttle=1")
    lambdas = _client_without_retries(local_stack, "lambda")

    with pytest.raises(ClientError) as refused:
        lambdas.invoke(FunctionName=function, Payload=b"{}")

    assert refused.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_lambda_timeout_reports_sandbox_timedout_after_the_handler_ran(local_stack, inject):
    key = uuid.uuid4().hex
    machine = _task_machine(local_stack, create_function(local_stack, "fail_until"))
    injector = inject("lambda-timeout=1")

    arn = start(local_stack, machine, {"key": key, "failures": 0})

    assert _failure(local_stack, arn) == ("FAILED", "Sandbox.Timedout")
    assert fake_handlers.attempts(key) == 1
    assert injector.counts()["lambda-timeout"] == 1


def test_crash_after_send_fails_the_invocation_after_the_receiver_got_the_request(local_stack, inject):
    # Given a function that posts to a receiver, and a crash armed for every invocation
    name = f"probe-send-{uuid.uuid4().hex[:8]}"
    arn = local_stack.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=f"arn:aws:iam::{local_stack.account_id}:role/{LAMBDA_ROLE_NAME}",
        Handler=f"{__name__}.send_request",
        Code={"ZipFile": _zip()},
        Timeout=10,
    )["FunctionArn"]
    machine = _task_machine(local_stack, arn)
    silent = _task_machine(local_stack, create_function(local_stack, "echo"))
    with WebhookReceiver(secret=local_stack.signing_secret) as receiver:
        injector = inject("crash-after-send=1")

        # When a run calls it
        execution = start(local_stack, machine, {"url": receiver.url("/crash"), "notificationId": "n-crash"})
        quiet = start(local_stack, silent, {"notificationId": "n-quiet"})

        # Then the receiver got the request, the handler never got past it, and the task died
        assert _failure(local_stack, execution) == ("FAILED", "Runtime.ExitError")
        assert len(receiver.requests_for("/crash")) == 1
    assert "n-crash" not in _sent
    # A handler that sends nothing is not hit
    assert _failure(local_stack, quiet)[0] == "SUCCEEDED"
    [hit] = injector.hits("crash-after-send")
    assert (hit.function, hit.notification) == (name, "n-crash")


def test_ddb_throttle_fails_a_service_integration_and_a_handler_call(local_stack, inject):
    machine = create_state_machine(
        local_stack,
        {
            "StartAt": "Write",
            "States": {
                "Write": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::dynamodb:putItem",
                    "Parameters": {"TableName": local_stack.table_name, "Item": {"notificationId": {"S": "ddb-1"}}},
                    "End": True,
                }
            },
        },
    )
    injector = inject("ddb-throttle=1")
    dynamodb = _client_without_retries(local_stack, "dynamodb")

    arn = start(local_stack, machine)
    with pytest.raises(ClientError) as refused:
        dynamodb.get_item(TableName=local_stack.table_name, Key={"notificationId": {"S": "ddb-2"}})

    assert _failure(local_stack, arn) == ("FAILED", "DynamoDB.ProvisionedThroughputExceededException")
    assert refused.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    hits = {hit.notification: hit for hit in injector.hits("ddb-throttle")}
    assert hits["ddb-1"].execution == arn.rsplit(":", 1)[-1]
    assert hits["ddb-1"].detail.startswith("put_item")
    assert hits["ddb-2"].detail.startswith("get_item")


def test_sqs_duplicate_hands_the_same_message_twice(local_stack, inject):
    sqs = local_stack.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"faults-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = create_function(local_stack, "sqs_batch")
    poller = local_stack.new_poller(queue_url=queue_url, queue_arn=queue_arn, function_name=function)
    injector = inject("sqs-duplicate=1")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"notificationId": "dup-1"}))

    result = poller.poll_once()

    batches = fake_handlers.batches(queue_arn)
    assert [[record["messageId"] for record in batch] for batch in batches] == [list(result.received)] * 2
    assert result.deleted == result.received
    assert [hit.notification for hit in injector.hits("sqs-duplicate")] == ["dup-1"]


def test_crash_after_state_leaves_a_standard_run_going_and_records_it(local_stack, inject):
    # Given a two-state machine and a crash after its first state
    machine = create_state_machine(
        local_stack,
        {
            "StartAt": "First",
            "States": {"First": {"Type": "Pass", "Next": "Second"}, "Second": {"Type": "Pass", "End": True}},
        },
    )
    injector = inject("crash-after-state=First:1")

    arn = start(local_stack, machine, {"notificationId": "state-1"})

    # Then a Standard run is resumed, as Step Functions does after a host failure: it succeeds
    assert _failure(local_stack, arn)[0] == "SUCCEEDED"
    [hit] = injector.hits("crash-after-state")
    assert (hit.state, hit.notification, hit.outcome) == ("First", "state-1", "resumed")


def _three_pass_states(stack: EmbeddedStack, machine_type: str = "STANDARD") -> str:
    definition = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Next": "Second"},
            "Second": {"Type": "Pass", "Result": "second ran", "ResultPath": "$.second", "Next": "Third"},
            "Third": {"Type": "Pass", "End": True},
        },
    }
    response = stack.client("stepfunctions").create_state_machine(
        name=f"faults-{uuid.uuid4().hex[:10]}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{stack.account_id}:role/{STATE_MACHINE_ROLE_NAME}",
        type=machine_type,
    )
    return str(response["stateMachineArn"])


def test_crash_after_state_ends_an_express_run_failed_without_running_further_states(local_stack, inject):
    # Given an Express machine and a crash after its second state
    machine = _three_pass_states(local_stack, "EXPRESS")
    injector = inject("crash-after-state=Second:1")

    # When a run goes through it synchronously
    result = local_stack.client("stepfunctions").start_sync_execution(
        stateMachineArn=machine, input=json.dumps({"notificationId": "express-1"})
    )

    # Then it ends FAILED with the fault's error, and the third state never ran
    assert (result["status"], result["error"]) == ("FAILED", faults.CRASH_AFTER_STATE_ERROR)
    assert "Second" in result["cause"]
    [hit] = injector.hits("crash-after-state")
    assert (hit.state, hit.notification, hit.outcome) == ("Second", "express-1", "failed")
    entered = [
        event["stateEnteredEventDetails"]["name"]
        for event in local_stack.client("stepfunctions").get_execution_history(executionArn=result["executionArn"])[
            "events"
        ]
        if "stateEnteredEventDetails" in event
    ]
    assert entered == ["First", "Second"]


def test_crash_after_state_exactly_once_for_a_named_state_and_notification(local_stack, inject):
    # Given a crash armed once, after First, for notification target-1 only
    machine = _three_pass_states(local_stack, "EXPRESS")
    injector = inject("crash-after-state=First@target-1")
    sfn = local_stack.client("stepfunctions")

    def run(notification_id: str) -> str:
        return str(
            sfn.start_sync_execution(stateMachineArn=machine, input=json.dumps({"notificationId": notification_id}))[
                "status"
            ]
        )

    # When other notifications run, then target-1 twice
    outcomes = [run("other-1"), run("target-1"), run("target-1")]

    # Then only the first run of target-1 was lost
    assert outcomes == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert injector.counts()["crash-after-state"] == 1
    assert injector.report()["armed"] == []
    # The same can be armed from code, for a sweep over every state
    injector.arm_crash_after_state("Third", "other-2")
    assert run("other-2") == "SUCCEEDED"  # Third is the last state: nothing after it to lose
    injector.arm_crash_after_state("Second", "other-2")
    assert run("other-2") == "FAILED"


# -- the real pipeline with throttles on ----------------------------------------------------------


def test_every_notification_still_succeeds_with_throttles_on(local_stack, inject):
    # Given throttled Lambda invocations and DynamoDB requests (handlers and service integrations)
    injector = inject("lambda-throttle=0.25,ddb-throttle=0.25", seed=11)
    with WebhookReceiver(secret=local_stack.signing_secret) as receiver:
        ids = [f"throttled-{i}" for i in range(12)]  # fixed ids: the same faults at every run

        # When notifications go through the whole stack
        for notification_id in ids:
            local_stack.send_notification(
                {
                    "notificationId": notification_id,
                    "target": {"url": receiver.url("/ok")},
                    "payload": {"n": notification_id},
                    "eventType": "faults.test",
                }
            )
        sfn = local_stack.client("stepfunctions")
        results = [finished_execution(sfn, local_stack.execution_arn(execution_name(i)), timeout=120) for i in ids]

    # Then every run succeeded and every record says SUCCESS, though many throttles hit them
    assert [r.status for r in results] == ["SUCCEEDED"] * len(ids)
    table = local_stack.client("dynamodb")
    statuses = [
        table.get_item(TableName=local_stack.table_name, Key={"notificationId": {"S": i}}, ConsistentRead=True)["Item"][
            "status"
        ]["S"]
        for i in ids
    ]
    counts = injector.counts()
    faults.clear()  # the reads above may be throttled too; botocore retried them
    assert statuses == ["SUCCESS"] * len(ids)
    assert counts["lambda-throttle"] > 0
    assert counts["ddb-throttle"] > 0
    assert any(hit.execution in {execution_name(i) for i in ids} for hit in injector.hits("ddb-throttle"))
    attributed = {hit.notification for hit in injector.hits("lambda-throttle") if hit.execution}
    assert attributed
    assert attributed <= set(ids)  # every task's throttle names its notification
    assert engine.faults.report()["counts"]["lambda-throttle"] == 0  # cleared
