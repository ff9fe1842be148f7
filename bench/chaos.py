"""The chaos run: thousands of notifications through the embedded stack while receivers and the platform misbehave.

It starts the embedded stack and one scripted receiver on each of ``--hosts`` loopback addresses
(127.0.0.2, 127.0.0.3, ...: distinct hosts, each with the per-host in-flight limit), plus one address
where nothing listens (refused connections). Every notification gets its own path on a host, drawn
with a skew so a few hosts are hot, and a script drawn from the seed: each attempt meets a receiver
fault with probability ``--fault-rate`` (5xx, 429 with and without Retry-After, a read timeout, a
reset, a body dripped past the deadline) until it is answered 200; a few end in a permanent 404 and a
few go to the dead address. Some notifications are sent twice, and messages from the bad-input corpus
(tests/corpus) are mixed in. Platform faults (``--faults``, the engine's fault injection) come on top.

When every run has ended (the retry schedule is time-scaled), four sources are reconciled: the
messages sent, the receivers' request logs (by ``webhook-id``), the DynamoDB records, and the
execution histories plus the DLQ. One table is printed; the exit status is 1 if any invariant breaks:

1. every message sent has exactly one record with a terminal status and a reason (an unparseable body
   a REJECTED record under ``sqs-<message id>``); none is PROCESSING; the queue and the DLQ are empty;
2. no status went backwards: per notification exactly one terminal write succeeded in all histories,
   and it wrote the final status (the conditional-check rejections of the others are counted);
3. every SUCCESS was received at least once, and each record's ``attempts`` equals the requests its
   ``webhook-id`` got (the attempts of a fast-path hand-over span both runs, so the sum is the same);
   extra requests exist only where a crash-after-send fault hit that notification, and are listed;
4. no receiver host ever had more deliveries in flight than the per-host limit;
5. every failed run ends in FailureGate or Rejected with a named error, none for throttling;
6. each notification ended as its script says (SUCCESS, or FAILED for a 404 or the dead address).

    .venv/bin/python bench/chaos.py                      # 2,000 notifications, fast path, platform faults on
    .venv/bin/python bench/chaos.py --mode standard --count 200 --seed 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if __name__ == "__main__":
    # Quiet handlers for the script only: imported by the chaos test, it must not change the whole session's
    # log level (the Logger reads it when lambdas.shared.observability is first imported).
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from bench.corpus import CorpusCase, load_corpus
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local import engine
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.shared.waiting import WaitTimeoutError, wait_until

TERMINAL_WRITES: Final = {
    "RecordSuccess": "SUCCESS",
    "RecordFailure": "FAILED",
    "RecordUnexpectedFailure": "FAILED",
    "RecordStepFailure": "FAILED",
    "RecordRejected": "REJECTED",
}
"""The states whose UpdateItem writes a terminal status, and the status each writes."""
FAILED_RUN_ENDS: Final = frozenset({"FailureGate", "Rejected"})
THROTTLING: Final = ("TooManyRequests", "Throttl", "ProvisionedThroughputExceeded", "RequestLimitExceeded")
CONDITIONAL_CHECK: Final = "DynamoDB.ConditionalCheckFailedException"
FAST_PATH_LEASE_SECONDS: Final = 20
"""An Express claim's lease, shortened from the deployed one (the Express timeout plus an attempt). It must
outlast the longest a live Express run holds its claim here (a loaded machine stretches runs to seconds),
or a redelivered message takes a live run's claim over and the notification is sent twice; and it must stay
below the visibility timeout, as deployed, so a dead run's message comes back once its claim is free."""
VISIBILITY_TIMEOUT_SECONDS: Final = 30
PLATFORM_FAULTS: Final = (
    "lambda-throttle=0.03,lambda-timeout=0.005,ddb-throttle=0.03,sqs-duplicate=0.02,crash-after-send=0.005"
)
"""What ``make chaos`` injects in the engine (README "Fault injection"): every kind the issue names."""
FAULT_KINDS: Final = (
    "500",
    "502",
    "503",
    "429 Retry-After",
    "429",
    "503 Retry-After",
    "timeout",
    "reset",
    "503 slow body",
)


