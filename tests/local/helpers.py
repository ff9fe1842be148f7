"""Builders for engine tests: probe functions and throwaway state machines on the running stack."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

from notiflow.local.stack import LAMBDA_ROLE_NAME, STATE_MACHINE_ROLE_NAME, EmbeddedStack
from tests.local import fake_handlers


def handler(name: str) -> str:
    """Handler string of a fake handler, under whatever module name pytest imported it as."""
    return f"{fake_handlers.__name__}.{name}"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fake_handlers.py", "# the handlers run in-process from tests/local\n")
    return buffer.getvalue()


def create_function(
    stack: EmbeddedStack,
    handler_name: str,
    *,
    environment: dict[str, str] | None = None,
    timeout: int = 10,
    name: str | None = None,
) -> str:
    """A Lambda function running a fake handler; returns its ARN."""
    response = stack.client("lambda").create_function(
        FunctionName=name or f"probe-{handler_name.replace('_', '-')}-{uuid.uuid4().hex[:8]}",
        Runtime="python3.12",
        Role=f"arn:aws:iam::{stack.account_id}:role/{LAMBDA_ROLE_NAME}",
        Handler=handler(handler_name),
        Code={"ZipFile": _zip()},
        Timeout=timeout,
        Environment={"Variables": environment or {}},
    )
    return str(response["FunctionArn"])


def create_state_machine(stack: EmbeddedStack, definition: dict[str, Any], name: str | None = None) -> str:
    """A Standard state machine from a definition dict; returns its ARN."""
    response = stack.client("stepfunctions").create_state_machine(
        name=name or f"probe-{uuid.uuid4().hex[:12]}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{stack.account_id}:role/{STATE_MACHINE_ROLE_NAME}",
    )
    return str(response["stateMachineArn"])


def start(stack: EmbeddedStack, state_machine_arn: str, execution_input: Any = None, name: str | None = None) -> str:
    """StartExecution with a unique name; returns the execution ARN."""
    response = stack.client("stepfunctions").start_execution(
        stateMachineArn=state_machine_arn,
        name=name or uuid.uuid4().hex,
        input=json.dumps({} if execution_input is None else execution_input),
    )
    return str(response["executionArn"])
