"""Fixtures of the deliver tests: a hermetic environment, a real receiver on 127.0.0.1, moto AWS."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.deliver import delivery
from lambdas.shared import aws as shared_aws
from lambdas.shared.config import get_settings
from lambdas.shared.constants import EnvVar, RecordStatus
from lambdas.shared.observability import metrics
from notiflow.demo.receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"notiflow-unit-test-signing-key-1").decode()
ROTATED_SECRET = "whsec_" + base64.b64encode(b"notiflow-unit-test-signing-key-2").decode()
TABLE_NAME = "notiflow-unit-deliver"
SECRET_NAME = "notiflow/unit/signing"
EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:notiflow-delivery:ntf-order-1001"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy AWS credentials, local-stack delivery settings (loopback receivers), no cached settings or clients."""
    for name, value in vars(EnvVar).items():
        if name.isupper() and isinstance(value, str) and value.startswith("NOTIFLOW_"):
            monkeypatch.delenv(value, raising=False)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Notiflow")
    monkeypatch.setenv(EnvVar.TABLE_NAME, TABLE_NAME)
    monkeypatch.setenv(EnvVar.ALLOW_LOOPBACK_TARGETS, "true")
    monkeypatch.setenv(EnvVar.ALLOWED_SCHEMES, "http,https")
    _forget_caches()
    yield
    _forget_caches()


def _forget_caches() -> None:
    metrics.clear_metrics()  # with metrics disabled, Powertools never clears them itself
    get_settings.cache_clear()
    shared_aws.clear()
    delivery.secret_value.cache_clear()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set NOTIFLOW_* variables by EnvVar attribute name and re-read the settings."""

    def apply(**values: str | None) -> None:
        for name, value in values.items():
            env = getattr(EnvVar, name.upper())
            if value is None:
                monkeypatch.delenv(env, raising=False)
            else:
                monkeypatch.setenv(env, value)
        get_settings.cache_clear()

    return apply


@pytest.fixture
def secret() -> str:
    """The signing secret the receiver and the moto secret hold."""
    return SECRET


@pytest.fixture
def execution_arn() -> str:
    """The execution that claimed the records in these tests."""
    return EXECUTION_ARN


@pytest.fixture
def rotated_secret() -> str:
    return ROTATED_SECRET


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as rx:
        yield rx


@dataclass
class Aws:
    table: Any
    secrets: Any

    def claim(self, notification_id: str, execution_arn: str = EXECUTION_ARN, **fields: Any) -> None:
        """The record as Deduplicate leaves it: PROCESSING under ``execution_arn``."""
        item = {"notificationId": notification_id, "status": RecordStatus.PROCESSING, "executionArn": execution_arn}
        self.table.put_item(Item={**item, **fields})

    def record(self, notification_id: str) -> dict[str, Any]:
        return self.table.get_item(Key={"notificationId": notification_id}, ConsistentRead=True)["Item"]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """moto DynamoDB table and a signing secret; NOTIFLOW_SIGNING_SECRET_ID points at it."""
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        table = dynamodb.create_table(
            TableName=TABLE_NAME,
            KeySchema=[{"AttributeName": "notificationId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "notificationId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        secrets.create_secret(Name=SECRET_NAME, SecretString=SECRET)
        monkeypatch.setenv(EnvVar.SIGNING_SECRET_ID, SECRET_NAME)
        get_settings.cache_clear()
        yield Aws(table=table, secrets=secrets)


@dataclass
class FakeLambdaContext:
    function_name: str = "notiflow-deliver"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:notiflow-deliver"
    aws_request_id: str = "5f1c1f2e-9a4b-4c55-8a6e-0d6f0d3c2b1a"
    log_group_name: str = "/aws/lambda/notiflow-deliver"
    log_stream_name: str = "2026/01/01/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def load_event() -> Callable[..., dict[str, Any]]:
    """Read tests/events/deliver_<name>.json, pointing its target at ``base_url`` when given."""

    def load(name: str, base_url: str | None = None) -> dict[str, Any]:
        event = json.loads((EVENTS_DIR / f"deliver_{name}.json").read_text())
        target = event.get("notification", {}).get("target", {})
        if base_url and "url" in target:
            target["url"] = target["url"].replace("http://127.0.0.1:8080", base_url)
        return event

    return load
