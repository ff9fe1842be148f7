"""``make cost``: a realistic mix through the embedded stack in each delivery mode, metered and priced.

The mix (per 100 notifications): 95 delivered on the first try, 4 retried once then delivered (503,
then 200), 1 failed (half answered 404, half never recover: the whole retry schedule), plus a few
rejected (an ``ftp://`` target). Every notification goes through SQS; the receiver is a real HTTP
server on 127.0.0.1 answering after ``receiver_latency_ms`` (prices.json), standing for a remote
endpoint, so the deliver step bills an HTTP wait as it would on AWS.

Each mode runs on a fresh stack: a few notifications warm the functions first (cold starts are rare
at volume); then the :class:`~notiflow.cost.meter.Meter` and the Lambda log file are opened, the mix
is sent, and every run is awaited. Histories are read back afterwards.

In fast-path mode ingest runs each record's Express workflow synchronously (StartSyncExecution), so
ingest bills the time it waits for the runs of its batch. The local engine shortens waits by its time
scale (the retry schedule of about a day runs in seconds), so every Express run is priced at its full
length (its busy time plus each retry's expected back-off from the definition), and each ingest
invocation gets back the back-off time the time scale took out of the longest run it waited for.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lambdas.shared.constants import STEP_INGEST, DeliveryMode
from notiflow.cost import histories
from notiflow.cost.collect import Run, add_express_runs, add_meter, add_standard_runs, lambda_log_bytes
from notiflow.cost.meter import Meter
from notiflow.cost.prices import PriceFile
from notiflow.cost.read import execution_history
from notiflow.cost.usage import Usage
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.shared.lambda_logs import lambda_output_to
from notiflow.shared.waiting import wait_until

TIME_SCALE: Final = 0.0001
"""The retry schedule (about a day) runs in seconds; Express back-offs are priced at full length."""
WARM_UP: Final = 3
TERMINAL: Final = frozenset({"SUCCESS", "FAILED", "REJECTED"})
LOG_DIR: Final = Path(".notiflow") / "cost"


@dataclass(frozen=True)
class Planned:
    """One notification of the mix: its body and the kind of path it takes."""

    kind: str
    body: dict[str, Any]

    @property
    def notification_id(self) -> str:
        return str(self.body["notificationId"])


def plan(count: int, receiver: WebhookReceiver, latency: float, tag: str) -> list[Planned]:
    """The mix for ``count`` notifications (plus about 1% rejected), scripting the receiver for each."""
    retried = round(count * 0.04)
    failed = max(2, round(count * 0.01))
    rejected = max(2, round(count * 0.01))
    first_try = count - retried - failed
    receiver.script("/ok", Step(200, delay=latency))
    receiver.script("/gone", Step(404, delay=latency))
    receiver.script("/down", Step(500, delay=latency))
    planned: list[Planned] = []

    def add(kind: str, url: str, index: int) -> None:
        planned.append(Planned(kind, _body(f"cost-{tag}-{kind}-{index}", url, index)))

    for i in range(first_try):
        add("ok", receiver.url("/ok"), i)
    for i in range(retried):
        path = f"/retry-{tag}-{i}"
        receiver.script(path, [Step(503, delay=latency), Step(200, delay=latency)])
        add("retried", receiver.url(path), i)
    for i in range(failed):
        add("failed", receiver.url("/gone" if i % 2 == 0 else "/down"), i)
    for i in range(rejected):
        add("rejected", "ftp://files.example.com/drop", i)
    return planned


def _body(notification_id: str, url: str, index: int) -> dict[str, Any]:
    """A notification of a typical size: an order event of a few hundred bytes."""
    return {
        "notificationId": notification_id,
        "target": {"url": url},
        "payload": {"orderId": index, "status": "shipped", "lines": [{"sku": "A-1", "qty": 2}]},
        "eventType": "order.shipped",
        "correlationId": f"req-{uuid.uuid4().hex[:12]}",
    }


def _statuses(stack: EmbeddedStack, ids: set[str]) -> dict[str, str]:
    # A scan: the meter counts the pipeline's GetItems only, not this observer's reads.
    found: dict[str, str] = {}
    for page in stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.table_name):
        for item in page["Items"]:
            nid = item["notificationId"]["S"]
            if nid in ids and "status" in item:
                found[nid] = item["status"]["S"]
    return found


def _running(stack: EmbeddedStack) -> int:
    sfn = stack.client("stepfunctions")
    return sum(
        len(sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"])
        for arn in (stack.state_machine_arn, stack.fast_path_state_machine_arn)
    )


def _await_all(stack: EmbeddedStack, planned: list[Planned], timeout: float) -> None:
    ids = {p.notification_id for p in planned}
    wait_until(
        lambda: _statuses(stack, ids),
        lambda found: len(found) == len(ids) and set(found.values()) <= TERMINAL,
        timeout=timeout,
        interval=0.2,
        describe=lambda found: f"terminal records ({len(found or {})} of {len(ids)} found)",
    )
    wait_until(lambda: _running(stack), lambda n: n == 0, timeout=timeout, interval=0.2, describe="runs to end")


def _runs(stack: EmbeddedStack, machine_arn: str, names: set[str], express: bool) -> list[Run]:
    sfn = stack.client("stepfunctions")
    runs = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn):
        for execution in page["executions"]:
            if execution["name"] in names:
                arn = execution["executionArn"]
                runs.append(Run(arn, execution_history(sfn, arn), express=express))
    return runs


@dataclass
class ModeResult:
    """One mode's measured usage."""

    usage: Usage


