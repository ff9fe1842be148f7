"""An operator's day against the embedded stack, as an outside client: the AWS CLI and `notiflow`.

A notification to a wrong path fails permanently; the operator lists failed runs,
fixes the endpoint, redrives with `aws stepfunctions redrive-execution`, and the
same execution delivers the same notification.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from notiflow.cli import main as notiflow_main
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import wait_for_execution
from notiflow.local.stack import EmbeddedStack
from notiflow.shared.waiting import wait_until

pytestmark = pytest.mark.slow
AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")


def aws(stack: EmbeddedStack, *args: str) -> Any:
    assert AWS, "the AWS CLI is installed with the dev extras"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_ENDPOINT_URL", None)  # the CLI must reach the stack through --endpoint-url alone
    completed = subprocess.run(
        [AWS, "--endpoint-url", stack.endpoint_url, "--region", "us-east-1", "--output", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout) if completed.stdout.strip() else None


def test_fix_the_endpoint_and_redrive_delivers_under_the_same_execution(
    stack: EmbeddedStack, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an endpoint that answers 404 (a wrong path on the receiver's side)
    receiver.script("/hooks/orders", [Step(404, body="unknown hook")])
    body = {
        "notificationId": "ops-redrive-1",
        "target": {"url": receiver.url("/hooks/orders")},
        "payload": {"orderId": 7},
        "eventType": "order.created",
    }
    # When a producer sends it with the AWS CLI
    aws(stack, "sqs", "send-message", "--queue-url", stack.queue_url, "--message-body", json.dumps(body))
    execution_arn = stack.execution_arn("ops-redrive-1")
    sfn = stack.client("stepfunctions")
    failed = wait_for_execution(sfn, execution_arn, timeout=30)
    # Then the run fails in the gate with the delivery error and the record says FAILED
    assert failed["status"] == "FAILED"
    described = aws(stack, "stepfunctions", "describe-execution", "--execution-arn", execution_arn)
    assert described["status"] == "FAILED"
    key = json.dumps({"notificationId": {"S": "ops-redrive-1"}})
    item = aws(stack, "dynamodb", "get-item", "--table-name", stack.table_name, "--key", key)["Item"]
    assert item["status"]["S"] == "FAILED"
    assert item["errorName"]["S"] == "DeliveryPermanentError"
    assert item["deliveryResult"]["M"]["statusCode"]["N"] == "404"

    # And `notiflow runs list --status FAILED` agrees
    capsys.readouterr()  # drop what the in-process Lambdas printed (their EMF metrics lines)
    assert notiflow_main(["runs", "list", "--endpoint-url", stack.endpoint_url, "--status", "FAILED", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "ops-redrive-1" in [row["notification_id"] for row in listed]

    # When the operator fixes the endpoint and redrives with the AWS CLI
    receiver.fix("/hooks/orders", [Step(200)])
    aws(stack, "stepfunctions", "redrive-execution", "--execution-arn", execution_arn)
    redriven = wait_for_execution(sfn, execution_arn, timeout=30)

    # Then the same execution succeeds and the same notification is delivered, once more
    assert redriven["status"] == "SUCCEEDED"
    assert redriven.get("redriveCount") == 1
    item = aws(stack, "dynamodb", "get-item", "--table-name", stack.table_name, "--key", key)["Item"]
    assert item["status"]["S"] == "SUCCESS"
    assert item["executionArn"]["S"] == execution_arn
    assert item["attempts"]["N"] == "2"
    assert "deliveredAt" in item
    requests = receiver.requests_for("/hooks/orders")
    assert [r.status for r in requests] == [404, 200]
    assert {r.headers["webhook-id"] for r in requests} == {"ops-redrive-1"}
    history = aws(stack, "stepfunctions", "get-execution-history", "--execution-arn", execution_arn)["events"]
    assert "ExecutionRedriven" in [event["type"] for event in history]

    # And `notiflow runs show` tells the story: labelled fields, one section per pass, the attempts by pass
    capsys.readouterr()
    assert notiflow_main(["runs", "show", "ops-redrive-1", "--endpoint-url", stack.endpoint_url]) == 0
    shown = "\n".join(line for line in capsys.readouterr().out.splitlines() if not line.startswith('{"'))
    assert "status        SUCCESS (notification), SUCCEEDED (run)" in shown
    assert "redrives      1" in shown
    assert re.search(r"^delivery result\n  outcome +delivered\n  category +SUCCESS\n  HTTP status +200 OK", shown, re.M)
    assert "{" not in shown  # no raw or escaped JSON anywhere
    pass_one = re.search(
        r"^pass 1: run started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z; ended FAILED with DeliveryPermanentError",
        shown,
        re.M,
    )
    pass_two = re.search(r"^pass 2: redrive 1 started .*Z, resumed in FailureGate; ended SUCCEEDED", shown, re.M)
    assert pass_one
    assert pass_two
    assert pass_one.start() < pass_two.start()
    first_pass = shown[pass_one.start() : pass_two.start()]
    assert re.search(r"FailureGate +failed +- +DeliveryPermanentError +HTTP 404 Not Found", first_pass)
    assert "ReopenForRedrive" in shown[pass_two.start() :]
    log = shown[shown.index("attempt log (2 attempts)") :]
    assert re.search(r"^pass 1\n.*\n.*\n  #1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z +CLIENT_ERROR +404", log, re.M)
    assert re.search(r"^pass 2 \(redrive 1\)\n.*\n.*\n  #2 +.*Z +SUCCESS +200", log, re.M)


def test_rejected_input_redriven_is_rejected_again(stack: EmbeddedStack) -> None:
    # Given a message that is not JSON at all
    aws(stack, "sqs", "send-message", "--queue-url", stack.queue_url, "--message-body", "not json")
    sfn = stack.client("stepfunctions")
    runs = wait_until(
        lambda: [
            e
            for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
            if e["name"].startswith("sqs-")
        ],
        timeout=30,
        interval=0.1,
        describe="the non-JSON message to become a visible run",
    )
    arn = runs[0]["executionArn"]
    assert wait_for_execution(sfn, arn, timeout=30)["status"] == "FAILED"
    # When it is redriven / Then it is rejected again and the record is unchanged
    before = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"notificationId": {"S": runs[0]["name"]}}
    )["Item"]
    aws(stack, "stepfunctions", "redrive-execution", "--execution-arn", arn)
    again = wait_for_execution(sfn, arn, timeout=30)
    assert again["status"] == "FAILED"
    assert again["error"] == "InvalidNotificationError"
    after = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"notificationId": {"S": runs[0]["name"]}}
    )["Item"]
    assert after == before