@dataclass(frozen=True)
class ChaosConfig:
    """What one chaos run sends and how the stack runs it."""

    count: int = 2000
    hosts: int = 20
    fault_rate: float = 0.25
    duplicate_rate: float = 0.05
    bad_messages: int = 50
    permanent_rate: float = 0.02
    dead_host_rate: float = 0.004
    slow_ok_rate: float = 0.03
    host_limit: int = 2
    delivery_mode: str = "fast-path"
    faults: str | None = None
    seed: int = 8
    read_timeout: float = 0.5
    time_scale: float = 0.0001
    max_wait_seconds: float = 0.05
    engine_workers: int = 6
    deadline_seconds: float = 540.0
    prefix: str = "chaos"


@dataclass
class Planned:
    """One notification: where it goes, its receiver script, and how it must end."""

    notification_id: str
    host: str
    url: str
    steps: list[Step]
    faults: list[str]
    expected: str
    copies: int = 1


@dataclass
class Violation:
    invariant: int
    detail: str


@dataclass
class ChaosReport:
    """The reconciled outcome of one run: figures for the table and every invariant violation."""

    config: ChaosConfig
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    crash_duplicates: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def broken(self, invariant: int) -> list[str]:
        return [v.detail for v in self.violations if v.invariant == invariant]


# ---------------------------------------------------------------------------------------------
# The plan: notifications, scripts, messages
# ---------------------------------------------------------------------------------------------


def _fault_step(kind: str, read_timeout: float) -> Step:
    if kind in ("500", "502", "503"):
        return Step(int(kind))
    if kind == "429":
        return Step(429)
    if kind == "429 Retry-After":
        return Step(429, headers={"Retry-After": "1"})
    if kind == "503 Retry-After":
        return Step(503, headers={"Retry-After": "2"})
    if kind == "timeout":
        return Step(200, delay=read_timeout * 3)
    if kind == "reset":
        return Step(reset=True)
    if kind == "503 slow body":
        return Step(503, body='{"error":"overloaded"}', drip=read_timeout * 0.6)
    raise ValueError(kind)


def plan(config: ChaosConfig, hosts: list[str], dead_host: str, ports: dict[str, int]) -> list[Planned]:
    """Draw every notification's host and script from the seed (the same seed gives the same plan)."""
    rng = random.Random(config.seed)
    weights = [1.0 / (rank + 1) for rank in range(len(hosts))]
    # At least one notification goes to the refusing address, however small the run.
    dead = set(rng.sample(range(config.count), max(1, round(config.count * config.dead_host_rate))))
    planned = []
    for index in range(config.count):
        notification_id = f"{config.prefix}-{index:05d}"
        path = f"/n/{notification_id}"
        if index in dead:
            host = dead_host
            steps, faults, expected = [Step(200)], ["refused"] * 25, "FAILED"
        else:
            host = rng.choices(hosts, weights)[0]
            faults = []
            while len(faults) < 6 and rng.random() < config.fault_rate:
                faults.append(rng.choice(FAULT_KINDS))
            steps = [_fault_step(kind, config.read_timeout) for kind in faults]
            if rng.random() < config.permanent_rate:
                steps.append(Step(404, body="no such hook"))
                expected = "FAILED"
            elif rng.random() < config.slow_ok_rate:
                # 200 at once, then a body dripped past the attempt's deadline: delivered (the 2xx counts)
                steps.append(Step(200, body='{"ok":true}', drip=config.read_timeout * 0.6))
                faults.append("200 slow body")
                expected = "SUCCESS"
            else:
                steps.append(Step(200))
                expected = "SUCCESS"
        url = f"http://{host}:{ports[host]}{path}"
        copies = 2 if rng.random() < config.duplicate_rate else 1
        planned.append(Planned(notification_id, host, url, steps, faults, expected, copies))
    return planned


