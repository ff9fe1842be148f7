"""`notiflow redrive` against the embedded stack: a canary per host, outcomes reported, one exit-code table."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from lambdas.shared.clock import utc_iso
from notiflow.cli import main as notiflow_main
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import wait_for_execution
from notiflow.local.stack import EmbeddedStack
from notiflow.operate.exit_codes import ExitCode
from notiflow.operate.redrive import Redriver, redrive_one, single_candidate
from notiflow.operate.runs import RunStore
from notiflow.shared.waiting import wait_until

pytestmark = pytest.mark.slow
ON_A = [f"bulk-a{n}" for n in range(3)]
ON_B = [f"bulk-b{n}" for n in range(2)]


@pytest.fixture(scope="module")
def second_host(stack: EmbeddedStack) -> Iterator[WebhookReceiver]:
    """A receiver on another loopback address: another target host for the per-host canaries."""
    with WebhookReceiver(secret=stack.signing_secret, host="127.0.0.2") as running:
        yield running


def send_and_wait(stack: EmbeddedStack, receiver: WebhookReceiver, ident: str, path: str) -> dict:
    stack.send_notification({"notificationId": ident, "target": {"url": receiver.url(path)}, "payload": {"n": ident}})
    return wait_for_execution(stack.client("stepfunctions"), stack.execution_arn(ident), timeout=30)


def record_status(stack: EmbeddedStack, ident: str) -> str:
    item = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"notificationId": {"S": ident}})
    return item["Item"]["status"]["S"]


def redrive(stack: EmbeddedStack, *args: str) -> int:
    return notiflow_main(["redrive", "--endpoint-url", stack.endpoint_url, *args])


def redrives(stack: EmbeddedStack, ident: str) -> int:
    described = stack.client("stepfunctions").describe_execution(executionArn=stack.execution_arn(ident))
    return int(described.get("redriveCount", 0))


def fail_one_by_one(stack: EmbeddedStack, receiver: WebhookReceiver, idents: list[str], path: str) -> None:
    for ident in idents:
        assert send_and_wait(stack, receiver, ident, path)["status"] == "FAILED"
        # The next run must start later (millisecond resolution), so "oldest first" is well defined
        then = utc_iso()
        wait_until(utc_iso, lambda now, then=then: now > then, timeout=5)


def test_bulk_redrive_tries_one_canary_per_host_and_reports_every_outcome(
    stack: EmbeddedStack, receiver: WebhookReceiver, second_host: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three notifications failed on host A and two on host B (their endpoints answer 400), one delivered
    receiver.script("/broken", [Step(400, body="bad request")])
    second_host.script("/broken", [Step(400, body="bad request")])
    receiver.script("/fine", [Step(200)])
    fail_one_by_one(stack, receiver, ON_A, "/broken")
    fail_one_by_one(stack, second_host, ON_B, "/broken")
    assert send_and_wait(stack, receiver, "bulk-ok", "/fine")["status"] == "SUCCEEDED"
    capsys.readouterr()

    # When a dry run is asked for / Then it shows each host's canary and changes nothing
    assert redrive(stack, "--status", "FAILED", "--since", "1h", "--dry-run") == ExitCode.OK
    dry = capsys.readouterr().out
    assert "host    127.0.0.1: canary bulk-a0, then 2 more" in dry
    assert "host    127.0.0.2: canary bulk-b0, then 1 more" in dry
    assert "dry run: 5 would be redriven" in dry
    assert [redrives(stack, i) for i in ON_A + ON_B] == [0] * 5

    # When host A is fixed and B is not, and everything failed is redriven
    receiver.fix("/broken", [Step(200)])
    started = time.monotonic()
    code = redrive(stack, "--status", "FAILED", "--since", "1h", "--rate", "4", "--wait-seconds", "30")
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out

    # Then A's canary delivers and A's other runs follow; B's canary fails again and B's other run is left alone
    assert code == ExitCode.SOME_FAILED
    assert "canary  bulk-a0: delivered" in out
    assert "canary  bulk-b0: failed again (DeliveryPermanentError: HTTP 400" in out
    assert "host    127.0.0.2: its canary did not deliver; not trying its other 1" in out
    assert "redriving 2 more at 4/s" in out
    assert (
        "summary: 3 delivered, 1 failed again, 0 still running, 1 not tried (their host's canary did not deliver), "
        "0 cannot be redriven, 0 refused by AWS"
    ) in out
    assert elapsed >= 0.5  # two canaries, then two more runs, at 4/s: at least one interval each time
    assert [record_status(stack, i) for i in ON_A] == ["SUCCESS"] * 3
    assert [record_status(stack, i) for i in ON_B] == ["FAILED", "FAILED"]
    assert [redrives(stack, i) for i in ON_B] == [1, 0]

    # When B is fixed too and the failures are redriven again
    second_host.fix("/broken", [Step(200)])
    code = redrive(stack, "--status", "FAILED", "--since", "1h", "--wait-seconds", "30")
    out = capsys.readouterr().out
    # Then both of B's runs deliver (the canary on its second redrive) and the command exits 0
    assert code == ExitCode.OK, out
    assert "summary: 2 delivered, 0 failed again, 0 still running, 0 not tried" in out
    assert [record_status(stack, i) for i in ON_B] == ["SUCCESS", "SUCCESS"]
    assert [redrives(stack, i) for i in ON_B] == [2, 1]


def test_a_single_redrive_reports_whether_it_delivered(
    stack: EmbeddedStack, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a notification failed on an endpoint that still fails
    receiver.script("/still-broken", [Step(404)])
    assert send_and_wait(stack, receiver, "single-broken", "/still-broken")["status"] == "FAILED"
    capsys.readouterr()
    # When it is redriven / Then the command says it failed again, with why, and exits 1
    assert redrive(stack, "single-broken", "--wait-seconds", "30") == ExitCode.SOME_FAILED
    assert "result  single-broken: failed again (DeliveryPermanentError: HTTP 404" in capsys.readouterr().out
    # When the endpoint is fixed and it is redriven again / Then it delivers and exits 0
    receiver.fix("/still-broken", [Step(200)])
    assert redrive(stack, "single-broken", "--wait-seconds", "30") == ExitCode.OK
    assert "result  single-broken: delivered" in capsys.readouterr().out
    assert record_status(stack, "single-broken") == "SUCCESS"


def test_a_delivered_run_is_refused_as_aws_refuses_it(
    stack: EmbeddedStack, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a delivered notification / When it is redriven / Then the command refuses (exit 3), nothing is sent
    receiver.script("/fine2", [Step(200)])
    assert send_and_wait(stack, receiver, "single-ok", "/fine2")["status"] == "SUCCEEDED"
    capsys.readouterr()
    assert redrive(stack, "single-ok") == ExitCode.REFUSED
    out = capsys.readouterr().out
    assert "refused single-ok: execution is SUCCEEDED; only FAILED, TIMED_OUT or ABORTED runs can be redriven" in out
    assert len(receiver.requests_for("/fine2")) == 1


def test_a_rejected_run_is_never_redriven_and_the_replay_is_explained(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a notification rejected for a target scheme the contract refuses
    stack.send_notification({"notificationId": "single-rejected", "target": {"url": "ftp://x.example/"}, "payload": 1})
    assert (
        wait_for_execution(stack.client("stepfunctions"), stack.execution_arn("single-rejected"))["status"] == "FAILED"
    )
    capsys.readouterr()
    # When it is redriven / Then the command refuses, and says how to send a corrected one
    assert redrive(stack, "single-rejected") == ExitCode.REFUSED
    out = capsys.readouterr().out
    assert "refused single-rejected: rejected:" in out
    assert "send it again with the SQS message attribute notiflow-replay=true" in out
    assert redrives(stack, "single-rejected") == 0
    # And a bulk redrive does not offer it either
    assert redrive(stack, "--status", "FAILED", "--since", "1h", "--dry-run") == ExitCode.OK
    assert "single-rejected" not in capsys.readouterr().out


def test_the_loser_of_two_concurrent_redrives_is_refused_cleanly(
    stack: EmbeddedStack, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a failed notification whose endpoint, once fixed, answers slowly
    receiver.script("/slow", [Step(500)])
    assert send_and_wait(stack, receiver, "single-race", "/slow")["status"] == "FAILED"
    store = RunStore(stack.client("dynamodb"), stack.client("stepfunctions"), stack.table_name, stack.state_machine_arn)
    redriver = Redriver(store)
    loser = single_candidate(redriver, store, "single-race")  # read while the run was still FAILED
    receiver.fix("/slow", [Step(200, delay=1.0)])
    # When another operator's redrive starts first
    redriver.start(single_candidate(redriver, store, "single-race"))
    # Then the later one is refused by AWS with its reason, not an exception
    code = redrive_one(redriver, loser, dry_run=False, wait_seconds=5, out=sys.stdout)
    assert code == ExitCode.REFUSED
    assert "AWS refused the redrive (ExecutionNotRedrivable" in capsys.readouterr().out
    # And the winner's redrive delivers
    assert (
        wait_for_execution(stack.client("stepfunctions"), stack.execution_arn("single-race"))["status"] == "SUCCEEDED"
    )
    assert record_status(stack, "single-race") == "SUCCESS"


def test_unknown_notification_is_a_usage_error(stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert redrive(stack, "no-such-notification") == ExitCode.USAGE
    assert "no notification no-such-notification" in capsys.readouterr().err
