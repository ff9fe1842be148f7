"""The notifications table as the spec defines it (operator index included), in moto, and records to fill it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infrastructure.config import NotiflowConfig
from infrastructure.spec import build_spec
from lambdas.shared.constants import OPS_SINCE_ATTRIBUTE, OPS_STATUS_ATTRIBUTE, RecordStatus
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.record import NotificationRecord
from tests.conftest import TEST_TABLE

EXEC_PREFIX = "arn:aws:states:us-east-1:123456789012:execution:notiflow-delivery:"


@pytest.fixture
def ops_table() -> Iterator[Any]:
    """A low-level DynamoDB client on a moto table created from the spec's CreateTable request."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        request = build_spec(NotiflowConfig()).table.create_table_request()
        client.create_table(**{**request, "TableName": TEST_TABLE})
        yield client


@pytest.fixture
def ops_store(ops_table: Any) -> NotificationStore:
    return NotificationStore(TEST_TABLE, client=ops_table)


def put_record(client: Any, notification_id: str, status: RecordStatus, since: str | None, **fields: Any) -> None:
    """One record as the workflow's writers leave it: opsStatus/opsSince only when ``since`` is given."""
    values: dict[str, Any] = {
        "notificationId": notification_id,
        "status": status,
        "executionArn": EXEC_PREFIX + notification_id,
        "createdAt": since or "2026-01-01T00:00:00.000Z",
        "lastUpdatedAt": since or "2026-01-01T00:00:00.000Z",
        "targetHost": "hooks.example.com",
        **fields,
    }
    if since is not None:
        values[OPS_STATUS_ATTRIBUTE] = status
        values[OPS_SINCE_ATTRIBUTE] = since
    typed = NotificationRecord.typed_values(**values)
    client.put_item(TableName=TEST_TABLE, Item=typed)


def iso(minute: int, second: int = 0) -> str:
    """A record timestamp on 2026-11-30 at 10:<minute>:<second>."""
    return f"2026-11-30T10:{minute:02d}:{second:02d}.000Z"