def bad_cases(config: ChaosConfig) -> list[CorpusCase]:
    """Corpus messages that are rejected under the local target policy too (the SSRF ones need production's)."""
    cases = [case for case in load_corpus() if not case.name.split("-", 1)[1].startswith("ssrf-")]
    return cases[: config.bad_messages]


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def receivers(config: ChaosConfig, secret: str) -> Iterator[dict[str, WebhookReceiver]]:
    """One receiver per loopback address 127.0.0.2 .. 127.0.0.(hosts + 1)."""
    with contextlib.ExitStack() as stack:
        running = {}
        for index in range(config.hosts):
            address = f"127.0.0.{index + 2}"
            running[address] = stack.enter_context(WebhookReceiver(secret=secret, host=address))
        yield running


def stack_settings(config: ChaosConfig) -> StackSettings:
    return StackSettings(
        time_scale=config.time_scale,
        max_wait_seconds=config.max_wait_seconds,
        connect_timeout_seconds=config.read_timeout,
        read_timeout_seconds=config.read_timeout,
        queue_visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
        delivery_mode=config.delivery_mode,
        # A lost Express run's claim can be taken over seconds later, when SQS delivers its message again.
        fast_path_lease_seconds=FAST_PATH_LEASE_SECONDS,
        host_max_in_flight=config.host_limit,
        engine_workers=config.engine_workers,
        execution_retention=None,
        express_retention=None,
        poller_wait_seconds=0,
        log_level="ERROR",
        faults=config.faults or None,
        fault_seed=config.seed,
    )


