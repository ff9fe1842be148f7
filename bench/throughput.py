"""End-to-end throughput of the embedded stack against the plain handler loop.

Both sides do the same work for every notification, against the same embedded stack and the same
local receiver (200 at once, signatures checked):

- the handler loop: for each notification, in one thread, the ingest step's own work (the record
  turned into the execution input, ``build_start_request``), then the real ``validate``,
  ``deduplicate`` (its conditional claim write) and ``deliver`` handlers (the attempt-log read, the
  signing secret, one signed HTTP POST, the attempt-log write), called with the same events the
  state machine builds and a Lambda context, and finally the ``RecordSuccess`` write (the same
  UpdateItem with the same condition and values) through the same in-process DynamoDB client the
  engine's service integration uses. The handlers' own AWS calls go over HTTP to the stack, as
  they do inside the engine.
- end to end: the notifications are sent to the intake queue in batches of 10; the stack's SQS
  poller hands them to the real ingest handler, which starts one execution each (in ``fast-path``
  mode, the default, a synchronous Express run; ``--delivery-mode standard``, a Standard run); the
  interpreter runs the repository's definition, with the same handlers, to ``Delivered``. The clock
  stops when every run has SUCCEEDED (an in-process listener, no polling of the API).

So the baseline leaves out exactly what the engine adds: the SQS transport, StartExecution and the
interpreter. Both sides are warmed up first (imports, first invocations, parsed definition); each
round runs both, alternating which goes first; the figure to quote is the median of the per-round
ratios end to end / handler loop (timings on a shared 2-core machine are noisy).

    .venv/bin/python bench/throughput.py --count 500 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

from lambdas.deduplicate.handler import lambda_handler as deduplicate
from lambdas.deliver.handler import lambda_handler as deliver
from lambdas.ingest.starter import build_start_request
from lambdas.shared.clock import utc_iso
from lambdas.shared.constants import STEP_DEDUPLICATE, STEP_DELIVER, STEP_VALIDATE, DeliveryMode
from lambdas.validate.handler import lambda_handler as validate
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local import engine
from notiflow.local.engine.runtime import LambdaContext
from notiflow.local.stack import EmbeddedStack, StackSettings
from workflows.definition import load_definition, retry_after_ceiling_seconds

RECORD_SUCCESS = load_definition()["States"]["RecordSuccess"]["Parameters"]
"""The definition's RecordSuccess write, read from the file so the loop writes exactly what the workflow writes."""


def notifications(receiver: WebhookReceiver, prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "notificationId": f"{prefix}-{i:05d}",
            "target": {"url": receiver.url("/bench")},
            "payload": {"orderId": i, "status": "shipped"},
            "eventType": "order.shipped",
        }
        for i in range(count)
    ]


def end_to_end(stack: EmbeddedStack, batch: list[dict[str, Any]], timeout: float) -> float:
    """Seconds from the first SQS send until every run has SUCCEEDED."""
    names = {item["notificationId"] for item in batch}
    done = threading.Semaphore(0)
    failed: list[str] = []

    def on_end(execution: Any) -> None:
        if execution.name in names:
            if execution.status != "SUCCEEDED":
                failed.append(f"{execution.name} {execution.status} {execution.error}: {str(execution.cause)[:300]}")
            done.release()

    remove = engine.add_execution_listener(on_end)
    try:
        sqs = stack.client("sqs")
        started = time.perf_counter()
        for offset in range(0, len(batch), 10):
            entries = [
                {"Id": str(n), "MessageBody": json.dumps(item)} for n, item in enumerate(batch[offset : offset + 10])
            ]
            sqs.send_message_batch(QueueUrl=stack.queue_url, Entries=entries)
        deadline = time.monotonic() + timeout
        for _ in names:
            if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"end-to-end batch not finished after {timeout:.0f} s")
        elapsed = time.perf_counter() - started
    finally:
        remove()
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed, e.g. {failed[0]}: a benchmark of successes is void")
    return elapsed


def _context(stack: EmbeddedStack, step: str) -> LambdaContext:
    name = stack.function_names[step]
    request_id = str(uuid.uuid4())
    return LambdaContext(
        function_name=name,
        function_version="$LATEST",
        invoked_function_arn=stack.function_arns[step],
        memory_limit_in_mb=256,
        aws_request_id=request_id,
        log_group_name=f"/aws/lambda/{name}",
        log_stream_name=request_id,
        deadline=time.monotonic() + 60,
    )


