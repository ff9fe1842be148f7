"""``--faults`` of ``notiflow local up``: the option is checked, and another process reads the fault report."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from notiflow.cli import build_parser
from notiflow.shared.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def test_local_up_takes_a_fault_spec_and_seed():
    args = build_parser().parse_args(
        ["local", "up", "--faults", "lambda-throttle=0.05,ddb-throttle=0.1", "--fault-seed", "7"]
    )

    assert (args.faults, args.fault_seed) == ("lambda-throttle=0.05,ddb-throttle=0.1", 7)


def test_local_up_refuses_a_bad_fault_spec(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["local", "up", "--faults", "lambda-explode=0.1"])

    assert "unknown fault kind 'lambda-explode'" in capsys.readouterr().err


def test_a_separate_process_reads_the_faults_local_up_injected(tmp_path):
    # Given the local server in its own process, every Lambda invocation throttled, a report file
    report = tmp_path / "faults.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notiflow.local.server",
            "--port",
            "0",
            "--lambda-logs",
            str(tmp_path / "lambdas.log"),
            "--faults",
            "lambda-throttle=1",
            "--fault-seed",
            "5",
            "--fault-report",
            str(report),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = ""
        deadline = time.monotonic() + 60
        while "  faults " not in banner and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            banner += line
        endpoint = re.search(r"on (http://127\.0\.0\.1:\d+) ", banner)
        assert endpoint is not None, banner
        assert f"lambda-throttle=1 (seed 5; report {report})" in banner
        lambdas = boto3.session.Session().client(
            "lambda",
            endpoint_url=endpoint.group(1),
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"total_max_attempts": 1}),
        )

        # When an outside client invokes a function
        with pytest.raises(ClientError) as refused:
            lambdas.invoke(FunctionName="notiflow-validate", Payload=b"{}")

        # Then it was throttled, and the report file says so
        assert refused.value.response["Error"]["Code"] == "TooManyRequestsException"

        def read() -> dict | None:
            return json.loads(report.read_text()) if report.exists() else None

        written = wait_until(read, lambda r: r is not None and r["counts"]["lambda-throttle"] >= 1, timeout=10)
        assert written["seed"] == 5
        assert written["hits"][0]["function"] == "notiflow-validate"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
