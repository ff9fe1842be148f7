"""The local SQS event source mapping: batches, partial failures, whole-batch errors, the DLQ."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from notiflow.local import engine
from notiflow.local.engine import scheduler
from notiflow.local.fixtures import finished_execution
from notiflow.local.sqs_poller import SqsPoller, failed_item_ids
from notiflow.shared.waiting import wait_until
from tests.local import fake_handlers
from tests.local.helpers import create_function, create_state_machine, start


def _queue(stack, max_receive_count: int = 3) -> tuple[str, str, str]:
    sqs = stack.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    dlq_url = sqs.create_queue(QueueName=f"probe-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
    url = sqs.create_queue(QueueName=f"probe-{suffix}", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq_url


def _poller(stack, url: str, arn: str, **options) -> SqsPoller:
    function = create_function(stack, "sqs_batch")
    defaults = {"wait_time_seconds": 0, "visibility_timeout": 30}
    defaults.update(options)
    return SqsPoller(sqs_client=stack.client("sqs"), queue_url=url, queue_arn=arn, function_name=function, **defaults)


def _counts(stack, url: str) -> tuple[int, int]:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _send(stack, url: str, *bodies: str) -> list[str]:
    sqs = stack.client("sqs")
    return [sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"] for body in bodies]


def test_partial_batch_failure_deletes_only_the_successes(local_stack):
    # Given a batch with one record the function reports as failed
    url, arn, _ = _queue(local_stack)
    ok_first, failing, ok_second = _send(local_stack, url, "ok", "fail", "ok")
    poller = _poller(local_stack, url, arn, visibility_timeout=1)

    # When it is polled once
    result = poller.poll_once()

    # Then the two successes are deleted and the failure stays in flight
    assert set(result.received) == {ok_first, failing, ok_second}
    assert set(result.deleted) == {ok_first, ok_second}
    assert result.failed == (failing,)
    assert _counts(local_stack, url) == (0, 1)

    # And after the visibility timeout it is delivered again, counted as a second receive
    again = wait_until(poller.poll_once, lambda batch: bool(batch.received), timeout=10, describe="the redelivery")
    assert again.received == (failing,)
    last_batch = fake_handlers.batches(arn)[-1]
    assert [record["attributes"]["ApproximateReceiveCount"] for record in last_batch] == ["2"]


def test_a_raising_function_leaves_the_whole_batch(local_stack):
    # Given a batch the function fails as a whole
    url, arn, _ = _queue(local_stack)
    _send(local_stack, url, "ok", "raise")
    poller = _poller(local_stack, url, arn)

    # When it is polled
    result = poller.poll_once()

    # Then nothing is deleted and the error is reported
    assert result.errored
    assert result.error_type == "ProbePermanentError"
    assert result.deleted == ()
    assert _counts(local_stack, url) == (0, 2)
    assert poller.stats.errored_batches == 1


def test_message_moves_to_dlq_after_max_receive_count(local_stack):
    # Given a queue redriving to a DLQ after 2 receives, and a message the function always fails
    url, arn, dlq_url = _queue(local_stack, max_receive_count=2)
    (failing,) = _send(local_stack, url, "fail")
    poller = _poller(local_stack, url, arn, visibility_timeout=0)

    # When it is polled three times
    results = [poller.poll_once() for _ in range(3)]

    # Then it was processed twice and then moved to the DLQ
    assert [r.received for r in results] == [(failing,), (failing,), ()]
    assert _counts(local_stack, url) == (0, 0)
    dead = local_stack.client("sqs").receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [(m["MessageId"], m["Body"]) for m in dead] == [(failing, "fail")]


def test_records_have_the_lambda_sqs_event_shape(local_stack):
    # Given a message with a string and a binary attribute
    url, arn, _ = _queue(local_stack)
    message_id = local_stack.client("sqs").send_message(
        QueueUrl=url,
        MessageBody="ok",
        MessageAttributes={
            "notiflow-replay": {"DataType": "String", "StringValue": "true"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )["MessageId"]

    # When it is polled
    _poller(local_stack, url, arn).poll_once()

    # Then the function got a record shaped like the Lambda SQS event
    (record,) = fake_handlers.batches(arn)[-1]
    assert record["messageId"] == message_id
    assert record["receiptHandle"]
    assert record["body"] == "ok"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["SentTimestamp"].isdigit()
    assert record["messageAttributes"]["notiflow-replay"] == {
        "stringValue": "true",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="


def test_background_polling_processes_and_stops_promptly(local_stack):
    # Given a running poller
    url, arn, _ = _queue(local_stack)
    poller = _poller(local_stack, url, arn, wait_time_seconds=1, batch_size=2).start()
    try:
        # When five messages arrive
        sent = set(_send(local_stack, url, *["ok"] * 5))

        # Then all are processed and deleted, two at most per batch
        wait_until(lambda: poller.stats.deleted, lambda deleted: deleted >= 5, timeout=15, describe="5 deletions")
        assert poller.stats.deleted == 5
        received = [record["messageId"] for batch in fake_handlers.batches(arn) for record in batch]
        assert set(received) == sent
        assert all(len(batch) <= 2 for batch in fake_handlers.batches(arn))
    finally:
        started = time.monotonic()
        poller.stop()

    # And stopping returns within about one long poll
    assert not poller.running
    assert time.monotonic() - started < 5


def test_a_saturated_engine_takes_no_messages_until_a_worker_frees(local_stack):
    # Given a poller allowed one run in flight, and a run holding a worker in a 2 s handler
    url, arn, _ = _queue(local_stack)
    sleepy = create_function(local_stack, "sleepy", timeout=30)
    machine = create_state_machine(
        local_stack, {"StartAt": "Sleep", "States": {"Sleep": {"Type": "Task", "Resource": sleepy, "End": True}}}
    )
    busy = start(local_stack, machine, {"seconds": 2})
    wait_until(scheduler.backlog, lambda backlog: backlog >= 1, timeout=10, describe="a run on a worker")
    poller = _poller(local_stack, url, arn, max_in_flight=1)

    received_while_busy: list[int] = []
    remove = engine.add_execution_listener(
        lambda execution: received_while_busy.append(poller.stats.received) if execution.exec_arn == busy else None
    )

    # When a message arrives while the engine is saturated
    assert poller.saturated()
    (message,) = _send(local_stack, url, "ok")
    poller.start()
    try:
        # Then it stays on the queue while the run holds its worker (the listener hears the end of the
        # run before the worker is free), and is taken once the worker is free
        assert finished_execution(local_stack.client("stepfunctions"), busy).status == "SUCCEEDED"
        wait_until(lambda: poller.stats.deleted, lambda deleted: deleted == 1, timeout=15, describe="the message")
        assert not poller.saturated()
    finally:
        poller.stop()
        remove()
    assert received_while_busy == [0]
    assert [record["messageId"] for record in fake_handlers.batches(arn)[-1]] == [message]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("null", set()),
        ("{}", set()),
        ('{"batchItemFailures": []}', set()),
        ('{"batchItemFailures": null}', set()),
        ('{"batchItemFailures": [{"itemIdentifier": "b"}]}', {"b"}),
        ('{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        ('{"batchItemFailures": [{"itemIdentifier": null}]}', None),
        ('{"batchItemFailures": [{"itemIdentifier": "z"}]}', None),
        ('{"batchItemFailures": [{"id": "b"}]}', None),
        ('{"batchItemFailures": "b"}', None),
        ("not json", None),
    ],
)
def test_partial_batch_response_rules(payload, expected):
    # Given a batch of messages a, b, c: the response decides what stays (None: the whole batch)
    assert failed_item_ids(payload, {"a", "b", "c"}) == expected


@pytest.mark.parametrize("max_concurrency", [1, 3])
def test_at_most_max_concurrency_invocations_are_in_flight(local_stack, max_concurrency):
    # Given a poller with the trigger's maximum concurrency, one message per batch, and a function that
    # holds each invocation for a while
    url, arn, _ = _queue(local_stack)
    function = create_function(local_stack, "slow")
    fake_handlers.reset_in_flight()
    poller = SqsPoller(
        sqs_client=local_stack.client("sqs"),
        queue_url=url,
        queue_arn=arn,
        function_name=function,
        batch_size=1,
        wait_time_seconds=0,
        visibility_timeout=30,
        max_concurrency=max_concurrency,
    )
    # When a burst of eight messages arrives
    _send(local_stack, url, *[json.dumps({"n": n}) for n in range(8)])
    poller.start()
    try:
        wait_until(lambda: poller.stats.deleted, lambda deleted: deleted == 8, timeout=30, describe="8 deletions")
    finally:
        poller.stop()
    # Then the invocations ran that many at once, never more
    assert fake_handlers.peak_in_flight() == max_concurrency
    assert poller.stats.peak_in_flight == max_concurrency
    assert poller.stats.in_flight == 0
    assert _counts(local_stack, url) == (0, 0)


def test_the_stack_poller_takes_the_trigger_maximum_concurrency_from_the_spec(local_stack):
    # Given the running stack, provisioned from the spec the CDK app deploys
    # When its poller is built
    poller = local_stack.new_poller()
    # Then it runs at most the ingest trigger's maximum concurrency (ingestMaxConcurrency) at once
    assert poller.max_concurrency == local_stack.spec.intake.max_concurrency == 20
    assert poller.function_name == local_stack.function_names["ingest"]
