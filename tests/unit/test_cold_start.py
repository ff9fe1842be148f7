"""Cold start: what importing a handler loads, in a fresh interpreter set up as on Lambda."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ["ingest", "validate", "deduplicate", "deliver", "failure_gate"]
NO_AWS_STEPS = ["validate", "failure_gate"]

PROBE = """
import json, sys
import lambdas.{step}.handler as handler
after_import = sorted(sys.modules)
outcome = None
if {invoke}:
    from tests.support import FakeLambdaContext, load_event
    try:
        outcome = sorted(handler.lambda_handler({event}, FakeLambdaContext()))
    except Exception as exc:
        outcome = type(exc).__name__
print(json.dumps({{"import": after_import, "invoke": sorted(sys.modules), "outcome": outcome}}))
"""

EVENTS = {
    "validate": '{"input": {"notificationId": "n-1", "notification": load_event("notification_valid.json")'
    ' | {"notificationId": "n-1"}, "expiresAt": 1}, "executionId": "arn:exec:1"}',
    "failure_gate": '{"notificationId": "n-1", "executionId": "arn:exec:1", "redriveCount": 1,'
    ' "failedAtRedriveCount": 0, "error": {"Error": "DeliveryRetryableError", "Cause": "{}"}}',
}


EXPECTED_KEYS = {
    "validate": [
        "expiresAt",
        "fastPathExecutionArn",
        "notification",
        "notificationId",
        "replay",
        "retryAfter",
        "source",
    ],
    "failure_gate": ["redriveCount", "reopen"],
}


def loaded(step: str, *, invoke: bool = False, tracing: bool = True) -> dict[str, Any]:
    """Modules loaded by importing (and optionally invoking once) a handler in a fresh process."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("POWERTOOLS_", "AWS_", "NOTIFLOW_"))}
    env.update({"LAMBDA_TASK_ROOT": str(ROOT), "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(ROOT)})
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    code = PROBE.format(step=step, invoke=invoke, event=EVENTS.get(step, "{}"))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


ERROR_CLASSES = ("botocore.exceptions", "botocore.vendored")
"""What a step that calls AWS imports up front from botocore: the error classes it catches (no client code)."""


def aws_sdk_modules(modules: list[str], *, allowed: tuple[str, ...] = ()) -> list[str]:
    """boto3, botocore submodules and the X-Ray SDK among ``modules``, except those ``allowed``.

    The bare ``botocore`` package is not counted: Powertools imports it (one small module, no
    client code) to register its user-agent hook whenever botocore is installed, as on Lambda.
    """
    sdk = ("boto3", "botocore.", "aws_xray_sdk", "s3transfer")
    return [name for name in modules if name.startswith(sdk) and not name.startswith(allowed or ("\0",))]


@pytest.mark.parametrize("step", HANDLERS)
def test_importing_a_handler_loads_no_aws_client_code_and_no_xray(step: str) -> None:
    # Given a fresh process as on Lambda (LAMBDA_TASK_ROOT set, so Powertools would trace)
    # When the handler module is imported Then neither boto3/botocore clients nor the X-Ray SDK are loaded:
    # AWS clients and the tracer are built on first use
    allowed = () if step in NO_AWS_STEPS else ERROR_CLASSES
    assert aws_sdk_modules(loaded(step)["import"], allowed=allowed) == []


@pytest.mark.parametrize("step", NO_AWS_STEPS)
def test_a_step_that_never_calls_aws_never_loads_the_sdk(step: str) -> None:
    # Given tracing off (as outside Lambda and in the local engine) When the step runs once
    modules = loaded(step, invoke=True, tracing=False)

    # Then it did its work and no AWS SDK code was loaded, not even on the call
    assert modules["outcome"] == EXPECTED_KEYS[step]
    assert aws_sdk_modules(modules["invoke"]) == []
