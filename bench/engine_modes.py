"""Executions per second of the success workflow on the embedded engine, stock versus optimised.

Each run starts the real state machine through the Step Functions API (as ingest does) against a
real receiver on 127.0.0.1, keeping ``concurrency`` runs in flight, and counts finished runs via
an in-process listener (no polling load). "stock" is moto as it comes plus only what is needed
to run at all (in-process handlers, time scale, atomic writes, bounded memory): a thread per
execution and per task, a definition parsed per run, a boto3 client per task calling the server
over HTTP, Lambda tasks through the Invoke API. Each further mode adds one optimisation of
``notiflow.local.engine`` to the ones above it; the last is the engine as it ships.

    .venv/bin/python bench/engine_modes.py --executions 200 --concurrency 8 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import statistics
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Final, TextIO

from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local import engine
from notiflow.local.engine import scheduler, speed
from notiflow.local.stack import EmbeddedStack, StackSettings

STEPS: Final = (
    ("stock", None),
    ("+program cache", "cache_programs"),
    ("+jsonpath cache", "cache_jsonpath"),
    ("+in-process clients", "inprocess_clients"),
    ("+direct lambda tasks", "direct_lambda_tasks"),
    ("+shared snapshots", "share_snapshots"),
    ("+fast copies", "fast_copies"),
    ("+fast server", "fast_server"),
    ("+worker pool", "worker_pool"),
)
"""Cumulative: each mode keeps the optimisations of the modes above it."""
SWITCHES: Final = tuple(switch for _, switch in STEPS if switch)
MODES: Final = {
    mode: {switch: switch in SWITCHES[:index] for switch in SWITCHES} for index, (mode, _) in enumerate(STEPS)
}


def apply_mode(mode: str) -> None:
    """Turn the engine's optimisations on or off as ``mode`` says."""
    for switch, enabled in MODES[mode].items():
        if switch == "worker_pool":
            scheduler.options.enabled = enabled
        else:
            setattr(speed.options, switch, enabled)


@dataclass(frozen=True)
class Measurement:
    """One mode's result."""

    mode: str
    executions: int
    concurrency: int
    seconds: float
    per_second: float
    median_latency_ms: float
    succeeded: int


def _execution_input(notification_id: str, url: str) -> str:
    notification = {"notificationId": notification_id, "target": {"url": url}, "payload": {"n": notification_id}}
    return json.dumps(
        {
            "notificationId": notification_id,
            "notification": notification,
            "rawBody": None,
            "parseError": None,
            "source": {"sqsMessageId": notification_id},
            "replay": False,
            "expiresAt": int(time.time()) + 86400,
        }
    )


def measure(stack: EmbeddedStack, url: str, mode: str, executions: int, concurrency: int) -> Measurement:
    """Run ``executions`` success runs with ``concurrency`` in flight under one mode."""
    apply_mode(mode)
    finished: queue.Queue[tuple[str, str]] = queue.Queue()
    started_at: dict[str, float] = {}
    latencies: list[float] = []
    remove = engine.add_execution_listener(lambda ex: finished.put((ex.exec_arn, str(ex.status))))
    sfn = stack.client("stepfunctions")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"

    def start(index: int) -> None:
        name = f"{prefix}-{index}"
        arn = sfn.start_execution(
            stateMachineArn=stack.state_machine_arn, name=name, input=_execution_input(name, url)
        )["executionArn"]
        started_at.setdefault(arn, time.perf_counter())

    try:
        begin = time.perf_counter()
        launched = 0
        for _ in range(min(concurrency, executions)):
            start(launched)
            launched += 1
        succeeded = 0
        for _ in range(executions):
            arn, status = finished.get(timeout=120)
            latencies.append(time.perf_counter() - started_at.get(arn, begin))
            succeeded += status == "SUCCEEDED"
            if launched < executions:
                start(launched)
                launched += 1
        seconds = time.perf_counter() - begin
    finally:
        remove()
        apply_mode(STEPS[-1][0])
    return Measurement(
        mode=mode,
        executions=executions,
        concurrency=concurrency,
        seconds=round(seconds, 2),
        per_second=round(executions / seconds, 1),
        median_latency_ms=round(statistics.median(latencies) * 1000, 1),
        succeeded=succeeded,
    )


def run_benchmark(
    executions: int = 200,
    concurrency: int = 8,
    modes: Iterable[str] = tuple(MODES),
    rounds: int = 1,
    warmup: int = 10,
    out: TextIO | None = None,
) -> list[Measurement]:
    """Measure every mode on one stack (same handlers, same receiver), ``rounds`` times in turn.

    Prints each measurement, then the median per mode and its speed-up over the first mode.
    """
    out = out or sys.stdout
    modes = list(modes)
    results: list[Measurement] = []
    settings = StackSettings(start_poller=False, time_scale=0.0001, max_wait_seconds=0.02, log_level="ERROR")
    # The in-process Lambdas print EMF metric lines to stdout, as on AWS; keep them out of the figures.
    with (
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
        EmbeddedStack(settings) as stack,
        WebhookReceiver(secret=stack.signing_secret) as receiver,
    ):
        receiver.script("/bench", Step(200))
        url = receiver.url("/bench")
        for round_no in range(1, rounds + 1):
            for mode in modes:
                measure(stack, url, mode, warmup, concurrency)
                result = measure(stack, url, mode, executions, concurrency)
                results.append(result)
                print(
                    f"round {round_no} {mode:>22}: {result.per_second:6.1f} executions/s "
                    f"({result.executions} in {result.seconds} s, {concurrency} in flight, "
                    f"median {result.median_latency_ms} ms, {result.succeeded} succeeded)",
                    file=out,
                    flush=True,
                )
    medians = {mode: statistics.median(r.per_second for r in results if r.mode == mode) for mode in modes}
    for mode, per_second in medians.items():
        print(f"{mode:>22}: {per_second:6.1f} executions/s  x{per_second / medians[modes[0]]:.2f}", file=out)
    return results


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="measure every mode this many times (median)")
    parser.add_argument("--mode", action="append", choices=list(MODES), help="repeatable; default: all")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON too")
    args = parser.parse_args(argv)
    results = run_benchmark(args.executions, args.concurrency, args.mode or tuple(MODES), args.rounds)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
