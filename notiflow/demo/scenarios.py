"""``notiflow demo`` (``make run``): the real pipeline end to end on this machine.

Starts the embedded stack and a local webhook receiver on 127.0.0.1, sends a
realistic batch through SQS, waits for every run and prints what happened. Every
cell of the table is read back from the DynamoDB record, the execution histories or
the receiver's log of requests it really received, never from what the scenario
expected.

In ``fast-path`` mode a notification may have two runs: the Express run that made the first
attempt and, when it handed over, the Standard run (same name) that took it from there. The
table shows the run that decided the outcome, counts attempts across both, and its last column
says which path each notification took.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
import webbrowser
from dataclasses import dataclass, field
from typing import Any, TextIO

from lambdas.ingest.starter import execution_name
from lambdas.shared.constants import DeliveryMode, RecordStatus
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.operate.runs import RunStore, summarize_history
from notiflow.shared.lambda_logs import DEMO_LOG, lambda_output_to
from notiflow.shared.table import render_table
from notiflow.shared.waiting import wait_until
from workflows.definition import default_retry_policy

READ_TIMEOUT_SECONDS = 1.0
KEPT_PORT = 4599
CONSOLE_PORT = 4600
RUN_DEADLINE_SECONDS = 120.0
VISIBILITY_TIMEOUT_SECONDS = 2
"""The intake queue's visibility timeout in the demo: a message left on the queue (the duplicate send
found the first run's claim BUSY) comes back in seconds, not after the deployed half hour."""


@dataclass
class Scenario:
    """One notification of the demo batch and how its endpoint behaves."""

    key: str
    title: str
    path: str
    steps: list[Step] = field(default_factory=list)
    body: dict[str, Any] | str | None = None
    sends: int = 1
    replay: bool = False
    notification_id: str = ""
    execution_names: list[str] = field(default_factory=list)


def scenarios() -> list[Scenario]:
    """The batch: each scenario is a path on the receiver with scripted answers."""
    slow = READ_TIMEOUT_SECONDS + 1.0
    return [
        Scenario("ok", "immediate success", "/orders", [Step(200, body='{"received":true}')]),
        Scenario("flaky", "5xx, then success", "/flaky", [Step(503), Step(502), Step(200)]),
        Scenario(
            "throttled",
            "429 with Retry-After, then success",
            "/throttled",
            [Step(429, headers={"Retry-After": "1"}), Step(200)],
        ),
        Scenario("slow", "timeout, then success", "/slow", [Step(200, delay=slow), Step(200)]),
        Scenario("gone", "permanent 4xx", "/wrong-path", [Step(404, body="no such hook")]),
        Scenario("down", "retries exhausted", "/down", [Step(500, body="database unavailable")]),
        Scenario("dup", "duplicate send (same message twice)", "/dup", [Step(200)], sends=2),
        Scenario("invalid", "invalid message (breaks the contract)", "/never"),
        Scenario("garbage", "invalid message (not JSON)", "/never", body="order 1042 shipped!!"),
    ]


def notification_for(scenario: Scenario, receiver: WebhookReceiver) -> dict[str, Any] | str:
    if isinstance(scenario.body, str):
        return scenario.body
    notification_id = f"demo-{scenario.key}"
    scenario.notification_id = notification_id
    body: dict[str, Any] = {
        "notificationId": notification_id,
        "target": {"url": receiver.url(scenario.path), "headers": {"X-Tenant": "acme"}},
        "payload": {"orderId": 1042, "event": scenario.title},
        "eventType": "order.updated",
        "correlationId": f"corr-{scenario.key}",
    }
    if scenario.key == "invalid":
        body["target"] = {"url": "ftp://files.example.com/drop", "headers": {"Connection": "close"}}
    return body


