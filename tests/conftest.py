"""Fixtures shared by every test: a safe AWS environment, a Lambda context, moto resources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.shared.config import get_settings
from lambdas.shared.constants import TABLE_PARTITION_KEY, EnvVar
from tests.support import FakeLambdaContext

TEST_TABLE = "notiflow-test-notifications"
pytest_plugins = ["notiflow.local.fixtures"]


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy credentials and region so no test can reach a real AWS account."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "NotiflowTest",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        EnvVar.TABLE_NAME: TEST_TABLE,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def moto_aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def notifications_table(moto_aws: None) -> Any:
    """The notifications table as the CDK app defines it, in moto."""
    dynamodb = boto3.resource("dynamodb")
    table = dynamodb.create_table(
        TableName=TEST_TABLE,
        KeySchema=[{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table.wait_until_exists()
    return table
