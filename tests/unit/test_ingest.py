"""Ingest against moto's SQS event shape and Step Functions API."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.ingest import handler as ingest
from lambdas.ingest.starter import MAX_NAME_LENGTH, build_start_request, execution_name
from lambdas.shared.constants import REPLAY_ATTRIBUTE, EnvVar
from tests.support import load_event

DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


@pytest.fixture
def state_machine(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="notiflow-test", definition=DEFINITION, roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    monkeypatch.setenv(EnvVar.STATE_MACHINE_ARN, arn)
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


def test_missing_state_machine_configuration_fails_records_not_silently(moto_aws: None, lambda_context: Any) -> None:
    # Given no state machine configured / When a batch arrives / Then the whole batch fails loudly
    with pytest.raises(ingest.BatchFailedError, match="All records failed"):
        ingest.lambda_handler(load_event("sqs_batch.json"), lambda_context)