@dataclass(frozen=True)
class Stores:
    """Where the demo reads runs back: the Standard machine and, in fast-path mode, the Express one."""

    standard: RunStore
    fast_path: RunStore | None

    def runs_named(self, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """(path, execution) of every run called one of ``names``: Express runs first, oldest first."""
        found: list[tuple[str, dict[str, Any]]] = []
        for path, store in (("fast path", self.fast_path), ("standard", self.standard)):
            if store is None:
                continue
            executions = [e for e in store.executions() if e["name"] in names]
            found += [(path, e) for e in sorted(executions, key=lambda e: e["startDate"])]
        return found


def _wait_for_runs(stores: Stores, names: list[str], timeout: float = RUN_DEADLINE_SECONDS) -> None:
    """Bounded wait until every named execution exists and has finished."""
    deadline = time.monotonic() + timeout
    store = stores.standard
    for name in names:
        store.wait_for_finish(store.execution_arn(name), max(deadline - time.monotonic(), 0.0), interval=0.05)


def _wait_for_fast_path(
    stack: EmbeddedStack, stores: Stores, batch: list[Scenario], timeout: float = RUN_DEADLINE_SECONDS
) -> None:
    """Bounded wait until the queue is drained, every record is terminal and every hand-over's run has finished."""
    sqs = stack.client("sqs")
    counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")

    def pending() -> int:
        attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=list(counts))["Attributes"]
        return sum(int(attributes[name]) for name in counts)

    deadline = time.monotonic() + timeout
    wait_until(pending, lambda left: left == 0, timeout=timeout, describe="the intake queue to drain")
    for scenario in batch:
        for name in scenario.execution_names:
            notification_id = scenario.notification_id or name
            record = wait_until(
                functools.partial(stores.standard.record, notification_id),
                lambda found: found is not None and RecordStatus(found["status"]).terminal,
                timeout=max(deadline - time.monotonic(), 0.0),
                describe=f"{notification_id} to reach a terminal status",
            )
            owner = str((record or {}).get("executionArn", ""))
            if owner.startswith(stores.standard.execution_arn("")):
                stores.standard.wait_for_finish(owner, max(deadline - time.monotonic(), 0.0))


def _execution_names(scenario: Scenario, message_ids: list[str]) -> list[str]:
    if scenario.notification_id:
        return [execution_name(scenario.notification_id)]
    return [f"sqs-{message_id}" for message_id in message_ids]


def row_for(stores: Stores, receiver: WebhookReceiver, scenario: Scenario) -> tuple[Any, ...]:
    store = stores.standard
    name = scenario.execution_names[0]
    notification_id = scenario.notification_id or name
    record = store.record(notification_id) or {}
    result = record.get("deliveryResult") or {}
    runs = stores.runs_named(scenario.execution_names)
    # The runs that worked on the delivered (or failed) notification: the Express run the record names
    # (the one that owned it last, or the one that handed over) and the Standard run, if any.
    owners = {record.get("executionArn"), record.get("fastPathExecutionArn")}
    deciding = [(path, e) for path, e in runs if e["executionArn"] in owners] or runs[-1:]
    histories = [summarize_history(store.history(e["executionArn"])) for _, e in deciding]
    visits = [visit for history in histories for visit in history]
    execution = deciding[-1][1]
    retries = max(sum(v.attempts for v in visits if v.name == "Deliver") - 1, 0)
    waits = [v.input["retryAfter"]["seconds"] for v in visits if v.name == "WaitRetryAfter"]
    received = [
        r for r in receiver.requests_for(scenario.path) if r.headers.get("webhook-id") == scenario.notification_id
    ]
    signed = sum(1 for r in received if r.signature_valid)
    note = record.get("failureReason") or ""
    if scenario.sends > 1:
        plural = "s" * (len(runs) != 1)
        note = f"{scenario.sends} messages sent -> {len(runs)} run{plural}, {len(received)} request(s) received"
    elif record.get("status") == RecordStatus.SUCCESS:
        note = f"{len(received)} received, {signed} with valid signature"
    if waits:
        note += f"; Retry-After {', '.join(f'{w}s' for w in waits)} honoured"
    return (
        scenario.title,
        notification_id,
        record.get("status", "-"),
        record.get("attempts", 0),
        result.get("statusCode"),
        f"{result['responseTime']} ms" if "responseTime" in result else None,
        retries,
        execution["status"],
        note,
        " -> ".join(dict.fromkeys(p for p, _ in deciding)),
    )


