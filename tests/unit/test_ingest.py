"""Ingest against moto's SQS event shape and Step Functions API."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.ingest import handler as ingest
from lambdas.ingest.starter import MAX_NAME_LENGTH, build_start_request, execution_name
from lambdas.shared import aws
from lambdas.shared.constants import REPLAY_ATTRIBUTE, DeliveryMode, EnvVar
from tests.support import load_event

DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


@pytest.fixture
def state_machine(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="notiflow-test", definition=DEFINITION, roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    monkeypatch.setenv(EnvVar.STATE_MACHINE_ARN, arn)
    monkeypatch.setenv(EnvVar.DELIVERY_MODE, DeliveryMode.STANDARD)
    return arn


class ThrottlingStepFunctions:
    """moto cannot throttle, so this wrapper throttles one named start and passes the rest to moto."""

    def __init__(self, real: Any, throttle_name: str) -> None:
        self._real = real
        self._throttle_name = throttle_name

    def start_execution(self, **kwargs: Any) -> Any:
        if kwargs["name"] == self._throttle_name:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "StartExecution")
        return self._real.start_execution(**kwargs)


@pytest.mark.parametrize(
    ("notification_id", "expected"),
    [
        ("order-1042-shipped", "order-1042-shipped"),
        ("Order_42", "Order_42"),
    ],
)
def test_simple_ids_are_used_as_names(notification_id: str, expected: str) -> None:
    assert execution_name(notification_id) == expected


@pytest.mark.parametrize(
    "notification_id", ["invoice 77/paid?", "a" * 81, "ümlaut-id", "x:y", "a" * 200, "----", "<tag>"]
)
def test_awkward_ids_are_sanitised_deterministically_and_distinctly(notification_id: str) -> None:
    name = execution_name(notification_id)
    assert 1 <= len(name) <= MAX_NAME_LENGTH
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name)
    assert name == execution_name(notification_id)
    assert name != execution_name(notification_id + "!")


def test_replay_gets_its_own_stable_name() -> None:
    first = execution_name("order-1", replay_of="msg-1")
    assert first.startswith("order-1-replay-")
    assert first == execution_name("order-1", replay_of="msg-1")
    assert first != execution_name("order-1", replay_of="msg-2")
    assert len(execution_name("z" * 128, replay_of="m")) <= MAX_NAME_LENGTH


def test_non_json_body_still_becomes_a_run_keyed_by_message_id() -> None:
    record = load_event("sqs_batch.json")["Records"][2]
    request = build_start_request(record, "arn:queue", ttl_days=90, now=1_000_000)
    assert request.name == "sqs-9f1c1d2e-0003-4b8a-9c55-3a1c2b3d4e03"
    assert request.input["notification"] is None
    assert request.input["rawBody"] == "this is not json {"
    assert "not valid JSON" in request.input["parseError"]
    assert request.input["expiresAt"] == 1_000_000 + 90 * 86400


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"notificationId": "nan-1", "target": {"url": "https://a.example.com"}, "payload": NaN}', "NaN is not"),
        ('{"notificationId": "inf-1", "target": {"url": "https://a.example.com"}, "payload": -Infinity}', "-Infinity"),
        ('{"notificationId": "half-\\ud800", "target": {"url": "https://a.example.com"}, "payload": {}}', "surrogate"),
        ('{"notificationId": "p-1", "target": {"url": "https://a.example.com"}, "payload": ["\\udc00"]}', "surrogate"),
        (
            '{"notificationId": "d-1", "target": {"url": "https://a.example.com"}, "target": {"url": "https://10.0.0.1"}}',
            '"target" appears more than once',
        ),
    ],
)
def test_bodies_other_parsers_read_differently_are_not_json(body: str, reason: str) -> None:
    """NaN became a null payload and was delivered; a lone surrogate crashed Validate (found by the corpus)."""
    record = dict(load_event("sqs_batch.json")["Records"][0], body=body)
    request = build_start_request(record, None, ttl_days=1)
    assert request.input["notification"] is None
    assert request.name == f"sqs-{record['messageId']}"
    assert "body is not valid JSON" in request.input["parseError"]
    assert reason in request.input["parseError"]
    json.dumps(request.input, ensure_ascii=False, allow_nan=False).encode("utf-8")


def test_surrogate_pairs_and_nested_members_are_still_json() -> None:
    body = '{"notificationId": "\\ud83d\\udce6-1", "target": {"url": "https://a.example.com"}, "payload": {"a": {}}}'
    request = build_start_request(dict(load_event("sqs_batch.json")["Records"][0], body=body), None, ttl_days=1)
    assert request.input["parseError"] is None
    assert request.input["notificationId"] == "\U0001f4e6-1"


def test_oversized_body_is_not_forwarded() -> None:
    record = dict(load_event("sqs_batch.json")["Records"][0], body=json.dumps({"pad": "x" * 210_000}))
    request = build_start_request(record, None, ttl_days=1)
    assert request.input["notification"] is None
    assert len(request.input["rawBody"]) == 1024
    assert "above the 204800-byte limit" in request.input["parseError"]


def test_replay_attribute_sets_flag_and_name() -> None:
    record = dict(load_event("sqs_batch.json")["Records"][0])
    record["messageAttributes"] = {REPLAY_ATTRIBUTE: {"stringValue": "true", "dataType": "String"}}
    request = build_start_request(record, None, ttl_days=1)
    assert request.input["replay"] is True
    assert "-replay-" in request.name


def test_batch_with_duplicate_non_json_and_throttled_start(state_machine: str, lambda_context: Any, monkeypatch):
    # Given a batch: a notification, its duplicate, a non-JSON body and one whose start is throttled
    event = load_event("sqs_batch.json")
    throttled = execution_name("invoice 77/paid?")
    sfn = boto3.client("stepfunctions")
    monkeypatch.setattr(ingest, "_sfn", lambda: ThrottlingStepFunctions(sfn, throttled))
    # When ingest handles it
    response = ingest.lambda_handler(event, lambda_context)
    # Then only the throttled record is reported for redelivery
    assert response == {"batchItemFailures": [{"itemIdentifier": "9f1c1d2e-0004-4b8a-9c55-3a1c2b3d4e04"}]}
    # And exactly one run exists per distinct notification, the bad body included
    names = sorted(e["name"] for e in sfn.list_executions(stateMachineArn=state_machine)["executions"])
    assert names == ["order-1042-shipped", "sqs-9f1c1d2e-0003-4b8a-9c55-3a1c2b3d4e03"]
    started = sfn.describe_execution(
        executionArn=f"{state_machine.replace(':stateMachine:', ':execution:')}:order-1042-shipped"
    )
    assert json.loads(started["input"])["notification"]["payload"] == {"orderId": 1042}


@pytest.mark.parametrize("mode", list(DeliveryMode))
def test_missing_state_machine_configuration_fails_records_not_silently(
    moto_aws: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, mode: DeliveryMode
) -> None:
    # Given no state machine configured / When a batch arrives / Then the whole batch fails loudly
    monkeypatch.setenv(EnvVar.DELIVERY_MODE, mode)
    with pytest.raises(ingest.BatchFailedError, match="All records failed"):
        ingest.lambda_handler(load_event("sqs_batch.json"), lambda_context)


FAST_PATH_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:notiflow-fast-path"


class SyncExpress:
    """Stands in for StartSyncExecution, which moto 5.2.5 does not implement: canned endings per execution name.

    Every call waits at a barrier for the whole batch, so a test fails unless ingest runs the batch's
    Express runs at the same time.
    """

    def __init__(self, endings: dict[str, dict[str, Any] | Exception], parties: int) -> None:
        self.endings = endings
        self.calls: list[dict[str, Any]] = []
        self.barrier = threading.Barrier(parties, timeout=10)

    def start_sync_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        self.barrier.wait()
        ending = self.endings[kwargs["name"]]
        if isinstance(ending, Exception):
            raise ending
        return {
            "executionArn": f"arn:aws:states:us-east-1:123456789012:express:notiflow-fast-path:{kwargs['name']}:1",
            **ending,
        }


def _records(*notification_ids: str) -> list[dict[str, Any]]:
    template = load_event("sqs_batch.json")["Records"][0]
    records = []
    for index, notification_id in enumerate(notification_ids):
        body = json.loads(template["body"])
        body["notificationId"] = notification_id
        records.append({**template, "messageId": f"msg-{index}", "body": json.dumps(body)})
    return records


def test_fast_path_acknowledges_only_durable_outcomes(
    moto_aws: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given fast-path mode and Express runs ending every way they can
    monkeypatch.setenv(EnvVar.DELIVERY_MODE, DeliveryMode.FAST_PATH)
    monkeypatch.setenv(EnvVar.FAST_PATH_STATE_MACHINE_ARN, FAST_PATH_ARN)
    succeeded = lambda outcome: {"status": "SUCCEEDED", "output": json.dumps({"outcome": outcome})}  # noqa: E731
    endings: dict[str, dict[str, Any] | Exception] = {
        "delivered": succeeded("SUCCESS"),
        "handed-over": succeeded("HANDED_OVER"),
        "duplicate": succeeded("DUPLICATE"),
        "rejected": {"status": "FAILED", "error": "InvalidNotificationError", "cause": "target.url: ..."},
        "stale": succeeded("STALE"),
        "busy": succeeded("BUSY"),
        "crashed": {"status": "FAILED", "error": "States.Runtime", "cause": "..."},
        "timed-out": {"status": "TIMED_OUT"},
        "throttled": ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Start"),
    }
    express = SyncExpress(endings, parties=len(endings))
    monkeypatch.setattr(ingest, "_sync_sfn", lambda: express)
    records = _records(*endings)
    logged: dict[str, list[str | None]] = {"info": [], "debug": []}
    for level in logged:
        monkeypatch.setattr(
            ingest.logger, level, lambda message, *, extra, _level=level: logged[_level].append(extra.get("outcome"))
        )

    # When ingest handles the batch
    response = ingest.lambda_handler({"Records": records}, lambda_context)

    # Then the runs ran at once, under the notifications' execution names, with ingest's input
    assert sorted(call["name"] for call in express.calls) == sorted(endings)
    assert {call["stateMachineArn"] for call in express.calls} == {FAST_PATH_ARN}
    first = json.loads(express.calls[0]["input"])
    assert first["fastPathExecutionArn"] is None
    assert first["notification"]["notificationId"] == first["notificationId"]
    # And only the runs without a durable outcome stay on the queue for another run
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    by_message = {record["messageId"]: name for record, name in zip(records, endings, strict=True)}
    assert {by_message[message] for message in failed} == {"stale", "busy", "crashed", "timed-out", "throttled"}
    # And a first-try success logs no INFO line (most of the traffic, and log ingestion is billed), the others do
    assert logged["debug"] == ["SUCCESS"]
    assert set(logged["info"]) >= {"HANDED_OVER", "DUPLICATE", "BUSY", "STALE"}


def test_the_sync_client_waits_out_an_express_run_and_never_retries(moto_aws: None) -> None:
    # A retried StartSyncExecution would start a second run while the first may still be going.
    config = aws.sync_client("stepfunctions").meta.config
    assert config.read_timeout >= 300
    assert config.retries["total_max_attempts"] == 1
