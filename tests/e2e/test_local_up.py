"""`notiflow local up` and `notiflow receiver` as a user runs them: real processes, real traffic on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from lambdas.shared.constants import RecordStatus
from notiflow.demo.receiver import WebhookReceiver
from notiflow.shared.lambda_logs import LOCAL_UP_LOG
from notiflow.shared.waiting import wait_until

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90.0


@dataclass
class Process:
    """A child process whose stdout lines are collected by a thread, so waiting never blocks on a read."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout: float = STARTUP_SECONDS) -> re.Match[str]:
        return wait_until(
            lambda: next((m for line in list(self.lines) if (m := re.search(pattern, line))), None),
            timeout=timeout,
            describe=lambda _: f"a stdout line matching {pattern!r}; got {self.lines[-5:]}",
        )

    def stop(self) -> str:
        """SIGTERM (what Ctrl-C or a supervisor sends), then the rest of stdout."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        self.popen.wait(timeout=60)
        return "\n".join(self.lines)


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}

    def run(*args: str) -> Process:
        popen = subprocess.Popen(
            [sys.executable, "-m", "notiflow.cli", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        process = Process(popen)
        started.append(process)
        return process

    yield run
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(timeout=30)


def json_lines(text: str) -> list[str]:
    """Lines that are JSON objects (a log record or an EMF metric record starts with '{')."""
    return [line for line in text.splitlines() if line.lstrip().startswith("{")]


def test_local_up_prints_only_its_own_messages_and_files_the_lambda_output(run_cli, tmp_path):
    # Given `notiflow local up` running in its own process and a receiver on 127.0.0.1
    process = run_cli("local", "up", "--port", "0", "--console-port", "0", "--time-scale", "0.001")
    endpoint = process.wait_for_line(r"embedded stack on (http://127\.0\.0\.1:\d+)").group(1)
    secret = process.wait_for_line(r"signing secret\s+(whsec_\S+)").group(1)
    queue_url = process.wait_for_line(r"intake queue\s+(\S+)").group(1)
    process.wait_for_line(r"^Console: http://127\.0\.0\.1:\d+/")
    sqs = boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    with WebhookReceiver(secret=secret) as receiver:
        # When a notification goes through the queue to the receiver
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(
                {"notificationId": "quiet-1", "target": {"url": receiver.url("/hook")}, "payload": {"n": 1}}
            ),
        )
        received = receiver.wait_for("/hook", count=1, timeout=60)
        # And a message that is no notification at all, which the Lambdas log as they reject it
        sqs.send_message(QueueUrl=queue_url, MessageBody="not json")
        wait_until(
            lambda: (tmp_path / LOCAL_UP_LOG).read_text(encoding="utf-8"),
            lambda text: '"level"' in text,
            timeout=60,
            describe="a Lambda log line in the log file",
        )
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        wait_until(
            lambda: dynamodb.get_item(TableName="notiflow-notifications", Key={"notificationId": {"S": "quiet-1"}}),
            lambda got: got.get("Item", {}).get("status", {}).get("S") == RecordStatus.SUCCESS,
            timeout=60,
            describe="the record of quiet-1 to say SUCCESS",
        )
    stdout = process.stop()
    # Then it was delivered and signed, stdout holds the banner and no log or metric record
    assert received[0].signature_valid is True
    assert "Stopping the embedded stack." in stdout
    assert json_lines(stdout) == []
    # And the Lambdas' log lines and metrics are in the file, one whole JSON record per line
    log_lines = (tmp_path / LOCAL_UP_LOG).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in log_lines]
    assert any("_aws" in record for record in records), "no EMF metric record"
    assert any("level" in record and "_aws" not in record for record in records), "no log line"


def test_local_up_can_show_the_lambda_output_when_asked(run_cli, tmp_path):
    # Given `notiflow local up --lambda-logs stdout`
    process = run_cli("local", "up", "--port", "0", "--console-port", "0", "--lambda-logs", "stdout")
    endpoint = process.wait_for_line(r"embedded stack on (http://127\.0\.0\.1:\d+)").group(1)
    queue_url = process.wait_for_line(r"intake queue\s+(\S+)").group(1)
    process.wait_for_line(r"lambda logs\s+on this terminal")
    sqs = boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    # When a message that is not a notification is sent
    sqs.send_message(QueueUrl=queue_url, MessageBody="not json")
    # Then the Lambdas' JSON records appear on stdout and no log file is written
    process.wait_for_line(r'^\{.*"_aws"', timeout=60)
    process.stop()
    assert not (tmp_path / LOCAL_UP_LOG).exists()


def test_the_receiver_command_serves_scripted_answers(run_cli):
    # Given `notiflow receiver` with a script for one path
    process = run_cli("receiver", "--port", "0", "--script", "/hook=503,201")
    base_url = process.wait_for_line(r"listening on (http://127\.0\.0\.1:\d+)").group(1)

    def post() -> int:
        request = urllib.request.Request(f"{base_url}/hook", data=b"{}", method="POST")  # noqa: S310 - 127.0.0.1
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own server on 127.0.0.1
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    # When it is called twice
    # Then it plays the script and logs each request on stdout
    assert [post(), post()] == [503, 201]
    process.wait_for_line(r"POST /hook.*201")
    process.stop()
