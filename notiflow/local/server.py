"""``notiflow local up``: keep the embedded stack running on a fixed 127.0.0.1 port until Ctrl-C.

Any AWS client can then drive it: the AWS CLI with ``--endpoint-url``, boto3, the Notiflow CLI.
The port defaults to 4599 (not 4566, so it never collides with a LocalStack container). Its stdout
carries its own messages only: the Lambdas' logs and metrics go to a file unless asked for.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final, TextIO

from infrastructure.spec import TargetPolicy
from notiflow.local.fault_options import add_fault_arguments
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.shared.lambda_logs import LOCAL_UP_LOG, destination, lambda_output_to

DEFAULT_PORT: Final = 4599
DEFAULT_TIME_SCALE: Final = 1.0


def usage_text(stack: EmbeddedStack, lambda_logs: Path | None = None) -> str:
    """The banner: endpoint, resources and copy-paste ``aws`` commands for this stack."""
    aws = f"aws --endpoint-url {stack.endpoint_url} --region {stack.region}"
    example = {
        "notificationId": "hello-1",
        "target": {"url": "http://127.0.0.1:8080/hook"},
        "payload": {"hello": "world"},
        "eventType": "demo.hello",
    }
    execution = stack.execution_arn("hello-1")
    scale, cap = stack.settings.time_scale, stack.settings.max_wait_seconds
    lines = [
        f"Notiflow embedded stack on {stack.endpoint_url} (time scale {scale:g}"
        + (f", waits capped at {cap:g} s" if cap is not None else "")
        + "); Ctrl-C stops it.",
        f"  state machine   {stack.state_machine_arn}",
        f"  table           {stack.table_name}",
        f"  intake queue    {stack.queue_url}",
        f"  dead letters    {stack.dlq_url}",
        f"  signing secret  {stack.signing_secret}  ({stack.signing_secret_name} in Secrets Manager)",
        f"  target policy   {TargetPolicy(stack.settings.target_policy).describe()}",
        "  lambda logs     "
        + (f"{lambda_logs} (--lambda-logs stdout shows them here)" if lambda_logs else "on this terminal"),
    ]
    if stack.settings.faults:
        report = stack.settings.fault_report or "in memory only"
        lines.append(f"  faults          {stack.settings.faults} (seed {stack.settings.fault_seed}; report {report})")
    lines += [
        "",
        "Credentials are not checked: export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local",
        "Receive webhooks: notiflow receiver --port 8080 --secret " + stack.signing_secret,
        "Then:",
        f"  {aws} sqs send-message --queue-url {stack.queue_url} --message-body {shlex.quote(json.dumps(example))}",
        f"  {aws} stepfunctions list-executions --state-machine-arn {stack.state_machine_arn}",
        f"  {aws} stepfunctions get-execution-history --execution-arn {execution}",
        f"  {aws} dynamodb get-item --table-name {stack.table_name} --key "
        + shlex.quote('{"notificationId": {"S": "hello-1"}}'),
        f"  {aws} stepfunctions redrive-execution --execution-arn {execution}",
        f"  {aws} sqs receive-message --queue-url {stack.dlq_url}",
    ]
    return "\n".join(lines)


def serve(
    port: int = DEFAULT_PORT,
    time_scale: float = DEFAULT_TIME_SCALE,
    *,
    max_wait_seconds: float | None = None,
    out: TextIO | None = None,
    stop_event: threading.Event | None = None,
    on_ready: Callable[[EmbeddedStack], None] | None = None,
    settings: StackSettings | None = None,
    lambda_logs: Path | None = LOCAL_UP_LOG,
) -> None:
    """Run the stack with its SQS poller on ``127.0.0.1:port`` until Ctrl-C, SIGTERM or ``stop_event``.

    ``port=0`` picks a free port (printed in the banner). The Lambdas' log lines and metrics go to
    ``lambda_logs``, or stay on stdout when it is None.
    """
    out = out or sys.stdout
    stop = stop_event or threading.Event()
    base = settings or StackSettings()
    stack = EmbeddedStack(base, port=port, time_scale=time_scale, max_wait_seconds=max_wait_seconds, start_poller=True)
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with contextlib.ExitStack() as cleanup:
            if lambda_logs is not None:
                cleanup.enter_context(lambda_output_to(lambda_logs))
            cleanup.enter_context(stack)
            print(usage_text(stack, lambda_logs), file=out, flush=True)
            if on_ready is not None:
                on_ready(stack)
            with contextlib.suppress(KeyboardInterrupt):
                while not stop.wait(0.5):
                    pass
            print("Stopping the embedded stack.", file=out, flush=True)
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def main(argv: list[str] | None = None) -> None:
    """``python -m notiflow.local.server [--port N] [--time-scale F] [--max-wait S] [--faults SPEC ...]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE)
    parser.add_argument("--max-wait", type=float, default=None, help="cap on real seconds per ASL wait")
    parser.add_argument("--lambda-logs", type=destination, default=LOCAL_UP_LOG)
    add_fault_arguments(parser)
    args = parser.parse_args(argv)
    settings = StackSettings(
        faults=args.faults, fault_seed=args.fault_seed, fault_report=str(args.fault_report) if args.faults else None
    )
    serve(
        port=args.port,
        time_scale=args.time_scale,
        max_wait_seconds=args.max_wait,
        lambda_logs=args.lambda_logs,
        settings=settings,
    )


if __name__ == "__main__":
    main()
