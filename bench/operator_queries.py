"""What operator reads cost: the operator index against a Scan, and the console's list at two table sizes.

Part 1 fills the embedded stack's table with ``--records`` records (most delivered, so not in the
sparse index; ``--failed`` FAILED and a few REJECTED) and lists the newest ``--limit`` failures twice:
through the operator index (the Query `runs list --status FAILED` makes) and as the old code did (a
Scan of the whole table, filtered). It reports the items each read (ScannedCount: what DynamoDB bills
reads on) and the read units DynamoDB would charge for them (4 KB units, eventually consistent: 0.5
each, from the sizes of the items read), then the median wall time of each.

Part 2 starts real runs on the embedded engine (``--runs``, e.g. 100 then 5000 in all: mostly
rejected, some delivered to a receiver on 127.0.0.1) and times the console's list endpoint, a page of
the newest runs and a page of rejected ones, at each size, against the old list (every execution up
to 2,000 joined with a Scan of the table). The ratio of the times at the two sizes is what matters:
moto's own work grows with the table in both cases (its GSI query walks every item in memory), so
absolute times here say little about DynamoDB; items read do.

    .venv/bin/python bench/operator_queries.py --records 100000 --runs 100,5000
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any, Final, TextIO

from lambdas.ingest.starter import build_start_request
from lambdas.shared.clock import utc_iso
from lambdas.shared.constants import OPS_INDEX_NAME, RecordStatus
from lambdas.shared.dal.codec import item_size_bytes
from lambdas.shared.dal.notifications import NotificationStore, query_ops_page
from lambdas.shared.record import NotificationRecord
from notiflow.console.server import Console
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.operate.runs import RunStore
from notiflow.shared.lambda_logs import lambda_output_to

BATCH: Final = 25
READ_UNIT_BYTES: Final = 4096
LOG: Final = Path(".notiflow") / "bench" / "lambdas.log"


def settings() -> StackSettings:
    """No poller, tiny waits, and (when the engine has the setting) every finished run kept."""
    options: dict[str, Any] = {"start_poller": False, "time_scale": 0.0001, "max_wait_seconds": 0.02}
    if "execution_retention" in {f.name for f in fields(StackSettings)}:
        options["execution_retention"] = None
    return StackSettings(**options)


def median_seconds(action: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def read_units(items: list[dict[str, Any]]) -> float:
    """What DynamoDB charges for reading these items eventually consistently: 0.5 per started 4 KB."""
    return 0.5 * math.ceil(sum(item_size_bytes(item) for item in items) / READ_UNIT_BYTES)


# -- part 1: the index against a scan ------------------------------------------------------------------------------


def record_item(n: int, status: RecordStatus, when: str) -> dict[str, Any]:
    """A record as the workflow leaves it: delivery result and a one-entry attempt log (about 1 KB)."""
    failed = status is not RecordStatus.SUCCESS
    outcome = {
        "success": not failed,
        "retryEligible": False,
        "category": "CLIENT_ERROR" if failed else "SUCCESS",
        "statusCode": 404 if failed else 200,
        "statusText": "Not Found" if failed else "OK",
        "responseTime": 40 + n % 200,
        "errorDetails": "HTTP 404 Not Found" if failed else None,
        "timestamp": when,
    }
    values: dict[str, Any] = {
        "notificationId": f"bench-{n:06d}",
        "status": status,
        "executionArn": f"arn:aws:states:us-east-1:123456789012:execution:notiflow-delivery:bench-{n:06d}",
        "createdAt": when,
        "claimedAt": when,
        "lastUpdatedAt": when,
        "targetHost": f"hooks-{n % 40}.example.com",
        "targetMethod": "POST",
        "eventType": "order.updated",
        "attempts": 1,
        "lastDeliveryAttempt": when,
        "attemptLog": [{"attempt": 1, "timestamp": when, "category": outcome["category"], "responseTime": 40}],
        "deliveryResult": outcome,
        "expiresAt": 1_900_000_000,
    }
    if failed:
        values.update(
            errorName="DeliveryPermanentError",
            failureReason="HTTP 404 Not Found after 1 attempt (CLIENT_ERROR, permanent)",
            opsStatus=status,
            opsSince=when,
        )
    else:
        values["deliveredAt"] = when
    return NotificationRecord.typed_values(**values)


def fill_table(stack: EmbeddedStack, records: int, failed: int, out: TextIO) -> int:
    """Write the records; returns their total size in bytes, as DynamoDB counts it."""
    client = stack.client("dynamodb")
    every = max(records // max(failed, 1), 1)
    rejected_every = every * 5

    def status_of(n: int) -> RecordStatus:
        if n % every == 0:
            return RecordStatus.FAILED
        if n % rejected_every == 1:
            return RecordStatus.REJECTED
        return RecordStatus.SUCCESS

    def write(start: int) -> int:
        batch = []
        for n in range(start, min(start + BATCH, records)):
            when = f"2026-11-{1 + n * 29 // records:02d}T10:00:00.{n % 1000:03d}Z"
            batch.append({"PutRequest": {"Item": record_item(n, status_of(n), when)}})
        request = {stack.table_name: batch}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        return sum(item_size_bytes(entry["PutRequest"]["Item"]) for entry in batch)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        total = sum(pool.map(write, range(0, records, BATCH)))
    print(
        f"filled the table with {records:,} records ({total / records:,.0f} bytes each on average) "
        f"in {time.monotonic() - started:.0f} s",
        file=out,
    )
    return total


def index_versus_scan(stack: EmbeddedStack, table_bytes: int, limit: int, rounds: int, out: TextIO) -> None:
    """The Query `runs list --status FAILED --limit N` makes, against the Scan the old code made."""
    client = stack.client("dynamodb")
    store = NotificationStore(stack.table_name, client=client)

    page = query_ops_page(store, RecordStatus.FAILED, limit=limit)
    projected = client.query(
        TableName=stack.table_name,
        IndexName=OPS_INDEX_NAME,
        KeyConditionExpression="opsStatus = :s",
        ExpressionAttributeValues={":s": {"S": "FAILED"}},
        ScanIndexForward=False,
        Limit=limit,
    )["Items"]

    def old_scan() -> tuple[int, int]:
        """Every item read, as the old `runs list` did (Select=COUNT: moto need not serialize them all)."""
        scanned = requests = 0
        for response in client.get_paginator("scan").paginate(TableName=stack.table_name, Select="COUNT"):
            requests += 1
            scanned += response["ScannedCount"]
        return scanned, requests

    scanned, requests = old_scan()
    query_time = median_seconds(lambda: query_ops_page(store, RecordStatus.FAILED, limit=limit), rounds)
    scan_time = median_seconds(old_scan, max(1, rounds // 3))
    scan_units = 0.5 * math.ceil(table_bytes / READ_UNIT_BYTES)
    print(f"\nlisting the newest {limit} FAILED records among {scanned:,}:", file=out)
    rows = [
        ("operator index (Query)", 1, page.items_read, read_units(projected), query_time),
        ("old read (Scan)", requests, scanned, scan_units, scan_time),
    ]
    print(f"  {'read':<24}{'requests':>9}{'items read':>12}{'read units':>12}{'median time':>13}", file=out)
    for name, calls, items, units, seconds in rows:
        print(f"  {name:<24}{calls:>9,}{items:>12,}{units:>12,.1f}{seconds * 1000:>10,.0f} ms", file=out)
    print(
        f"  the Query read {page.items_read / scanned:.3%} of the items and {read_units(projected) / scan_units:.4%} "
        f"of the read units; {query_time / scan_time:.3f} of the Scan's time in moto "
        "(whose GSI query walks every item in memory; DynamoDB reads only the index range)",
        file=out,
    )


# -- part 2: the console's list at two sizes -------------------------------------------------------------------------


def start_runs(stack: EmbeddedStack, receiver: WebhookReceiver, first: int, last: int) -> None:
    """Runs first..last-1 through the API, as ingest starts them: 4 in 5 rejected, 1 in 5 delivered."""
    sfn = stack.client("stepfunctions")

    def start(n: int) -> None:
        url = receiver.url("/ok") if n % 5 == 0 else "ftp://files.example.com/drop"
        body = json.dumps({"notificationId": f"run-{n:05d}", "target": {"url": url}, "payload": {"n": n}})
        request = build_start_request({"messageId": f"bench-{n}", "body": body}, stack.queue_arn, 90)
        sfn.start_execution(stateMachineArn=stack.state_machine_arn, name=request.name, input=json.dumps(request.input))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(start, range(first, last)))
    deadline = time.monotonic() + 3600
    while sfn.list_executions(stateMachineArn=stack.state_machine_arn, statusFilter="RUNNING", maxResults=1)[
        "executions"
    ]:
        if time.monotonic() > deadline:
            raise TimeoutError("runs did not finish within an hour")
        time.sleep(0.5)  # a benchmark waiting for the engine, not a test synchronising on it


def old_list(store: RunStore) -> int:
    """What the console's list did before: every execution (up to 2,000) joined with a Scan of the table."""
    executions = store.executions(limit=2000)
    records = [
        item
        for page in store.dynamodb.get_paginator("scan").paginate(TableName=store.table_name)
        for item in page["Items"]
    ]
    by_arn = {item["executionArn"]["S"]: item for item in records if "executionArn" in item}
    return sum(1 for execution in executions if execution["executionArn"] in by_arn)


