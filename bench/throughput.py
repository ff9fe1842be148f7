"""End-to-end throughput of the embedded stack against calling the handlers directly.

Both sides do the same work for each notification against the same embedded stack
and the same local receiver: validate, claim in DynamoDB, one signed HTTP POST with
its attempt-log write, and the final SUCCESS update. The end-to-end side goes through
SQS, the ingest poller and the Step Functions interpreter; the baseline calls the
handler functions in a plain loop. Rounds alternate the two, and the figure to quote
is the median of the per-round ratios (timings on a shared 2-core machine are noisy).

    .venv/bin/python bench/throughput.py --count 500 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
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
from lambdas.validate.handler import lambda_handler as validate
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.stack import EmbeddedStack, StackSettings
from tests.support import FakeLambdaContext
from workflows.definition import retry_after_ceiling_seconds


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
    sqs = stack.client("sqs")
    sfn = stack.client("stepfunctions")
    started = time.perf_counter()
    for offset in range(0, len(batch), 10):
        entries = [
            {"Id": str(n), "MessageBody": json.dumps(item)} for n, item in enumerate(batch[offset : offset + 10])
        ]
        sqs.send_message_batch(QueueUrl=stack.queue_url, Entries=entries)
    deadline = time.monotonic() + timeout
    names = {item["notificationId"] for item in batch}
    while time.monotonic() < deadline:
        failed = [
            e["name"]
            for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn, statusFilter="FAILED")["executions"]
            if e["name"] in names
        ]
        if failed:
            raise RuntimeError(f"{len(failed)} run(s) failed, e.g. {failed[0]}: a benchmark of successes is void")
        done = 0
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=stack.state_machine_arn, statusFilter="SUCCEEDED"
        ):
            done += sum(1 for e in page["executions"] if e["name"] in names)
        if done == len(names):
            return time.perf_counter() - started
        time.sleep(0.2)
    raise TimeoutError(f"end-to-end batch not finished after {timeout:.0f} s")


def direct(stack: EmbeddedStack, batch: list[dict[str, Any]]) -> float:
    """Seconds to do the same steps by calling the handlers in a loop."""
    table = stack.client("dynamodb")
    context = FakeLambdaContext()
    started = time.perf_counter()
    for item in batch:
        record = {"messageId": str(uuid.uuid4()), "body": json.dumps(item), "attributes": {}}
        execution_input = build_start_request(record, stack.queue_arn, ttl_days=90).input
        execution_id = f"direct:{item['notificationId']}"
        state = validate({"input": execution_input, "executionId": execution_id}, context)
        claim_event = {**state, "executionId": execution_id}
        claim = deduplicate(claim_event, context)
        assert claim["claimed"], claim
        deliver_event = {"notification": state["notification"], "executionId": execution_id, "retryCount": 0}
        result = deliver({**deliver_event, "maxRetryAfterSeconds": retry_after_ceiling_seconds()}, context)
        table.update_item(
            TableName=stack.table_name,
            Key={"notificationId": {"S": item["notificationId"]}},
            UpdateExpression="SET #s = :ok, deliveryResult = :r, attempts = :a",
            ConditionExpression="#s = :p AND executionArn = :e",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":ok": {"S": "SUCCESS"},
                ":p": {"S": "PROCESSING"},
                ":e": {"S": execution_id},
                ":r": result["item"]["deliveryResult"],
                ":a": result["item"]["attempts"],
            },
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="successful deliveries per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    settings = StackSettings(time_scale=0.0001, log_level="ERROR")
    report = sys.stdout
    # The in-process Lambdas print EMF metric lines to stdout, as on AWS; keep them out of the figures.
    with (
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
        EmbeddedStack(settings) as stack,
        WebhookReceiver(secret=stack.signing_secret) as receiver,
    ):
        receiver.script("/bench", [Step(200)])
        rows = []
        for round_no in range(1, args.rounds + 1):
            e2e = end_to_end(stack, notifications(receiver, f"e2e{round_no}", args.count), args.timeout)
            base = direct(stack, notifications(receiver, f"direct{round_no}", args.count))
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
        f"direct {statistics.median(r[1] for r in rows):.1f}/s, ratio {statistics.median(ratios):.3f} "
        f"(end to end is {1 / statistics.median(ratios):.1f}x slower)",
        file=report,
    )


if __name__ == "__main__":
    main()
