"""``make cost``: a realistic mix through the embedded stack in each delivery mode, metered and priced.

The mix (per 100 notifications): 95 delivered on the first try, 4 retried once then delivered (503,
then 200), 1 failed (half answered 404, half never recover: the whole retry schedule), plus a few
rejected (an ``ftp://`` target). Every notification goes through SQS; the receiver is a real HTTP
server on 127.0.0.1 answering after ``receiver_latency_ms`` (prices.json), standing for a remote
endpoint, so the deliver step bills an HTTP wait as it would on AWS.

Each mode runs on a fresh stack: a few notifications warm the functions first (cold starts are rare
at volume); then the :class:`~notiflow.cost.meter.Meter` and the Lambda log file are opened, the mix
is sent, and every run is awaited. Histories are read back afterwards.

Fast-path mode needs StartSyncExecution for ingest. Until the local engine serves it, the mix plays
ingest's part itself (interim): it receives the batches from SQS as the event source mapping does,
starts each record's Express run with the definition ingest would start (StartExecution: the same
states), waits for them, and deletes the durable ones. Ingest's own invocation is then derived, and
the table says so: one invocation per batch, billed the standard mode's measured ingest time per
batch plus the longest Express run of the batch (ingest waits for its records' runs in parallel).
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lambdas.ingest.starter import build_start_request
from lambdas.shared.constants import STEP_INGEST, DeliveryMode, FastPathOutcome
from notiflow.cost.collect import Run, add_express_runs, add_meter, add_standard_runs, lambda_log_bytes
from notiflow.cost.meter import Meter
from notiflow.cost.prices import PriceFile
from notiflow.cost.usage import Usage
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import execution_history
from notiflow.local.sqs_poller import to_event_record
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


def supports_sync_execution(stack: EmbeddedStack) -> bool:
    """Whether the local engine serves StartSyncExecution (asked about a machine that does not exist)."""
    try:
        stack.client("stepfunctions").start_sync_execution(
            stateMachineArn=stack.fast_path_state_machine_arn + "-probe", input="{}"
        )
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return code == "StateMachineDoesNotExist"
    return True


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


class _InterimIngest:
    """Plays ingest's fast-path part while the local engine lacks StartSyncExecution (see the module doc)."""

    def __init__(self, stack: EmbeddedStack, batch_size: int, workers: int = 4) -> None:
        self.stack = stack
        self.batch_size = batch_size
        self.batches: list[list[str]] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="interim-ingest")
        self._thread = threading.Thread(target=self._poll, name="interim-ingest", daemon=True)

    def __enter__(self) -> _InterimIngest:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._pool.shutdown(wait=True)

    def _poll(self) -> None:
        sqs = self.stack.client("sqs")
        while not self._stop.is_set():
            messages = sqs.receive_message(
                QueueUrl=self.stack.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if messages:
                self._pool.submit(self._batch, messages)

    def _batch(self, messages: list[dict[str, Any]]) -> None:
        sfn = self.stack.client("stepfunctions")
        records = [to_event_record(m, self.stack.queue_arn, self.stack.region) for m in messages]
        names, done = [], []
        for message, record in zip(messages, records, strict=True):
            request = build_start_request(record, self.stack.queue_arn, self.stack.config.record_ttl_days)
            arn = sfn.start_execution(
                stateMachineArn=self.stack.fast_path_state_machine_arn,
                name=request.name,
                input=json.dumps(request.input, separators=(",", ":")),
            )["executionArn"]
            names.append((message, arn))
        for message, arn in names:
            described = wait_until(
                lambda arn=arn: sfn.describe_execution(executionArn=arn),
                lambda d: d["status"] != "RUNNING",
                timeout=120,
                interval=0.05,
                max_interval=0.5,
                describe="an Express run to end",
            )
            output = json.loads(described.get("output") or "{}") if described["status"] == "SUCCEEDED" else {}
            durable_outcomes = {o.value for o in FastPathOutcome if o.durable}
            if output.get("outcome") in durable_outcomes or described.get("error") == "InvalidNotificationError":
                done.append(message)
        self.batches.append([arn for _, arn in names])
        if done:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
            self.stack.client("sqs").delete_message_batch(QueueUrl=self.stack.queue_url, Entries=entries)


@contextmanager
def _start_execution_integration() -> Iterator[None]:
    """Interim, as tests/workflows/test_fast_path.py: stock moto passes ``states:startExecution``'s ASL
    parameter names to boto unconverted; the engine2 branch fixes it in the engine."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sfn

    original = state_task_service_sfn.StateTaskServiceSfn._normalise_parameters
    names = {"StateMachineArn": "stateMachineArn", "Name": "name", "Input": "input"}

    def normalise(self: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        original(self, parameters, *args, **kwargs)
        for asl_name, boto_name in names.items():
            if asl_name in parameters:
                parameters[boto_name] = parameters.pop(asl_name)

    state_task_service_sfn.StateTaskServiceSfn._normalise_parameters = normalise  # type: ignore[method-assign]
    try:
        yield
    finally:
        state_task_service_sfn.StateTaskServiceSfn._normalise_parameters = original  # type: ignore[method-assign]


@dataclass
class ModeResult:
    """One mode's measured usage, and the per-batch ingest time standard mode measured (for the interim)."""

    usage: Usage
    ingest_ms_per_batch: float | None = None


def _send_all(stack: EmbeddedStack, planned: list[Planned]) -> None:
    for item in planned:
        stack.send_notification(item.body)


def _warm_up(stack: EmbeddedStack, receiver: WebhookReceiver, latency: float, drive: Callable[[], Any]) -> None:
    receiver.script("/warm", Step(200, delay=latency))
    tag = uuid.uuid4().hex[:6]
    warm = [Planned("ok", _body(f"cost-warm-{tag}-{i}", receiver.url("/warm"), i)) for i in range(WARM_UP)]
    with lambda_output_to(LOG_DIR / "warm-up.log"), drive():
        _send_all(stack, warm)
        _await_all(stack, warm, timeout=120)


def run_mode(
    mode: DeliveryMode,
    count: int,
    prices: PriceFile,
    *,
    ingest_ms_per_batch: float | None = None,
    timeout: float = 600,
    progress: Callable[[str], None] = lambda _: None,
) -> ModeResult:
    """Run the mix in one mode on a fresh stack and count what it used."""
    latency = prices.assume("receiver_latency_ms") / 1000
    settings = StackSettings(
        time_scale=TIME_SCALE,
        delivery_mode=mode,
        start_poller=False,
        execution_retention=None,
        connect_timeout_seconds=2.0,
        read_timeout_seconds=5.0,
    )
    tag = f"{mode.value}-{uuid.uuid4().hex[:6]}"
    with EmbeddedStack(settings) as stack, WebhookReceiver(secret=stack.signing_secret) as receiver:
        interim = mode is DeliveryMode.FAST_PATH and not supports_sync_execution(stack)
        batch_size = stack.spec.intake.batch_size
        holder: dict[str, Any] = {}

        @contextmanager
        def drive() -> Iterator[None]:
            if interim:
                with _start_execution_integration(), _InterimIngest(stack, batch_size) as ingest:
                    holder["ingest"] = ingest
                    yield
            else:
                poller = stack.new_poller()
                poller.start()
                try:
                    yield
                finally:
                    poller.stop()

        progress(f"{mode.value}: warming up")
        _warm_up(stack, receiver, latency, drive)
        planned = plan(count, receiver, latency, tag)
        log_path = LOG_DIR / f"lambdas-{mode.value}.log"
        progress(f"{mode.value}: {len(planned)} notifications" + (" (interim ingest)" if interim else ""))
        started = time.monotonic()
        requests_before = len(receiver.requests)
        with lambda_output_to(log_path), Meter() as meter, drive():
            _send_all(stack, planned)
            _await_all(stack, planned, timeout=timeout)
        progress(f"{mode.value}: done in {time.monotonic() - started:.1f} s; reading histories")
        names = {p.notification_id for p in planned}
        usage = Usage(mode=mode.value, notifications=len(planned))
        add_standard_runs(
            usage, _runs(stack, stack.state_machine_arn, names, False), stack.spec.state_machine.log_level
        )
        express_runs = _runs(stack, stack.fast_path_state_machine_arn, names, True)
        durations = add_express_runs(
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
        result = ModeResult(usage)
        ingest_name = stack.function_names[STEP_INGEST]
        ingest = usage.functions.get(ingest_name)
        if ingest and ingest.invocations:
            result.ingest_ms_per_batch = ingest.billed_ms / ingest.invocations
        if interim:
            _derive_ingest(usage, stack, holder["ingest"], express_runs, durations, ingest_ms_per_batch)
        if express_runs and not any(run.billing_details for run in express_runs):
            usage.notes.append(
                f"Express memory: {prices.assume('express_memory_mb'):g} MB assumed (prices.json); durations are "
                "the runs' own, retry back-offs at their expected full length (the local time scale shortens them)"
            )
        usage.notes.append(
            f"receiver answers after {latency * 1000:g} ms; Lambda durations measured in-process on this machine "
            "(HTTP wait included), rounded up to 1 ms"
        )
        return result


def _derive_ingest(
    usage: Usage,
    stack: EmbeddedStack,
    ingest: _InterimIngest,
    express_runs: list[Run],
    durations: list[float],
    ingest_ms_per_batch: float | None,
) -> None:
    """Interim: what ingest would have billed, from the batches the stand-in received and the Express runs."""
    by_arn = {run.arn: duration for run, duration in zip(express_runs, durations, strict=True)}
    batches = [batch for batch in ingest.batches if any(arn in by_arn for arn in batch)]
    base = ingest_ms_per_batch if ingest_ms_per_batch is not None else 0.0
    function = usage.function(stack.function_names[STEP_INGEST], stack.spec.function(STEP_INGEST).memory_mb)
    for batch in batches:
        longest = max((by_arn.get(arn, 0.0) for arn in batch), default=0.0)
        function.invocations += 1
        function.billed_ms += math.ceil(base + longest)
    usage.lambda_platform_log_bytes += len(batches) * int(usage_platform_bytes())
    usage.provenance["lambda"] = (
        f"ingest derived, not run (the local engine has no StartSyncExecution yet): {len(batches)} invocations, "
        f"one per SQS batch the stand-in received, each billed standard mode's measured ingest time per batch "
        f"({base:.0f} ms) plus the longest Express run of its batch (median run "
        f"{statistics.median(durations) if durations else 0:.0f} ms); the other functions measured"
    )


def usage_platform_bytes() -> float:
    """Bytes of one invocation's platform lines, rendered as the meter renders them."""
    from notiflow.cost.meter import Invocation

    return sum(len(line.encode()) for line in Invocation("ingest", 100.0, 256, str(uuid.uuid4())).platform_lines())