def console_at_sizes(sizes: list[int], rounds: int, out: TextIO) -> None:
    results: list[tuple[int, float, float, float]] = []
    with EmbeddedStack(settings()) as stack, WebhookReceiver(secret=stack.signing_secret) as receiver:
        receiver.script("/ok", [Step(200)])
        store = RunStore(
            stack.client("dynamodb"), stack.client("stepfunctions"), stack.table_name, stack.state_machine_arn
        )
        console = Console(store)
        done = 0
        for size in sizes:
            started = time.monotonic()
            start_runs(stack, receiver, done, size)
            print(
                f"\n{size:,} runs on the engine ({size - done:,} started in {time.monotonic() - started:.0f} s)",
                file=out,
            )
            done = size
            newest = median_seconds(lambda: console.executions(), rounds)
            rejected = median_seconds(lambda: console.executions("RECORD:REJECTED"), rounds)
            old = median_seconds(lambda: old_list(store), max(1, rounds // 2))
            results.append((size, newest, rejected, old))
            print(
                f"  console list, newest page: {newest * 1000:.0f} ms; rejected page: {rejected * 1000:.0f} ms; "
                f"old list (executions + Scan): {old * 1000:.0f} ms",
                file=out,
            )
    (small, new_small, rej_small, old_small), (large, new_large, rej_large, old_large) = results[0], results[-1]
    print(f"\nfrom {small:,} to {large:,} runs ({large / small:.0f}x):", file=out)
    print(f"  console list, newest page  x{new_large / new_small:.2f}", file=out)
    print(f"  console list, rejected page x{rej_large / rej_small:.2f}", file=out)
    print(f"  old list                    x{old_large / old_small:.2f}", file=out)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--failed", type=int, default=1_000, help="FAILED records among them")
    parser.add_argument("--limit", type=int, default=50, help="failures listed")
    parser.add_argument("--rounds", type=int, default=7, help="timings are medians over this many")
    parser.add_argument("--runs", default="100,5000", help="console list sizes, comma-separated and growing")
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--skip-console", action="store_true")
    args = parser.parse_args(argv)
    print(f"{utc_iso()}: operator reads on the embedded stack (Lambda output in {LOG})", file=out)
    with lambda_output_to(LOG):
        if not args.skip_index:
            with EmbeddedStack(settings()) as stack:
                table_bytes = fill_table(stack, args.records, args.failed, out)
                index_versus_scan(stack, table_bytes, args.limit, args.rounds, out)
        if not args.skip_console:
            console_at_sizes([int(size) for size in args.runs.split(",")], args.rounds, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
