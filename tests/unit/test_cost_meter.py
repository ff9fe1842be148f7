"""The local meter against moto's DynamoDB and SQS APIs: units from the items really written, requests as billed."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from notiflow.cost.meter import Meter

TABLE = "cost-meter-test"


@pytest.fixture
def dynamodb(moto_aws: None):
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "notificationId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "notificationId", "AttributeType": "S"},
            {"AttributeName": "opsStatus", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byOpsStatus",
                "KeySchema": [{"AttributeName": "opsStatus", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def test_dynamodb_units_follow_the_items_written_and_read(dynamodb):
    key = {"notificationId": {"S": "n-1"}}
    with Meter() as meter:
        dynamodb.put_item(TableName=TABLE, Item={**key, "status": {"S": "PROCESSING"}, "attemptLog": {"S": "a" * 1500}})
        dynamodb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET opsStatus = :f, #s = :f REMOVE attemptLog",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":f": {"S": "FAILED"}},
        )
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            dynamodb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET #s = :ok",
                ConditionExpression="#s = :processing",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":ok": {"S": "SUCCESS"}, ":processing": {"S": "PROCESSING"}},
            )
        dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
        dynamodb.get_item(TableName=TABLE, Key={"notificationId": {"S": "missing"}})
    # put: 2 KB item -> 2; update: the larger of 2 KB before and the small item after -> 2 (enters the index: 1);
    # the failed condition: the item it checked -> 1.
    assert meter.dynamodb.write_units[TABLE] == 2 + 2 + 1
    assert meter.dynamodb.index_write_units[TABLE] == 1
    assert meter.dynamodb.read_units[TABLE] == 1.0 + 0.5
    assert meter.dynamodb.requests == {f"{TABLE}:put_item": 1, f"{TABLE}:update_item": 2, f"{TABLE}:get_item": 2}


def test_sqs_requests_count_chunks_batches_and_non_empty_receives(moto_aws):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="cost-meter")["QueueUrl"]
    with Meter() as meter:
        assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)  # idle poll: not counted
        sqs.send_message(QueueUrl=url, MessageBody="x" * (70 * 1024))  # two 64 KB chunks
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "{}"} for i in range(3)])
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
        )
    assert dict(meter.sqs) == {
        "send_message": 2,
        "send_message_batch": 1,
        "receive_message": 1,
        "delete_message_batch": 1,
    }


def test_the_meter_restores_what_it_wrapped(moto_aws):
    from moto.sqs.models import SQSBackend

    original = SQSBackend.__dict__["send_message"]
    with Meter():
        assert SQSBackend.__dict__["send_message"] is not original
        with pytest.raises(RuntimeError, match="already open"), Meter():
            pass
    assert SQSBackend.__dict__["send_message"] is original
