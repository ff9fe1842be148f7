"""The cost model: a :class:`Usage` priced with the price file, per million notifications, by component.

Components (rows) and what each multiplies:

- Step Functions: Standard transitions x the transition price; Express requests x the request price;
  Express GB-seconds (each run's duration rounded up to 100 ms, memory in 64 MB chunks) x the GB-second price.
- Lambda: invocations x the request price; billed GB-seconds (each invocation rounded up to 1 ms, at the
  function's configured memory) x the arm64 GB-second price.
- DynamoDB: write request units (table and global secondary indexes) and read request units.
- SQS: requests (send, receive that returned messages, delete batches).
- CloudWatch Logs: bytes ingested by the Lambdas (their own lines and the platform lines) and by each
  state machine at its configured level, x the ingestion price. The Express log group's cost is shown
  at every level too, as what-if rows.

``all-in`` is Step Functions + Lambda + DynamoDB + SQS + logs at the configured levels. X-Ray is shown
below it (it depends on the sampling rule), and SNS and EventBridge API destinations as reference rows:
what the same deliveries would cost there (no per-notification record, no redrive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from notiflow.cost.histories import LOG_LEVELS
from notiflow.cost.prices import PriceFile
from notiflow.cost.usage import Usage

MILLION: Final = 1_000_000
GB: Final = 1_000_000_000
STEP_FUNCTIONS: Final = "Step Functions"
LAMBDA: Final = "Lambda"
DYNAMODB: Final = "DynamoDB"
SQS: Final = "SQS"
LOGS: Final = "CloudWatch Logs"


@dataclass(frozen=True)
class Line:
    """One row of the cost table: a component's cost per million notifications and what it counts."""

    group: str
    label: str
    per_million: float
    quantity: str
    source: str = "measured"


@dataclass(frozen=True)
class Costs:
    """A mode's priced usage: the rows that add up to all-in, and the rows shown beside it."""

    usage: Usage
    lines: tuple[Line, ...]
    what_if: tuple[Line, ...]
    reference: tuple[Line, ...]

    def group_total(self, group: str) -> float:
        """Per-million cost of one component group (e.g. Step Functions)."""
        return sum(line.per_million for line in self.lines if line.group == group)

    @property
    def step_functions(self) -> float:
        """Step Functions per million notifications: Standard transitions plus Express requests and duration."""
        return self.group_total(STEP_FUNCTIONS)

    @property
    def all_in(self) -> float:
        """Everything the deployment pays per million notifications (X-Ray and reference rows aside)."""
        return sum(line.per_million for line in self.lines)


def _per_notification(usage: Usage, total: float) -> float:
    return total / usage.notifications * MILLION if usage.notifications else 0.0


def _each(usage: Usage, count: float) -> str:
    return f"{count / usage.notifications:.3g}/notification" if usage.notifications else "-"