def _send_all(stack: EmbeddedStack, planned: list[Planned]) -> None:
    for item in planned:
        stack.send_notification(item.body)


@contextmanager
def _polling(stack: EmbeddedStack) -> Iterator[None]:
    """The SQS event source mapping feeding ingest, for as long as the block runs."""
    poller = stack.new_poller()
    poller.start()
    try:
        yield
    finally:
        poller.stop()


def _warm_up(stack: EmbeddedStack, receiver: WebhookReceiver, latency: float, log_dir: Path) -> None:
    """A few first-try successes so every function is warm before the meter opens."""
    receiver.script("/warm", Step(200, delay=latency))
    tag = uuid.uuid4().hex[:6]
    warm = [Planned("ok", _body(f"cost-warm-{tag}-{i}", receiver.url("/warm"), i)) for i in range(WARM_UP)]
    with lambda_output_to(log_dir / "warm-up.log"), _polling(stack):
        _send_all(stack, warm)
        _await_all(stack, warm, timeout=120)


def _transitions_by_path(planned: list[Planned], runs: list[Run]) -> str:
    """Standard transitions per notification of each path of the mix: where the Step Functions money goes."""
    kind_of = {p.notification_id: _path_name(p) for p in planned}
    totals: dict[str, int] = dict.fromkeys(kind_of.values(), 0)
    for run in runs:
        kind = kind_of.get(run.arn.split(":")[7])
        if kind is not None:
            totals[kind] += histories.transitions(run.events)
    counts = {kind: list(kind_of.values()).count(kind) for kind in totals}
    return "Standard transitions per notification by path: " + ", ".join(
        f"{kind} {totals[kind] / counts[kind]:.1f} (x{counts[kind]})" for kind in totals
    )


def _path_name(item: Planned) -> str:
    if item.kind != "failed":
        return "first-try success" if item.kind == "ok" else item.kind
    return "failed 404" if item.body["target"]["url"].endswith("/gone") else "failed, retries exhausted"


def _message_id(run: Run) -> str | None:
    """The SQS message a run was started for (ingest puts it in the input's ``source``)."""
    started = run.events[0] if run.events else {}
    try:
        source = json.loads((started.get("executionStartedEventDetails") or {}).get("input") or "{}").get("source")
    except ValueError:
        return None
    return source.get("sqsMessageId") if isinstance(source, dict) else None


