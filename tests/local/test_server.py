"""``notiflow local up`` as an outside client sees it: a separate process driven over HTTP with boto3."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import wait_for_execution, wait_for_item

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """The server in its own process on a free port; yields (endpoint, signing secret, process)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "notiflow.local.server", "--port", "0", "--time-scale", "0.0001", "--max-wait", "0.02"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    banner: list[str] = []
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        banner.append(line)
        if line.startswith("  signing secret"):
            break
    text = "".join(banner)
    endpoint = re.search(r"on (http://127\.0\.0\.1:\d+) ", text)
    secret = re.search(r"signing secret\s+(whsec_\S+)", text)
    if endpoint is None or secret is None:
        process.kill()
        pytest.fail(f"server did not print its banner: {text!r}")
    try:
        yield endpoint.group(1), secret.group(1), process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _client(endpoint: str, service: str):
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_outside_client_delivers_a_notification_through_sqs(server):
    endpoint, secret, _ = server
    with WebhookReceiver(secret=secret) as receiver:
        receiver.script("/outside", Step(200))
        notification = {
            "notificationId": f"outside-{time.monotonic_ns()}",
            "target": {"url": receiver.url("/outside")},
            "payload": {"from": "another process"},
        }
        queue_url = _client(endpoint, "sqs").get_queue_url(QueueName="notiflow-intake")["QueueUrl"]

        # When a notification is put on the queue over HTTP
        _client(endpoint, "sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(notification))

        # Then the server's poller hands it to ingest, whose Express run (the default fast path)
        # delivers it signed and records SUCCESS
        item = wait_for_item(
            _client(endpoint, "dynamodb"),
            "notiflow-notifications",
            {"notificationId": {"S": notification["notificationId"]}},
            lambda item: item["status"]["S"] == "SUCCESS",
            timeout=30,
        )
        sfn = _client(endpoint, "stepfunctions")
        (express,) = [m for m in sfn.list_state_machines()["stateMachines"] if m["type"] == "EXPRESS"]
        run = item["executionArn"]["S"]
        assert run.startswith(express["stateMachineArn"].replace(":stateMachine:", ":express:"))
        assert wait_for_execution(sfn, run, timeout=30)["status"] == "SUCCEEDED"
        (request,) = receiver.requests_for("/outside")
        assert request.signature_valid is True
        assert request.json() == {"from": "another process"}


def test_sigterm_stops_the_server_cleanly(server):
    endpoint, _, process = server

    # When the process gets SIGTERM
    process.send_signal(signal.SIGTERM)

    # Then it exits 0 promptly and the port is closed
    assert process.wait(20) == 0
    with pytest.raises(EndpointConnectionError):
        _client(endpoint, "sqs").list_queues()
