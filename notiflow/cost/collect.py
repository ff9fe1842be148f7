"""From real runs to a :class:`Usage`: histories, the local meter and the Lambdas' log file, counted.

Each source fills the components it can see and nothing else; a component no source saw keeps a
provenance line saying so (or how the caller derived it), so the table never shows a guess as a
measurement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notiflow.cost import histories
from notiflow.cost.histories import LOG_LEVELS
from notiflow.cost.prices import PriceFile
from notiflow.cost.usage import Usage

if TYPE_CHECKING:
    from notiflow.cost.meter import Meter  # imports moto: only the local run needs it

Event = Mapping[str, Any]


@dataclass(frozen=True)
class Run:
    """One execution as read back: its ARN, its history and (Express, synchronous) its billing details."""

    arn: str
    events: Sequence[Event]
    express: bool = False
    billing_details: Mapping[str, Any] | None = field(default=None)


def add_standard_runs(usage: Usage, runs: Iterable[Run], log_level: str) -> None:
    """Transitions and execution-log bytes of Standard runs."""
    usage.standard_log_level = log_level
    for run in runs:
        usage.standard_runs += 1
        usage.standard_transitions += histories.transitions(run.events)
        usage.standard_log_bytes += histories.log_event_bytes(run.events, run.arn, log_level)
        usage.traced_requests += 1


def add_express_runs(
    usage: Usage,
    runs: Iterable[Run],
    log_level: str,
    prices: PriceFile,
    definition: Mapping[str, Any],
    time_scale: float = 1.0,
) -> list[float]:
    """Requests, billed duration and execution-log bytes (at every level) of Express runs.

    A run's duration is its history's (at a shortened local ``time_scale``: its busy time plus each
    retry's expected back-off from ``definition``); a run that reported ``billingDetails``
    (StartSyncExecution) is billed as it reported. Returns each run's full-scale duration in ms.
    """
    durations: list[float] = []
    usage.express_log_level = log_level
    step = int(prices.assume("express_duration_step_ms"))
    memory = prices.assume("express_memory_mb")
    for run in runs:
        duration = histories.full_scale_duration_ms(run.events, definition, time_scale)
        durations.append(duration)
        billing = histories.express_billing(
            duration,
            step_ms=step,
            memory_mb=memory,
            billing_details=run.billing_details,
        )
        usage.express_requests += 1
        usage.express_billed_ms += billing.billed_ms
        usage.express_gb_seconds += billing.gb_seconds
        for level in LOG_LEVELS:
            usage.express_log_bytes[level] = usage.express_log_bytes.get(level, 0) + histories.log_event_bytes(
                run.events, run.arn, level
            )
        usage.traced_requests += 1
    return durations


def add_meter(usage: Usage, meter: Meter, prices: PriceFile) -> None:
    """Lambda invocations and billed durations, platform log lines, DynamoDB units and SQS requests."""
    for call in meter.invocations:
        function = usage.function(call.function, call.memory_mb)
        function.invocations += 1
        function.billed_ms += call.billed_ms
        usage.lambda_platform_log_bytes += sum(len(line.encode("utf-8")) for line in call.platform_lines())
    usage.dynamodb_write_units += sum(meter.dynamodb.write_units.values())
    usage.dynamodb_index_write_units += sum(meter.dynamodb.index_write_units.values())
    usage.dynamodb_read_units += sum(meter.dynamodb.read_units.values())
    for name, count in meter.sqs.items():
        usage.sqs_requests[name] = usage.sqs_requests.get(name, 0) + count
    usage.notes += where_it_goes(usage, meter)


def where_it_goes(usage: Usage, meter: Meter) -> list[str]:
    """Per function and per table, what one notification used: where the money goes."""
    n = max(1, usage.notifications)
    calls: dict[str, list[float]] = {}
    for call in meter.invocations:
        calls.setdefault(call.function, []).append(call.billed_ms)
    lines = [
        "Lambda per notification: "
        + ", ".join(
            f"{name} {len(ms) / n:.2f} calls x {sum(ms) / len(ms):.0f} ms" for name, ms in sorted(calls.items())
        )
    ]
    tables = sorted(set(meter.dynamodb.write_units) | set(meter.dynamodb.read_units))
    requests = ", ".join(f"{op} {count / n:.2f}" for op, count in sorted(meter.dynamodb.requests.items()))
    lines.append(
        "DynamoDB per notification: "
        + ", ".join(
            f"{table} {meter.dynamodb.write_units[table] / n:.2f} WRU"
            f" (+{meter.dynamodb.index_write_units[table] / n:.2f} index)"
            f" {meter.dynamodb.read_units[table] / n:.2f} RRU"
            for table in tables
        )
        + f"; requests: {requests}"
    )
    lines.append("SQS per notification: " + ", ".join(f"{op} {c / n:.2f}" for op, c in sorted(meter.sqs.items())))
    return lines


def lambda_log_bytes(path: Path) -> int:
    """Bytes of the Lambdas' own log events in a log file the local stack wrote (one JSON record per line).

    Every Powertools line at the configured level and every EMF metric record is one CloudWatch Logs
    event on AWS; lines that are not JSON records (a stray warning) are not theirs and are skipped.
    """
    total = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            text = line.rstrip("\n")
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict):
                total += len(text.encode("utf-8"))
    return total
