"""The signing key custom resource: real handler, moto Secrets Manager, a local server as CloudFormation."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infrastructure.signing_key_handler import KEY_BYTES, KEY_PREFIX, generate_signing_key, handler


class CloudFormationResponses:
    """Stands in for CloudFormation's pre-signed response URL on 127.0.0.1 and keeps what it was told."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> CloudFormationResponses:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationResponses]:
    with CloudFormationResponses() as responses:
        yield responses


def event(request_type: str, url: str, secret_id: str, old_secret_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/Notiflow/1",
        "RequestId": "request-1",
        "LogicalResourceId": "StorageSigningKey",
        "ResourceType": "Custom::NotiflowSigningKey",
        "ResourceProperties": {"ServiceToken": "arn", "SecretId": secret_id},
    }
    if old_secret_id is not None:
        body["OldResourceProperties"] = {"ServiceToken": "arn", "SecretId": old_secret_id}
    return body


CONTEXT = SimpleNamespace(log_stream_name="2026/11/28/[$LATEST]abc")


def test_a_generated_key_follows_the_standard_webhooks_format():
    # Given two freshly generated keys
    first, second = generate_signing_key(), generate_signing_key()
    # When they are decoded
    # Then each is whsec_ + base64 of 32 random bytes, and they differ
    assert first.startswith(KEY_PREFIX)
    assert len(base64.b64decode(first.removeprefix(KEY_PREFIX), validate=True)) == KEY_BYTES
    assert first != second


def test_create_writes_a_key_into_the_secret_and_answers_success(secrets, cloudformation):
    # Given a secret created with a placeholder value
    arn = secrets.create_secret(Name="notiflow-signing", SecretString="placeholder")["ARN"]
    # When CloudFormation creates the custom resource
    handler(event("Create", cloudformation.url, arn), CONTEXT)
    # Then the secret holds a whsec_ key and CloudFormation hears success, without the key itself
    key = secrets.get_secret_value(SecretId=arn)["SecretString"]
    assert key.startswith(KEY_PREFIX)
    (answer,) = cloudformation.bodies
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == arn
    assert answer["RequestId"] == "request-1"
    assert answer["LogicalResourceId"] == "StorageSigningKey"
    assert key.removeprefix(KEY_PREFIX) not in json.dumps(answer)


def test_update_and_delete_keep_the_key_receivers_already_trust(secrets, cloudformation):
    # Given a secret that already holds a key
    arn = secrets.create_secret(Name="notiflow-signing", SecretString="placeholder")["ARN"]
    handler(event("Create", cloudformation.url, arn), CONTEXT)
    key = secrets.get_secret_value(SecretId=arn)["SecretString"]
    # When the stack is updated without a new secret, and later deleted
    handler(event("Update", cloudformation.url, arn, old_secret_id=arn), CONTEXT)
    handler(event("Delete", cloudformation.url, arn), CONTEXT)
    # Then the key is unchanged and both requests succeed
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == key
    assert [answer["Status"] for answer in cloudformation.bodies] == ["SUCCESS", "SUCCESS", "SUCCESS"]


def test_update_pointing_at_a_new_secret_writes_a_key_there(secrets, cloudformation):
    # Given a replaced signing secret
    old = secrets.create_secret(Name="old-signing", SecretString="placeholder")["ARN"]
    new = secrets.create_secret(Name="new-signing", SecretString="placeholder")["ARN"]
    # When the custom resource is updated to the new secret
    handler(event("Update", cloudformation.url, new, old_secret_id=old), CONTEXT)
    # Then the new secret gets a key and the resource now stands for it
    assert secrets.get_secret_value(SecretId=new)["SecretString"].startswith(KEY_PREFIX)
    assert cloudformation.bodies[0]["PhysicalResourceId"] == new


def test_a_failure_is_reported_to_cloudformation_instead_of_hanging_the_stack(secrets, cloudformation):
    # Given a secret that does not exist
    missing = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:missing-AbCdEf"
    # When the custom resource is created
    handler(event("Create", cloudformation.url, missing), CONTEXT)
    # Then CloudFormation hears FAILED with the reason and where to read the logs
    (answer,) = cloudformation.bodies
    assert answer["Status"] == "FAILED"
    assert "ResourceNotFoundException" in answer["Reason"]
    assert CONTEXT.log_stream_name in answer["Reason"]
