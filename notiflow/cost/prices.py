"""The versioned price file (``infrastructure/prices.json``): list prices and the model's stated assumptions.

Every figure the model multiplies by comes from here, each with the page it was read from, so a
price change is one edit of the file (and of its ``version`` and ``readOn``), never of the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

PRICE_FILE: Final = Path(__file__).resolve().parents[2] / "infrastructure" / "prices.json"

REQUIRED_PRICES: Final = (
    "stepfunctions.standard.transition",
    "stepfunctions.express.request",
    "stepfunctions.express.gb_second",
    "lambda.request",
    "lambda.arm64.gb_second",
    "dynamodb.write_request_unit",
    "dynamodb.read_request_unit",
    "sqs.request",
    "logs.ingestion_gb",
    "xray.trace",
    "sns.publish",
    "sns.http_delivery",
    "eventbridge.custom_event",
    "eventbridge.api_destination",
)
REQUIRED_ASSUMPTIONS: Final = (
    "express_memory_mb",
    "express_duration_step_ms",
    "lambda_duration_step_ms",
    "lambda_platform_log_bytes",
    "sfn_log_event_overhead_bytes",
    "xray_sampled_fraction",
    "receiver_latency_ms",
)


class Price(BaseModel):
    """One list price: dollars per unit, what the unit is, and where the figure was read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    usd: float = Field(ge=0)
    per: str
    source: str


class Assumption(BaseModel):
    """A figure the model needs that no price page states, with where it comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float = Field(ge=0)
    source: str


class PriceFile(BaseModel):
    """The whole file, validated: a missing price or assumption fails loading, not a later lookup."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    version: int = Field(ge=1)
    region: str
    read_on: str = Field(alias="readOn")
    currency: str
    note: str = ""
    prices: dict[str, Price]
    assumptions: dict[str, Assumption]

    def model_post_init(self, __context: object) -> None:
        missing = [name for name in REQUIRED_PRICES if name not in self.prices]
        missing += [name for name in REQUIRED_ASSUMPTIONS if name not in self.assumptions]
        if missing:
            raise ValueError(f"the price file lacks {', '.join(missing)}")

    def usd(self, name: str) -> float:
        """Dollars per unit of one price."""
        return self.prices[name].usd

    def assume(self, name: str) -> float:
        """The value of one assumption."""
        return self.assumptions[name].value

    def describe(self) -> str:
        """One line naming the file's version, region and date, printed above every table."""
        return f"prices v{self.version}, {self.region} list prices read on {self.read_on} (infrastructure/prices.json)"


def load_prices(path: Path | None = None) -> PriceFile:
    """Read and validate the price file (the repository's by default)."""
    return PriceFile.model_validate(json.loads((path or PRICE_FILE).read_text(encoding="utf-8")))
