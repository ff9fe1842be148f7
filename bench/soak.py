"""Soak of ``notiflow local up``: memory and throughput of the embedded stack over thousands of runs.

Starts ``notiflow local up`` exactly as a developer does (a separate process: the embedded stack,
its SQS poller and the console), points every notification at a receiver in this process, and keeps
a bounded backlog on the intake queue (``--backlog`` messages sent but not yet delivered), so the
load stays the same while the execution history grows. Every ``--sample-every`` deliveries it reads
the server's resident set size and thread count from ``/proc/<pid>/status`` and the delivery rate of
that window.

The figures to quote: the RSS slope in KB per run over the second half of the soak (after the
retention window has filled, a bounded engine shows ~0), the RSS at the end (the plateau), the
thread counts, and the delivery rate of the last windows against the first ones (history must not
slow the engine down). ``--console-poll`` additionally loads the console's run list every N seconds,
as an open browser tab does.

    .venv/bin/python bench/soak.py --count 5000
    .venv/bin/python bench/soak.py --count 5000 --console-poll 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from notiflow.demo.receiver import Step, WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]
_ENDPOINT = re.compile(r"embedded stack on (http://127\.0\.0\.1:\d+)")
_SECRET = re.compile(r"signing secret\s+(whsec_\S+)")
_QUEUE = re.compile(r"intake queue\s+(\S+)")
_CONSOLE = re.compile(r"Console: (http://\S+)")
_BANNER = {"endpoint": _ENDPOINT, "secret": _SECRET, "queue": _QUEUE, "console": _CONSOLE}


@dataclass(frozen=True)
class Sample:
    """One reading of the server process."""

    delivered: int
    seconds: float
    rss_kb: int
    threads: int
    window_per_second: float


def read_status(pid: int) -> tuple[int, int]:
    """(VmRSS in KB, thread count) of a process, from /proc."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


def slope_kb_per_run(samples: list[Sample]) -> float:
    """Least-squares slope of RSS against runs delivered."""
    if len(samples) < 2:
        return 0.0
    xs = [float(s.delivered) for s in samples]
    ys = [float(s.rss_kb) for s in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator if denominator else 0.0


class LocalUp:
    """``notiflow local up`` in a child process; parses the banner for the endpoint, queue and secret."""

    def __init__(self, time_scale: float) -> None:
        command = [sys.executable, "-m", "notiflow.cli", "local", "up", "--port", "0", "--console-port", "0"]
        command += ["--time-scale", str(time_scale)]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "POWERTOOLS_LOG_LEVEL": "ERROR"}
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
        )
        self.banner: dict[str, str] = {}
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            for key, pattern in (
                ("endpoint", _ENDPOINT),
                ("secret", _SECRET),
                ("queue", _QUEUE),
                ("console", _CONSOLE),
            ):
                match = pattern.search(line)
                if match and key not in self.banner:
                    self.banner[key] = match.group(1)
            if set(_BANNER) <= set(self.banner):
                self._ready.set()

    def wait_ready(self, timeout: float) -> dict[str, str]:
        if not self._ready.wait(timeout):
            raise TimeoutError(f"notiflow local up did not print its banner within {timeout:g} s: {self.banner}")
        return self.banner

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def console_poller(url: str, every: float, stop: threading.Event, calls: list[float]) -> None:
    """GET the console's run list every ``every`` seconds, as the open page does; records call durations."""
    while not stop.wait(every):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{url}api/executions", timeout=120) as response:  # noqa: S310 - loopback
                response.read()
            calls.append(time.perf_counter() - started)
        except OSError as exc:
            print(f"console call failed: {exc}", file=sys.stderr)