def price(usage: Usage, prices: PriceFile) -> Costs:
    """Price one mode's usage."""
    per = _per_notification
    u = usage
    lines: list[Line] = []
    lines.append(
        Line(
            STEP_FUNCTIONS,
            "Standard state transitions",
            per(u, u.standard_transitions * prices.usd("stepfunctions.standard.transition")),
            f"{_each(u, u.standard_transitions)} transitions",
            u.source("standard"),
        )
    )
    lines.append(
        Line(
            STEP_FUNCTIONS,
            "Express requests",
            per(u, u.express_requests * prices.usd("stepfunctions.express.request")),
            f"{_each(u, u.express_requests)} runs",
            u.source("express"),
        )
    )
    lines.append(
        Line(
            STEP_FUNCTIONS,
            "Express duration (100 ms, 64 MB steps)",
            per(u, u.express_gb_seconds * prices.usd("stepfunctions.express.gb_second")),
            f"{_each(u, u.express_billed_ms)} ms billed",
            u.source("express"),
        )
    )
    invocations = sum(f.invocations for f in u.functions.values())
    gb_seconds = sum(f.gb_seconds for f in u.functions.values())
    lines.append(
        Line(
            LAMBDA,
            "Lambda requests",
            per(u, invocations * prices.usd("lambda.request")),
            f"{_each(u, invocations)} invocations",
            u.source("lambda"),
        )
    )
    lines.append(
        Line(
            LAMBDA,
            "Lambda duration (arm64, 1 ms steps)",
            per(u, gb_seconds * prices.usd("lambda.arm64.gb_second")),
            f"{_each(u, gb_seconds * 1000)} GB-ms",
            u.source("lambda"),
        )
    )
    writes = u.dynamodb_write_units + u.dynamodb_index_write_units
    lines.append(
        Line(
            DYNAMODB,
            "DynamoDB writes (table + indexes)",
            per(u, writes * prices.usd("dynamodb.write_request_unit")),
            f"{_each(u, writes)} WRU",
            u.source("dynamodb"),
        )
    )
    lines.append(
        Line(
            DYNAMODB,
            "DynamoDB reads",
            per(u, u.dynamodb_read_units * prices.usd("dynamodb.read_request_unit")),
            f"{_each(u, u.dynamodb_read_units)} RRU",
            u.source("dynamodb"),
        )
    )
    requests = sum(u.sqs_requests.values())
    lines.append(
        Line(
            SQS,
            "SQS requests",
            per(u, requests * prices.usd("sqs.request")),
            f"{_each(u, requests)} requests",
            u.source("sqs"),
        )
    )
    per_gb = prices.usd("logs.ingestion_gb")
    lambda_logs = u.lambda_log_bytes + u.lambda_platform_log_bytes
    lines.append(
        Line(
            LOGS,
            "Lambda logs (INFO lines, EMF, platform lines)",
            per(u, lambda_logs / GB * per_gb),
            f"{_each(u, lambda_logs)} bytes",
            u.source("lambda_logs"),
        )
    )
    lines.append(
        Line(
            LOGS,
            f"Standard execution logs ({u.standard_log_level})",
            per(u, u.standard_log_bytes / GB * per_gb),
            f"{_each(u, u.standard_log_bytes)} bytes",
            u.source("standard"),
        )
    )
    express_bytes = u.express_log_bytes.get(u.express_log_level, 0)
    lines.append(
        Line(
            LOGS,
            f"Express execution logs ({u.express_log_level})",
            per(u, express_bytes / GB * per_gb),
            f"{_each(u, express_bytes)} bytes",
            u.source("express"),
        )
    )
    what_if = tuple(
        Line(
            LOGS,
            f"Express logs at {level}",
            per(u, u.express_log_bytes.get(level, 0) / GB * per_gb),
            f"{_each(u, u.express_log_bytes.get(level, 0))} bytes",
            u.source("express"),
        )
        for level in LOG_LEVELS
    )
    reference = (
        Line(
            "X-Ray",
            f"X-Ray traces ({prices.assume('xray_sampled_fraction'):.0%} sampled; not in all-in)",
            per(u, u.traced_requests * prices.assume("xray_sampled_fraction") * prices.usd("xray.trace")),
            f"{_each(u, u.traced_requests)} traced requests",
            "assumed sampling",
        ),
        Line(
            "Reference",
            "SNS HTTP/S (publish + each delivery attempt)",
            per(u, u.notifications * prices.usd("sns.publish") + u.delivery_attempts * prices.usd("sns.http_delivery")),
            f"{_each(u, u.delivery_attempts)} attempts",
            "same attempts",
        ),
        Line(
            "Reference",
            "EventBridge API destinations (event + each invocation)",
            per(
                u,
                u.notifications * prices.usd("eventbridge.custom_event")
                + u.delivery_attempts * prices.usd("eventbridge.api_destination"),
            ),
            f"{_each(u, u.delivery_attempts)} attempts",
            "same attempts",
        ),
    )
    return Costs(usage, tuple(lines), what_if, reference)
