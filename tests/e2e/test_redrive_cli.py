"""`notiflow redrive` against the embedded stack: canary first, stop on failure, then the rest at a rate."""

from __future__ import annotations

import time

import pytest

from lambdas.shared.clock import utc_iso
from notiflow.cli import main as notiflow_main
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import wait_for_execution
from notiflow.local.stack import EmbeddedStack
from notiflow.shared.waiting import wait_until

pytestmark = pytest.mark.slow
BROKEN = [f"bulk-{n}" for n in range(4)]


def send_and_wait(stack: EmbeddedStack, receiver: WebhookReceiver, ident: str, path: str) -> dict:
    stack.send_notification({"notificationId": ident, "target": {"url": receiver.url(path)}, "payload": {"n": ident}})
    return wait_for_execution(stack.client("stepfunctions"), stack.execution_arn(ident), timeout=30)


def record_status(stack: EmbeddedStack, ident: str) -> str:
    item = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"notificationId": {"S": ident}})
    return item["Item"]["status"]["S"]


def redrive(stack: EmbeddedStack, *args: str) -> int:
    return notiflow_main(["redrive", "--endpoint-url", stack.endpoint_url, *args])


def test_bulk_redrive_stops_on_a_failing_canary_then_redrives_all_once_fixed(
    stack: EmbeddedStack, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given four notifications that failed on a broken endpoint, and one that was delivered
    receiver.script("/broken", [Step(400, body="bad request")])
    receiver.script("/fine", [Step(200)])
    for ident in BROKEN:
        assert send_and_wait(stack, receiver, ident, "/broken")["status"] == "FAILED"
        # The next record must get a later createdAt (millisecond resolution), so "oldest first" is well defined
        created = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"notificationId": {"S": ident}})
        wait_until(utc_iso, lambda now, then=created["Item"]["createdAt"]["S"]: now > then, timeout=5)
    assert send_and_wait(stack, receiver, "bulk-ok", "/fine")["status"] == "SUCCEEDED"
    sfn = stack.client("stepfunctions")
    capsys.readouterr()

    # When a dry run is asked for / Then it lists what would be redriven and changes nothing
    assert redrive(stack, "--status", "FAILED", "--since", "1h", "--dry-run") == 0
    dry = capsys.readouterr().out
    assert all(f"would redrive  {ident}" in dry for ident in BROKEN)
    assert "dry run: 4 would be redriven" in dry
    assert all(sfn.describe_execution(executionArn=stack.execution_arn(i))["status"] == "FAILED" for i in BROKEN)

    # When the endpoint is still broken / Then only the oldest is tried, and the command stops
    assert redrive(stack, "--status", "FAILED", "--wait-seconds", "30") == 1
    stopped = capsys.readouterr().out
    assert "canary  bulk-0" in stopped
    assert "stopping before the other 3" in stopped
    assert sfn.describe_execution(executionArn=stack.execution_arn("bulk-0")).get("redriveCount") == 1
    assert [sfn.describe_execution(executionArn=stack.execution_arn(i)).get("redriveCount", 0) for i in BROKEN[1:]] == [
        0
    ] * 3

    # When the endpoint is fixed / Then the canary succeeds and the rest follow at the given rate
    receiver.fix("/broken", [Step(200)])
    started = time.monotonic()
    assert redrive(stack, "--status", "FAILED", "--rate", "4", "--wait-seconds", "30") == 0
    elapsed = time.monotonic() - started
    done = capsys.readouterr().out
    assert "canary delivered; redriving 3 more at 4/s" in done
    assert "summary: canary delivered, 3 more redriven, 0 refused by the API, 0 not redrivable" in done
    assert elapsed >= 0.5  # 3 redrives at 4/s take at least two intervals
    for ident in BROKEN:
        assert wait_for_execution(sfn, stack.execution_arn(ident), timeout=30)["status"] == "SUCCEEDED"
        assert record_status(stack, ident) == "SUCCESS"


def test_runs_that_cannot_be_redriven_are_listed_with_the_reason(
    stack: EmbeddedStack, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a delivered notification / When it is redriven / Then the reason is given, nothing is sent
    receiver.script("/fine2", [Step(200)])
    assert send_and_wait(stack, receiver, "single-ok", "/fine2")["status"] == "SUCCEEDED"
    capsys.readouterr()
    assert redrive(stack, "single-ok") == 0
    out = capsys.readouterr().out
    assert "skip  single-ok: execution is SUCCEEDED; only FAILED, TIMED_OUT or ABORTED runs can be redriven" in out
    assert len(receiver.requests_for("/fine2")) == 1


def test_unknown_notification_is_a_clear_error(stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert redrive(stack, "no-such-notification") == 2
    assert "no notification no-such-notification" in capsys.readouterr().err
