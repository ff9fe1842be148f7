"""What a batch of notifications used, in billable units: the model's only input besides the price file.

A :class:`Usage` is filled from real runs (execution histories, the local meter, the Lambdas' log
file) and says for each figure where it came from: ``measured`` when it was counted from what the
runs did, or a sentence saying how it was derived when a run could not show it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from notiflow.cost.histories import LOG_LEVELS


@dataclass
class FunctionUsage:
    """One Lambda function: invocations, billed milliseconds (each rounded up on its own) and memory."""

    invocations: int = 0
    billed_ms: float = 0.0
    memory_mb: int = 256

    @property
    def gb_seconds(self) -> float:
        """Billed duration times configured memory."""
        return self.billed_ms / 1000 * self.memory_mb / 1024


@dataclass
class Usage:
    """Billable units of one mode's run of ``notifications`` notifications."""

    mode: str
    notifications: int
    standard_transitions: int = 0
    standard_runs: int = 0
    express_requests: int = 0
    express_gb_seconds: float = 0.0
    express_billed_ms: float = 0.0
    functions: dict[str, FunctionUsage] = field(default_factory=dict)
    dynamodb_write_units: float = 0.0
    dynamodb_index_write_units: float = 0.0
    dynamodb_read_units: float = 0.0
    sqs_requests: dict[str, int] = field(default_factory=dict)
    lambda_log_bytes: int = 0
    lambda_platform_log_bytes: int = 0
    standard_log_bytes: int = 0
    standard_log_level: str = "ALL"
    express_log_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOG_LEVELS, 0))
    express_log_level: str = "ERROR"
    delivery_attempts: int = 0
    traced_requests: int = 0
    provenance: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def function(self, name: str, memory_mb: int) -> FunctionUsage:
        """The usage of one function, created on first use."""
        usage = self.functions.get(name)
        if usage is None:
            usage = self.functions[name] = FunctionUsage(memory_mb=memory_mb)
        return usage

    def source(self, component: str) -> str:
        """Where a component's figures come from: ``measured`` unless said otherwise."""
        return self.provenance.get(component, "measured")

    def as_json(self) -> dict[str, Any]:
        """A plain dict (for ``--json`` and the usage files make cost writes)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        """The inverse of :meth:`as_json`."""
        values = dict(data)
        values["functions"] = {name: FunctionUsage(**f) for name, f in (data.get("functions") or {}).items()}
        return cls(**values)
