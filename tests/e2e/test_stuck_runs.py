"""No stuck runs: a run stopped mid-delivery is closed by the reconciler, listed as failed, and redriven to delivery.

Nothing hands the reconciler its events here: the stack creates the same EventBridge rule as the CDK app,
and the local engine sends the run's AWS-shaped "Step Functions Execution Status Change" events to it and
invokes the reconciler in-process, as EventBridge would. The run, its record, the redrive and the delivery
are all real (embedded stack, receiver on 127.0.0.1).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.shared.constants import RecordStatus
from lambdas.shared.dal.notifications import NotificationStore
from notiflow.cli import main as notiflow_main
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import wait_for_execution, wait_for_item
from notiflow.local.stack import EmbeddedStack
from notiflow.operate.exit_codes import ExitCode

pytestmark = pytest.mark.slow


def stuck_in_delivery(stack: EmbeddedStack, receiver: WebhookReceiver, ident: str) -> dict[str, Any]:
    """A run delivering to a receiver slower than the read timeout, stopped by an operator mid-delivery.

    It ends ABORTED, or FAILED with the attempt's error when the stop lands during an attempt (no Catch
    runs after a stop); either way its record stays PROCESSING until the reconciler hears of it. Returns the run.
    """
    receiver.script(f"/{ident}", [Step(200, delay=30)])
    stack.send_notification({"notificationId": ident, "target": {"url": receiver.url(f"/{ident}")}, "payload": 1})
    wait_for_item(
        stack.client("dynamodb"),
        stack.table_name,
        {"notificationId": {"S": ident}},
        lambda item: (
            item.get("status", {}).get("S") == "PROCESSING" and int(item.get("attempts", {}).get("N", "0")) >= 1
        ),
    )
    arn = stack.execution_arn(ident)
    stack.client("stepfunctions").stop_execution(executionArn=arn, error="OperatorStop", cause="stuck on a receiver")
    stopped = wait_for_execution(stack.client("stepfunctions"), arn)
    assert stopped["status"] in ("ABORTED", "FAILED")
    return stopped


def closed_by_reconciler(stack: EmbeddedStack, ident: str) -> Any:
    """Wait until the reconciler, invoked by the engine on the run's status change, closed the record."""
    wait_for_item(
        stack.client("dynamodb"),
        stack.table_name,
        {"notificationId": {"S": ident}},
        lambda item: item.get("status", {}).get("S") == "FAILED" and "reconciledAt" in item,
    )
    return record(stack, ident)


def listed_failures(stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    args = ["runs", "list", "--endpoint-url", stack.endpoint_url, "--status", "FAILED", "--since", "1h", "--json"]
    assert notiflow_main(args) == ExitCode.OK
    out = "\n".join(line for line in capsys.readouterr().out.splitlines() if not line.startswith('{"'))
    return {row["notification_id"]: row for row in json.loads(out)}


def record(stack: EmbeddedStack, ident: str) -> Any:
    return NotificationStore(stack.table_name, client=stack.client("dynamodb")).get(ident)


def test_an_aborted_run_is_listed_closed_and_redriven_to_delivery(
    stack: EmbeddedStack, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run an operator stopped while it was retrying a slow receiver
    stopped = stuck_in_delivery(stack, receiver, "stuck-1")
    arn = stopped["executionArn"]
    error = stopped.get("error") or "ExecutionAborted"

    # When its status change reaches the reconciler through the stack's EventBridge rule
    closed = closed_by_reconciler(stack, "stuck-1")
    # Then the record is FAILED with the run's error, where it stopped and why, and listed from the index
    assert (closed.status, closed.errorName, closed.opsStatus) == ("FAILED", error, "FAILED")
    assert closed.failureReason.startswith(
        f"run {'aborted' if stopped['status'] == 'ABORTED' else 'failed'} in Deliver"
    )
    row = listed_failures(stack, capsys)["stuck-1"]
    assert (row["status"], row["run_status"], row["error_name"], row["reconciled"]) == (
        "FAILED",
        stopped["status"],
        error,
        True,
    )

    # When the receiver is fixed and `notiflow redrive` is used
    receiver.fix("/stuck-1", [Step(200)])
    capsys.readouterr()
    assert notiflow_main(["redrive", "stuck-1", "--endpoint-url", stack.endpoint_url, "--wait-seconds", "30"]) == 0
    assert "result  stuck-1: delivered" in capsys.readouterr().out
    # Then the run resumed in Deliver with its record reopened, and delivered under the same execution
    delivered = record(stack, "stuck-1")
    assert (delivered.status, delivered.executionArn) == ("SUCCESS", arn)
    described = stack.client("stepfunctions").describe_execution(executionArn=arn)
    assert (described["status"], described["redriveCount"]) == ("SUCCEEDED", 1)
    assert receiver.requests_for("/stuck-1")[-1].status == 200
    assert "stuck-1" not in listed_failures(stack, capsys)
    capsys.readouterr()
    assert (
        notiflow_main(["runs", "list", "--endpoint-url", stack.endpoint_url, "--status", "PROCESSING", "--json"]) == 0
    )
    assert "stuck-1" not in capsys.readouterr().out


def test_a_redrive_started_elsewhere_is_reopened_by_the_reconciler(
    stack: EmbeddedStack, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stopped run the reconciler closed
    arn = stuck_in_delivery(stack, receiver, "stuck-2")["executionArn"]
    closed_by_reconciler(stack, "stuck-2")
    # When it is redriven with the Step Functions API directly (the AWS CLI, the AWS console), to a receiver
    # that answers within the read timeout but not at once
    receiver.fix("/stuck-2", [Step(200, delay=1.5)])
    stack.client("stepfunctions").redrive_execution(executionArn=arn)
    # Then the redrive's RUNNING event reaches the reconciler, which reopens the record for the resumed run
    reopened = wait_for_item(
        stack.client("dynamodb"),
        stack.table_name,
        {"notificationId": {"S": "stuck-2"}},
        lambda item: "reopenedAt" in item,
    )
    assert "reconciledAt" not in reopened
    # And the resumed run owns its record again and delivers
    assert wait_for_execution(stack.client("stepfunctions"), arn)["status"] == "SUCCEEDED"
    assert record(stack, "stuck-2").status == RecordStatus.SUCCESS