def _restore_ingest_waits(usage: Usage, meter: Meter, ingest_name: str, runs: list[Run], full_ms: list[float]) -> float:
    """Give each ingest invocation back the back-off the time scale took out of the longest run it waited for.

    Ingest waits for its batch's Express runs in parallel, so it lasted as long as its longest run; at
    full scale that run is longer by its restored back-offs. Returns the milliseconds added in all.
    """
    shortened: dict[str, float] = {}
    for run, full in zip(runs, full_ms, strict=True):
        message = _message_id(run)
        if message is not None:
            missing = max(0.0, full - histories.duration_ms(run.events))
            shortened[message] = max(shortened.get(message, 0.0), missing)
    added = 0.0
    for call in meter.invocations:
        if call.function == ingest_name:
            added += max((shortened.get(m, 0.0) for m in call.records), default=0.0)
    if added and ingest_name in usage.functions:
        usage.functions[ingest_name].billed_ms += math.ceil(added)
    return added


def run_mode(
    mode: DeliveryMode,
    count: int,
    prices: PriceFile,
    *,
    timeout: float = 600,
    log_dir: Path = LOG_DIR,
    workers: int = 4,
    progress: Callable[[str], None] = lambda _: None,
) -> ModeResult:
    """Run the mix in one mode on a fresh stack and count what it used."""
    latency = prices.assume("receiver_latency_ms") / 1000
    settings = StackSettings(
        time_scale=TIME_SCALE,
        delivery_mode=mode,
        start_poller=False,
        execution_retention=None,
        express_retention=None,
        engine_workers=workers,
        max_runs_in_flight=4 * workers,
        connect_timeout_seconds=2.0,
        read_timeout_seconds=5.0,
    )
    tag = f"{mode.value}-{uuid.uuid4().hex[:6]}"
    with EmbeddedStack(settings) as stack, WebhookReceiver(secret=stack.signing_secret) as receiver:
        progress(f"{mode.value}: warming up")
        _warm_up(stack, receiver, latency, log_dir)
        planned = plan(count, receiver, latency, tag)
        log_path = log_dir / f"lambdas-{mode.value}.log"
        progress(f"{mode.value}: {len(planned)} notifications")
        started = time.monotonic()
        requests_before = len(receiver.requests)
        with lambda_output_to(log_path), Meter() as meter, _polling(stack):
            _send_all(stack, planned)
            _await_all(stack, planned, timeout=timeout)
        progress(f"{mode.value}: done in {time.monotonic() - started:.1f} s; reading histories")
        names = {p.notification_id for p in planned}
        usage = Usage(mode=mode.value, notifications=len(planned))
        standard_runs = _runs(stack, stack.state_machine_arn, names, False)
        add_standard_runs(usage, standard_runs, stack.spec.state_machine.log_level)
        usage.notes.append(_transitions_by_path(planned, standard_runs))
        express_runs = _runs(stack, stack.fast_path_state_machine_arn, names, True)
        full_ms = add_express_runs(
            usage,
            express_runs,
            stack.spec.fast_path.log_level,
            prices,
            json.loads(stack.fast_path_definition),
            TIME_SCALE,
        )
        add_meter(usage, meter, prices)
        usage.lambda_log_bytes = lambda_log_bytes(log_path)
        usage.delivery_attempts = len(receiver.requests) - requests_before
        if express_runs:
            added = _restore_ingest_waits(usage, meter, stack.function_names[STEP_INGEST], express_runs, full_ms)
            usage.notes.append(
                f"Express runs: median {statistics.median(full_ms):.0f} ms at full scale; memory "
                f"{prices.assume('express_memory_mb'):g} MB (prices.json; the local engine's billingDetails estimate "
                "from definition and payload size agrees for runs this small); retry back-offs at their expected "
                f"full length, and ingest given back {added / usage.notifications:.0f} ms per notification of "
                "back-off the local time scale shortened"
            )
        usage.notes.append(
            f"receiver answers after {latency * 1000:g} ms; Lambda durations measured in-process on this loaded "
            f"2-core machine with {workers} run(s) at a time (HTTP and DynamoDB waits included, as Lambda bills "
            "them), rounded up to 1 ms"
        )
        return ModeResult(usage)