def _send_all(stack: EmbeddedStack, messages: list[tuple[str, str]]) -> dict[str, str]:
    """Send (label, body) messages in batches of ten; returns message id -> label."""
    sqs = stack.client("sqs")
    sent: dict[str, str] = {}
    for offset in range(0, len(messages), 10):
        chunk = messages[offset : offset + 10]
        entries = [{"Id": str(n), "MessageBody": body} for n, (_, body) in enumerate(chunk)]
        response = sqs.send_message_batch(QueueUrl=stack.queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused messages: {response['Failed'][:3]}")
        for entry in response["Successful"]:
            sent[entry["MessageId"]] = chunk[int(entry["Id"])][0]
    return sent


def _queue_depth(stack: EmbeddedStack, url: str) -> int:
    attributes = _api(stack, "sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _machines(stack: EmbeddedStack) -> list[str]:
    if stack.delivery_mode.value == "fast-path":
        return [stack.state_machine_arn, stack.fast_path_state_machine_arn]
    return [stack.state_machine_arn]


def _executions(stack: EmbeddedStack, status: str | None = None) -> list[dict[str, Any]]:
    sfn = _api(stack, "stepfunctions")
    runs: list[dict[str, Any]] = []
    for machine in _machines(stack):
        request: dict[str, Any] = {"stateMachineArn": machine}
        if status:
            request["statusFilter"] = status
        for page in sfn.get_paginator("list_executions").paginate(**request):
            runs.extend(page["executions"])
    return runs


def _scan(stack: EmbeddedStack) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for page in _api(stack, "dynamodb").get_paginator("scan").paginate(TableName=stack.table_name):
        for item in page["Items"]:
            items[item["notificationId"]["S"]] = item
    return items


def _settled(stack: EmbeddedStack) -> tuple[int, int]:
    return _queue_depth(stack, stack.queue_url), len(_executions(stack, "RUNNING"))


def run(config: ChaosConfig, log: Any = print) -> ChaosReport:
    """Run the whole chaos scenario and reconcile it; never raises for a broken invariant (see the report)."""
    report = ChaosReport(config)
    hosts = [f"127.0.0.{index + 2}" for index in range(config.hosts)]
    dead_host = f"127.0.0.{config.hosts + 2}"
    started = time.monotonic()
    with EmbeddedStack(stack_settings(config)) as stack, receivers(config, stack.signing_secret) as live:
        ports = {host: receiver.port for host, receiver in live.items()}
        ports[dead_host] = _free_port(dead_host)  # bound and released: connections to it are refused
        planned = plan(config, hosts, dead_host, ports)
        for item in planned:
            if item.host in live:
                live[item.host].script(f"/n/{item.notification_id}", item.steps)
        rng = random.Random(config.seed + 1)
        messages: list[tuple[str, str]] = []
        for item in planned:
            body = json.dumps(
                {
                    "notificationId": item.notification_id,
                    "target": {"url": item.url},
                    "payload": {"chaos": item.notification_id, "faults": item.faults},
                    "eventType": "chaos.test",
                }
            )
            messages.extend([(item.notification_id, body)] * item.copies)
        cases = bad_cases(config)
        messages.extend((f"corpus:{case.name}", case.body) for case in cases)
        rng.shuffle(messages)
        log(
            f"sending {len(messages)} messages: {len(planned)} notifications to {len(hosts)} hosts + 1 dead address, "
            f"{sum(p.copies - 1 for p in planned)} duplicate copies, {len(cases)} bad; mode {config.delivery_mode}"
        )
        sent = _send_all(stack, messages)
        deadline = config.deadline_seconds - (time.monotonic() - started)
        try:
            wait_until(
                lambda: _settled(stack),
                lambda state: state == (0, 0),
                timeout=max(1.0, deadline),
                interval=0.5,
                max_interval=2.0,
                describe=lambda state: f"every run to end; (queued messages, running runs) = {state}",
            )
        except WaitTimeoutError as exc:
            report.violations.append(Violation(1, f"not settled within {config.deadline_seconds:.0f} s: {exc}"))
        elapsed = time.monotonic() - started
        log(f"runs ended after {elapsed:.0f} s; reconciling")
        fault_report = _fault_report(stack)
        reconcile(report, stack, live, dead_host, planned, cases, sent, fault_report)
        report.figures["elapsed seconds"] = round(elapsed)
    return report


def _fault_report(stack: EmbeddedStack) -> dict[str, Any]:
    """Platform faults the engine injected, with what each hit (read before the stack stops and clears it)."""
    report = engine.faults.report()
    if report.get("dropped"):
        raise RuntimeError(f"{report['dropped']} fault hits were not kept; the reconciliation would be blind to them")
    return report


# ---------------------------------------------------------------------------------------------
# Reconciliation
# ---------------------------------------------------------------------------------------------


@dataclass
class RunFacts:
    """What one execution's history says."""

    arn: str
    machine: str
    status: str
    notification_id: str
    last_state: str | None
    error: str | None
    cause: str | None
    terminal_writes: list[str]
    conditional_rejections: int
    host_busy: int


def _api(stack: EmbeddedStack, service: str) -> Any:
    """The service's API answered in this process (no HTTP round trip): reading 2,000 histories is faster."""
    return engine.speed.inprocess_client(service, stack.region)


def _history(stack: EmbeddedStack, arn: str) -> list[dict[str, Any]]:
    """A run's history events from moto's Step Functions backend, as GetExecutionHistory returns them.

    Read from the backend (moto documents its backends for inspecting state) rather than through the
    API: moto's response serializer takes about 0.1 s per history, 200 s for a full chaos run.
    """
    events = stepfunctions_parser_backends[stack.account_id][stack.region].get_execution_history(arn)["events"]
    return [{**event, "type": getattr(event["type"], "value", event["type"])} for event in events]


def _run_facts(stack: EmbeddedStack, summary: dict[str, Any]) -> RunFacts:
    arn = summary["executionArn"]
    history = _history(stack, arn)
    notification_id = ""
    last_state = None
    current = None
    writes: list[str] = []
    rejections = busy = 0
    error = cause = None
    for event in history:
        kind = event["type"]
        if kind == "ExecutionStarted":
            notification_id = json.loads(event["executionStartedEventDetails"]["input"]).get("notificationId", "")
        elif kind.endswith("StateEntered"):
            current = last_state = event["stateEnteredEventDetails"]["name"]
        elif kind == "TaskSucceeded" and current in TERMINAL_WRITES:
            writes.append(TERMINAL_WRITES[current])
        elif kind == "TaskFailed":
            task_error = event["taskFailedEventDetails"].get("error")
            rejections += task_error == CONDITIONAL_CHECK
            busy += task_error == "HostBusyError"
        elif kind == "ExecutionFailed":
            details = event.get("executionFailedEventDetails", {})
            error, cause = details.get("error"), details.get("cause")
    return RunFacts(
        arn=arn,
        machine=summary["stateMachineArn"],
        status=summary["status"],
        notification_id=notification_id,
        last_state=last_state,
        error=error,
        cause=cause,
        terminal_writes=writes,
        conditional_rejections=rejections,
        host_busy=busy,
    )


def reconcile(
    report: ChaosReport,
    stack: EmbeddedStack,
    live: dict[str, WebhookReceiver],
    dead_host: str,
    planned: list[Planned],
    cases: list[CorpusCase],
    sent: dict[str, str],
    fault_report: dict[str, Any],
) -> None:
    """Check the six invariants across the four sources and fill the report's figures."""
    config = report.config
    violate = report.violations.append
    records = _scan(stack)
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda summary: _run_facts(stack, summary), _executions(stack)))
    requests: dict[str, list[Any]] = defaultdict(list)
    for receiver in live.values():
        for request in receiver.requests:
            requests[request.headers.get("webhook-id", "")].append(request)
    by_id = {item.notification_id: item for item in planned}
    case_by_name = {case.name: case for case in cases}
    crash_hits = Counter(
        str(hit.get("notification")) for hit in fault_report.get("hits", []) if hit.get("kind") == "crash-after-send"
    )

    # 1. one terminal record per message; nothing PROCESSING; queues empty
    expected_keys: dict[str, str] = {}
    for message_id, label in sent.items():
        if label.startswith("corpus:"):
            expected_keys[case_by_name[label.removeprefix("corpus:")].record_key(message_id)] = "REJECTED"
        else:
            expected_keys[label] = by_id[label].expected
    for key in sorted(set(expected_keys) - set(records)):
        violate(Violation(1, f"{key}: no record"))
    for key in sorted(set(records) - set(expected_keys)):
        violate(Violation(1, f"{key}: a record no message asked for"))
    statuses = Counter()
    for key, item in records.items():
        status = item.get("status", {}).get("S", "")
        statuses[status] += 1
        if status not in ("SUCCESS", "FAILED", "REJECTED"):
            violate(Violation(1, f"{key}: status {status or 'missing'}"))
        elif status == "SUCCESS" and "deliveryResult" not in item:
            violate(Violation(1, f"{key}: SUCCESS without a deliveryResult"))
        elif status != "SUCCESS" and not item.get("failureReason", {}).get("S"):
            violate(Violation(1, f"{key}: {status} without a failureReason"))
    queue_left, dlq = _queue_depth(stack, stack.queue_url), _queue_depth(stack, stack.dlq_url)
    if queue_left or dlq:
        violate(Violation(1, f"{queue_left} message(s) left on the queue, {dlq} in the DLQ"))

    # 2. exactly one terminal write per notification, and it is the final status
    writes: dict[str, list[str]] = defaultdict(list)
    for facts in runs:
        writes[facts.notification_id].extend(facts.terminal_writes)
    for key, item in records.items():
        written = writes.get(key, [])
        status = item.get("status", {}).get("S")
        if written != [status]:
            violate(Violation(2, f"{key}: terminal writes {written} but the record says {status}"))

    # 3. requests received == attempts; extra requests only where crash-after-send hit
    duplicates_of_success = 0
    for item in planned:
        record = records.get(item.notification_id)
        if record is None:
            continue
        attempts = int(record.get("attempts", {}).get("N", "0"))
        received = len(requests.get(item.notification_id, []))
        status = record["status"]["S"]
        if item.host == dead_host:
            if received:
                violate(Violation(3, f"{item.notification_id}: the dead address received {received}"))
            continue
        if status == "SUCCESS" and received == 0:
            violate(Violation(3, f"{item.notification_id}: SUCCESS but the receiver never got it"))
        extra = received - attempts
        if extra == 0:
            continue
        if 0 < extra <= crash_hits.get(item.notification_id, 0):
            report.crash_duplicates.append(f"{item.notification_id}: {received} requests, {attempts} attempts")
            duplicates_of_success += status == "SUCCESS"
            continue
        violate(Violation(3, f"{item.notification_id}: {received} requests received, record attempts {attempts}"))

    # 4. per-host in-flight peak within the limit
    peaks = {host: receiver.peak_in_flight(host) for host, receiver in live.items()}
    for host, peak in sorted(peaks.items()):
        if peak > config.host_limit:
            violate(Violation(4, f"{host}: {peak} deliveries in flight at once, limit {config.host_limit}"))

    # 5. failed runs end in FailureGate or Rejected with a named error, none for throttling
    run_status = Counter((facts.machine.rsplit(":", 1)[-1], facts.status) for facts in runs)
    for facts in runs:
        if facts.status == "SUCCEEDED":
            continue
        error = facts.error or ""
        if facts.status != "FAILED":
            violate(Violation(5, f"{facts.arn}: ended {facts.status}"))
        elif facts.last_state not in FAILED_RUN_ENDS:
            violate(Violation(5, f"{facts.arn}: failed in {facts.last_state} with {error}"))
        elif not error or error.startswith("States."):
            violate(Violation(5, f"{facts.arn}: failed without a named error ({error or 'none'})"))
        elif any(word in error + (facts.cause or "")[:2000] for word in THROTTLING):
            violate(Violation(5, f"{facts.arn}: failed for throttling ({error})"))

    # 6. outcomes as scripted
    for key, expected in expected_keys.items():
        got = records.get(key, {}).get("status", {}).get("S")
        if got is not None and got != expected:
            violate(Violation(6, f"{key}: expected {expected}, ended {got}"))

    receiver_requests = sum(len(receiver.requests) for receiver in live.values())
    # The i-th request to a notification's path got the i-th step of its script: the faults come first.
    faulted = sum(
        min(len(requests.get(item.notification_id, [])), len(item.faults)) for item in planned if item.host in live
    )
    fault_kinds = Counter(kind for item in planned for kind in item.faults)
    report.figures.update(
        {
            "messages sent": len(sent),
            "notifications": len(planned),
            "duplicate copies": sum(p.copies - 1 for p in planned),
            "bad messages": sum(1 for label in sent.values() if label.startswith("corpus:")),
            "hosts": len(live),
            "receiver requests": receiver_requests,
            "receiver faults": faulted,
            "fault kinds": dict(fault_kinds),
            "refused attempts": sum(
                int(records.get(p.notification_id, {}).get("attempts", {}).get("N", "0"))
                for p in planned
                if p.host == dead_host
            ),
            "records": dict(statuses),
            "runs": {f"{machine} {status}": count for (machine, status), count in sorted(run_status.items())},
            "conditional-check rejections": sum(facts.conditional_rejections for facts in runs),
            "peak in flight": max(peaks.values(), default=0),
            "host busy": sum(facts.host_busy for facts in runs),
            "duplicate deliveries of a SUCCESS": duplicates_of_success,
            "platform faults": dict(fault_report.get("counts", {})),
            "DLQ": dlq,
        }
    )


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