def handler_loop(stack: EmbeddedStack, batch: list[dict[str, Any]]) -> float:
    """Seconds to do the same steps by calling the handlers in a loop."""
    table = engine.speed.inprocess_client("dynamodb", stack.region)
    started = time.perf_counter()
    for item in batch:
        record = {"messageId": str(uuid.uuid4()), "body": json.dumps(item), "attributes": {}}
        execution_input = build_start_request(record, stack.queue_arn, ttl_days=90).input
        execution_id = stack.execution_arn(f"loop-{item['notificationId']}")
        state = validate({"input": execution_input, "executionId": execution_id}, _context(stack, STEP_VALIDATE))
        claim = deduplicate(
            {
                "notificationId": state["notificationId"],
                "executionId": execution_id,
                "replay": state["replay"],
                "expiresAt": state["expiresAt"],
                "notification": state["notification"],
            },
            _context(stack, STEP_DEDUPLICATE),
        )
        assert claim["claimed"], claim
        delivery = deliver(
            {
                "notification": state["notification"],
                "executionId": execution_id,
                "retryCount": 0,
                "retryAfterWaits": 0,
                "maxRetryAfterWaits": 5,
                "maxRetryAfterSeconds": retry_after_ceiling_seconds(),
            },
            _context(stack, STEP_DELIVER),
        )
        result = delivery["item"]
        table.update_item(
            TableName=stack.table_name,
            Key={"notificationId": {"S": item["notificationId"]}},
            UpdateExpression=RECORD_SUCCESS["UpdateExpression"],
            ConditionExpression=RECORD_SUCCESS["ConditionExpression"],
            ExpressionAttributeNames=RECORD_SUCCESS["ExpressionAttributeNames"],
            ExpressionAttributeValues={
                ":success": {"S": "SUCCESS"},
                ":processing": {"S": "PROCESSING"},
                ":exec": {"S": execution_id},
                # The deliver handler returns the record's values already typed, as the definition uses them.
                ":result": result["deliveryResult"],
                ":attempts": result["attempts"],
                ":lastAttempt": result["lastDeliveryAttempt"],
                ":deliveredAt": result["deliveredAt"],
                ":now": {"S": utc_iso()},
            },
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="successful deliveries per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--warmup", type=int, default=20, help="notifications per side before measuring")
    parser.add_argument(
        "--delivery-mode",
        choices=[mode.value for mode in DeliveryMode],
        default=None,
        help="the workflow ingest runs (default: the stack's, fast-path); the loop does a first-try success's work",
    )
    args = parser.parse_args()
    settings = StackSettings(time_scale=0.0001, log_level="ERROR", delivery_mode=args.delivery_mode)
    report = sys.stdout
    # The in-process Lambdas print EMF metric lines to stdout, as on AWS; keep them out of the figures.
    with (
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
        EmbeddedStack(settings) as stack,
        WebhookReceiver(secret=stack.signing_secret) as receiver,
    ):
        receiver.script("/bench", [Step(200)])
        # Warm both sides (imports, first invocations, parsed definition and paths) before measuring.
        end_to_end(stack, notifications(receiver, "warm-e2e", args.warmup), args.timeout)
        handler_loop(stack, notifications(receiver, "warm-loop", args.warmup))
        rows = []
        for round_no in range(1, args.rounds + 1):
            # Alternate which side goes first, so neither always runs on the bigger table or warmer caches.
            e2e_batch = notifications(receiver, f"e2e{round_no}", args.count)
            loop_batch = notifications(receiver, f"loop{round_no}", args.count)
            if round_no % 2:
                e2e = end_to_end(stack, e2e_batch, args.timeout)
                base = handler_loop(stack, loop_batch)
            else:
                base = handler_loop(stack, loop_batch)
                e2e = end_to_end(stack, e2e_batch, args.timeout)
            rows.append((args.count / e2e, args.count / base))
            print(
                f"round {round_no}: end to end {args.count / e2e:6.1f}/s   "
                f"handlers in a loop {args.count / base:6.1f}/s"
                f"   ratio {(args.count / e2e) / (args.count / base):.3f}",
                file=report,
                flush=True,
            )
    ratios = [e / b for e, b in rows]
    print(
        f"median over {args.rounds} rounds of {args.count}: end to end {statistics.median(r[0] for r in rows):.1f}/s, "
        f"handler loop {statistics.median(r[1] for r in rows):.1f}/s, ratio {statistics.median(ratios):.3f} "
        f"(end to end takes {1 / statistics.median(ratios):.2f}x the time of the loop)",
        file=report,
    )


if __name__ == "__main__":
    main()
