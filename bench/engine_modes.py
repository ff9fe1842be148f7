"""Executions per second of the success workflow on the embedded engine, stock versus optimised.

Each run starts the real state machine through the Step Functions API (as ingest does) against a
real receiver on 127.0.0.1, keeping ``concurrency`` runs in flight, and counts finished runs via
an in-process listener (no polling load). "stock" is moto as it comes plus only what is needed
to run at all (in-process handlers); the other modes add the adapter's optimisations one by one.

    .venv/bin/python bench/engine_modes.py --executions 200 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Final, TextIO

from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local import moto_adapter
from notiflow.local.stack import EmbeddedStack, StackSettings

MODES: Final = {
    "stock": {"cache_clients": False, "cache_programs": False, "direct_lambda_calls": False, "fast_server": False},
    "+client cache": {
        "cache_clients": True,
        "cache_programs": False,
        "direct_lambda_calls": False,
        "fast_server": False,
    },
    "+program cache": {
        "cache_clients": True,
        "cache_programs": True,
        "direct_lambda_calls": False,
        "fast_server": False,
    },
    "+direct lambda": {
        "cache_clients": True,
        "cache_programs": True,
        "direct_lambda_calls": True,
        "fast_server": False,
    },
    "optimised": {"cache_clients": True, "cache_programs": True, "direct_lambda_calls": True, "fast_server": True},
}


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
    for name, value in MODES[mode].items():
        setattr(moto_adapter.options, name, value)
    finished: queue.Queue[tuple[str, str]] = queue.Queue()
    started_at: dict[str, float] = {}
    latencies: list[float] = []
    remove = moto_adapter.add_execution_listener(lambda ex: finished.put((ex.exec_arn, str(ex.status))))
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
        for name, value in MODES["optimised"].items():
            setattr(moto_adapter.options, name, value)
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
    warmup: int = 10,
    out: TextIO | None = None,
) -> list[Measurement]:
    """Measure every mode on one stack (same handlers, same receiver); prints one line per mode."""
    out = out or sys.stdout
    results: list[Measurement] = []
    settings = StackSettings(start_poller=False, time_scale=0.0001, max_wait_seconds=0.02)
    with EmbeddedStack(settings) as stack, WebhookReceiver(secret=stack.signing_secret) as receiver:
        receiver.script("/bench", Step(200))
        url = receiver.url("/bench")
        for mode in modes:
            measure(stack, url, mode, warmup, concurrency)
            result = measure(stack, url, mode, executions, concurrency)
            results.append(result)
            print(
                f"{mode:>15}: {result.per_second:6.1f} executions/s "
                f"({result.executions} in {result.seconds} s, {concurrency} in flight, "
                f"median {result.median_latency_ms} ms, {result.succeeded} succeeded)",
                file=out,
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mode", action="append", choices=list(MODES), help="repeatable; default: all")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON too")
    args = parser.parse_args(argv)
    results = run_benchmark(args.executions, args.concurrency, args.mode or tuple(MODES))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