def run_demo(
    time_scale: float = 0.0001,
    keep_running: bool = False,
    port: int = 0,
    out: TextIO | None = None,
    open_browser: bool = False,
    delivery_mode: DeliveryMode | None = None,
) -> int:
    """Run the batch and print the table; with ``keep_running`` leave it all up with the console.

    ``delivery_mode`` None runs the local stack's default mode.
    """
    out = out or sys.stdout
    started = time.monotonic()
    if keep_running and not port:
        port = KEPT_PORT
    settings = StackSettings(
        port=port or None,
        time_scale=time_scale,
        read_timeout_seconds=READ_TIMEOUT_SECONDS,
        queue_visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
    )
    if delivery_mode is not None:
        settings = StackSettings(**{**settings.__dict__, "delivery_mode": delivery_mode})
    print(f"Starting the embedded stack (time scale {time_scale:g}) and a webhook receiver on 127.0.0.1 ...", file=out)
    with (
        lambda_output_to(DEMO_LOG) as log_path,
        EmbeddedStack(settings) as stack,
        WebhookReceiver(secret=stack.signing_secret) as receiver,
    ):
        fast_mode = stack.delivery_mode is DeliveryMode.FAST_PATH
        stores = Stores(
            standard=RunStore(
                stack.client("dynamodb"), stack.client("stepfunctions"), stack.table_name, stack.state_machine_arn
            ),
            fast_path=RunStore(
                stack.client("dynamodb"),
                stack.client("stepfunctions"),
                stack.table_name,
                stack.fast_path_state_machine_arn,
            )
            if fast_mode
            else None,
        )
        batch = scenarios()
        for scenario in batch:
            if scenario.steps:
                receiver.script(scenario.path, scenario.steps)
        print(f"Delivery mode: {stack.delivery_mode.value}", file=out)
        print(f"Delivery retry policy: {default_retry_policy().describe()}", file=out)
        print(f"Sending {sum(s.sends for s in batch)} messages through SQS ...", file=out)
        for scenario in batch:
            body = notification_for(scenario, receiver)
            message_ids = [stack.send_notification(body) for _ in range(scenario.sends)]
            scenario.execution_names = _execution_names(scenario, message_ids)
        names = [name for scenario in batch for name in scenario.execution_names]
        if fast_mode:
            _wait_for_fast_path(stack, stores, batch)
        else:
            _wait_for_runs(stores, names)
        rows = [row_for(stores, receiver, scenario) for scenario in batch]
        headers = (
            "scenario",
            "notification",
            "status",
            "attempts",
            "last code",
            "latency",
            "retries",
            "run",
            "note",
            "path",
        )
        print("", file=out)
        print(render_table(headers, rows, max_width=60), file=out)
        elapsed = time.monotonic() - started
        runs = stores.runs_named(names)
        by_path = {path: sum(1 for p, _ in runs if p == path) for path in dict.fromkeys(p for p, _ in runs)}
        split = ", ".join(f"{count} {path}" for path, count in by_path.items())
        print(
            f"\n{len(rows)} notifications, {len(runs)} runs ({split}), finished in {elapsed:.1f} s.",
            file=out,
        )
        print_next_steps(stack, batch, keep_running, out)
        print(f"  {log_path!s:<30} the Lambda logs of this run (JSON, one line each)", file=out)
        if keep_running:
            keep_serving(stack, receiver, batch, out, open_browser=open_browser)
    return 0


def keep_serving(
    stack: EmbeddedStack,
    receiver: WebhookReceiver,
    batch: list[Scenario],
    out: TextIO,
    *,
    console_port: int = CONSOLE_PORT,
    open_browser: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Leave everything up with the receiver fixed, so a redrive of a failed run turns it green."""
    from notiflow.console.server import ConsoleServer

    for scenario in batch:
        if scenario.steps:
            receiver.fix(scenario.path, [Step(200)])
    stop = stop or threading.Event()
    with ConsoleServer.for_stack(stack, port=console_port) as console:
        print(f"\nConsole: {console.url}", file=out)
        print(
            "The receiver is now fixed: every path answers 200. Redrive demo-gone or demo-down from the console\n"
            f"(Redrive button) or with: notiflow redrive demo-gone --endpoint-url {stack.endpoint_url}\n"
            "Everything stays up until Ctrl-C.",
            file=out,
            flush=True,
        )
        if open_browser:
            webbrowser.open(console.url)
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):
                pass


def print_next_steps(stack: EmbeddedStack, batch: list[Scenario], keep_running: bool, out: TextIO) -> None:
    failed = next((s.notification_id for s in batch if s.key == "gone"), "ID")
    endpoint = f"--endpoint-url {stack.endpoint_url}"
    print("\nWhere to look next:", file=out)
    if keep_running:
        print(f"  notiflow runs list {endpoint} --status FAILED", file=out)
        print(f"  notiflow runs show {failed} {endpoint}", file=out)
        print(f"  notiflow redrive {failed} {endpoint}", file=out)
    else:
        print(
            "  make console                   the same demo, then kept up with the console open in a browser", file=out
        )
        print(
            "  make run ARGS=--keep-running   kept up without opening it: console, `notiflow runs ...`, redrive",
            file=out,
        )
    print("  make up                        a long-running stack on 127.0.0.1:4599 for your own messages", file=out)
    print("  README.md                      the contract, the statuses and the retry schedule", file=out)