def run(args: argparse.Namespace) -> list[Sample]:
    server = LocalUp(args.time_scale)
    stop_console = threading.Event()
    console_calls: list[float] = []
    try:
        banner = server.wait_ready(120)
        sqs = boto3.client(
            "sqs",
            endpoint_url=banner["endpoint"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - dummy credentials of the local endpoint
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        pid = server.process.pid
        samples: list[Sample] = []
        with WebhookReceiver(secret=banner["secret"]) as receiver:
            receiver.script("/soak", Step(200))
            url = receiver.url("/soak")
            if args.console_poll:
                threading.Thread(
                    target=console_poller,
                    args=(banner["console"], args.console_poll, stop_console, console_calls),
                    daemon=True,
                ).start()
            rss, threads = read_status(pid)
            print(f"started: RSS {rss / 1024:.1f} MB, {threads} threads (pid {pid})", flush=True)
            began = time.perf_counter()
            window_start, window_delivered = began, 0
            sent = 0
            next_sample = args.sample_every
            while sent < args.count or len(receiver.requests_for("/soak")) < args.count:
                delivered = len(receiver.requests_for("/soak"))
                if sent < args.count and sent - delivered < args.backlog:
                    batch = [
                        {
                            "Id": str(n),
                            "MessageBody": json.dumps(
                                {
                                    "notificationId": f"soak-{sent + n:06d}",
                                    "target": {"url": url},
                                    "payload": {"n": sent + n, "text": "x" * 200},
                                    "eventType": "soak.tick",
                                }
                            ),
                        }
                        for n in range(min(10, args.count - sent))
                    ]
                    sqs.send_message_batch(QueueUrl=banner["queue"], Entries=batch)
                    sent += len(batch)
                    continue
                receiver.wait_for("/soak", min(delivered + 10, args.count), timeout=args.stall_timeout)
                delivered = len(receiver.requests_for("/soak"))
                if delivered >= next_sample:
                    now = time.perf_counter()
                    rss, threads = read_status(pid)
                    rate = (delivered - window_delivered) / (now - window_start)
                    samples.append(Sample(delivered, round(now - began, 1), rss, threads, round(rate, 1)))
                    print(
                        f"{delivered:6d} delivered  {now - began:7.1f} s  RSS {rss / 1024:7.1f} MB  "
                        f"{threads:3d} threads  {rate:6.1f}/s",
                        flush=True,
                    )
                    window_start, window_delivered = now, delivered
                    next_sample += args.sample_every
        return report(samples, console_calls)
    finally:
        stop_console.set()
        server.stop()


def report(samples: list[Sample], console_calls: list[float]) -> list[Sample]:
    half = samples[len(samples) // 2 :]
    first = samples[: max(1, len(samples) // 3)]
    last = samples[-max(1, len(samples) // 3) :]
    print(
        f"RSS slope: {slope_kb_per_run(samples):.1f} KB/run over the whole soak, "
        f"{slope_kb_per_run(half):.1f} KB/run over the second half; "
        f"RSS at the end {samples[-1].rss_kb / 1024:.1f} MB (max {max(s.rss_kb for s in samples) / 1024:.1f} MB)"
    )
    print(f"threads: min {min(s.threads for s in samples)}, max {max(s.threads for s in samples)}")
    print(
        f"delivery rate: first third median {statistics.median(s.window_per_second for s in first):.1f}/s, "
        f"last third median {statistics.median(s.window_per_second for s in last):.1f}/s"
    )
    if console_calls:
        print(f"console list calls: {len(console_calls)}, median {statistics.median(console_calls):.2f} s")
    return samples


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=5000, help="notifications to send")
    parser.add_argument("--backlog", type=int, default=100, help="messages sent but not yet delivered, at most")
    parser.add_argument("--sample-every", type=int, default=250, help="deliveries between two readings")
    parser.add_argument("--time-scale", type=float, default=0.0001)
    parser.add_argument("--console-poll", type=float, default=0.0, help="seconds between console list loads (0: off)")
    parser.add_argument("--stall-timeout", type=float, default=300.0, help="give up when nothing is delivered")
    parser.add_argument("--json", type=Path, help="also write the samples to this file")
    args = parser.parse_args(argv)
    samples = run(args)
    if args.json:
        args.json.write_text(json.dumps([s.__dict__ for s in samples], indent=2))


if __name__ == "__main__":
    main()