INVARIANTS: Final = {
    1: "one terminal record per message, none PROCESSING, queue and DLQ empty",
    2: "no status went backwards (one terminal write per notification)",
    3: "requests received == record attempts (crash-after-send extras listed)",
    4: "per-host deliveries in flight <= limit",
    5: "failed runs end in FailureGate/Rejected, named error, none throttled",
    6: "every notification ended as its script says",
}


def table(report: ChaosReport) -> str:
    """The one table: the figures, then each invariant with its verdict."""
    f = report.figures
    records = f.get("records", {})
    attempts = f["receiver requests"] + f["refused attempts"]
    faults = f["receiver faults"] + f["refused attempts"]
    injected = ", ".join(f"{kind} {count}" for kind, count in sorted(f["platform faults"].items()) if count)
    platform = (injected or "none hit") if report.config.faults else "off"
    rows = [
        ("mode", report.config.delivery_mode),
        (
            "messages sent",
            f"{f['messages sent']} ({f['notifications']} notifications, {f['duplicate copies']} duplicate copies, "
            f"{f['bad messages']} bad input)",
        ),
        ("receiver hosts", f"{f['hosts']} on 127.0.0.2-{f['hosts'] + 1} + 1 refusing address"),
        (
            "delivery attempts",
            f"{attempts} ({f['receiver requests']} requests received + {f['refused attempts']} refused), "
            f"{faults} met a receiver fault ({100 * faults / max(1, attempts):.1f}%)",
        ),
        ("receiver fault kinds", ", ".join(f"{k} {v}" for k, v in sorted(f["fault kinds"].items()))),
        ("records", ", ".join(f"{k} {v}" for k, v in sorted(records.items()))),
        ("runs", ", ".join(f"{k} {v}" for k, v in f["runs"].items())),
        ("conditional-check rejections", str(f["conditional-check rejections"])),
        (
            "peak in flight per host",
            f"{f['peak in flight']} (limit {report.config.host_limit}); {f['host busy']} attempts waited for a slot",
        ),
        ("duplicate deliveries of a SUCCESS", str(f["duplicate deliveries of a SUCCESS"])),
        ("platform faults injected", platform),
        ("DLQ", str(f["DLQ"])),
        ("elapsed", f"{f.get('elapsed seconds', '?')} s"),
    ]
    for number, text in INVARIANTS.items():
        broken = report.broken(number)
        rows.append((f"invariant {number}", f"{'BROKEN x' + str(len(broken)) if broken else 'ok'}: {text}"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{'measure'.ljust(width)}  value", f"{'-' * width}  {'-' * 60}"]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    for violation in report.violations[:20]:
        lines.append(f"  ! invariant {violation.invariant}: {violation.detail}")
    if len(report.violations) > 20:
        lines.append(f"  ! ... and {len(report.violations) - 20} more")
    for line in report.crash_duplicates[:20]:
        lines.append(f"  duplicate after crash-after-send: {line}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="notifications (default 2000)")
    parser.add_argument("--hosts", type=int, default=20, help="receiver hosts on 127.0.0.x (default 20)")
    parser.add_argument(
        "--mode", choices=["fast-path", "standard"], default="fast-path", help="delivery mode (default fast-path)"
    )
    parser.add_argument(
        "--faults", default=PLATFORM_FAULTS, help=f"the engine's platform fault spec (default {PLATFORM_FAULTS})"
    )
    parser.add_argument("--no-platform-faults", action="store_true", help="receiver faults only")
    parser.add_argument("--fault-rate", type=float, default=0.25, help="receiver fault probability per attempt")
    parser.add_argument("--host-limit", type=int, default=2, help="per-host deliveries in flight")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument(
        "--deadline", type=float, default=540.0, help="seconds until every run must have ended (default 540)"
    )
    args = parser.parse_args(argv)
    config = ChaosConfig(
        count=args.count,
        hosts=args.hosts,
        delivery_mode=args.mode,
        faults=None if args.no_platform_faults else args.faults,
        fault_rate=args.fault_rate,
        host_limit=args.host_limit,
        seed=args.seed,
        deadline_seconds=args.deadline,
    )
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        # The in-process Lambdas print EMF metric lines to stdout, as on AWS; keep them out of the table.
        report = run(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(table(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
