"""Load and render ``notification_delivery.asl.json`` for both engines.

The CDK app and the embedded local stack both call :func:`render_definition`, so
what is tested locally is exactly what deploys: the same file, with ARNs and
names substituted, and the delivery retry policy (whose defaults live in the
file itself) optionally overridden as a whole.

The longest Retry-After wait the deliver step honours is the schedule's longest
wait (the Deliver retrier's ``MaxDelaySeconds``): rendering always writes it into
the Deliver payload (``maxRetryAfterSeconds``), so the retrier is its one home and
the deliver Lambda has no ceiling of its own.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from lambdas.shared.errors import DeliveryRetryableError

DEFINITION_PATH: Final = Path(__file__).with_name("notification_delivery.asl.json")
DELIVER_STATE: Final = "Deliver"
RETRY_AFTER_CEILING_FIELD: Final = "maxRetryAfterSeconds"
PLACEHOLDERS: Final = (
    "ValidateFunctionArn",
    "DeduplicateFunctionArn",
    "DeliverFunctionArn",
    "FailureGateFunctionArn",
    "NotificationsTableName",
)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


@dataclass(frozen=True)
class DeliveryRetryPolicy:
    """The back-off for retryable delivery failures: ASL Retry fields of the Deliver state."""

    interval_seconds: int
    max_attempts: int
    backoff_rate: float
    max_delay_seconds: int
    jitter: str = "FULL"

    def nominal_delays(self) -> list[float]:
        """Upper bound of each wait before a retry; FULL jitter draws uniformly below it."""
        return [
            min(self.interval_seconds * self.backoff_rate**n, self.max_delay_seconds) for n in range(self.max_attempts)
        ]

    def describe(self) -> str:
        """One line for humans: how long the schedule keeps trying."""
        total = sum(self.nominal_delays())
        expected = total / 2 if self.jitter == "FULL" else total
        return (
            f"{self.max_attempts} retries after the first attempt, starting at {self.interval_seconds}s, "
            f"x{self.backoff_rate:g} each time, capped at {self.max_delay_seconds}s, {self.jitter} jitter: "
            f"at most {total / 3600:.1f} h of waiting, {expected / 3600:.1f} h expected"
        )

    def to_retrier(self) -> dict[str, Any]:
        """The ASL Retry entry for this policy."""
        return {
            "ErrorEquals": [DeliveryRetryableError.__name__],
            "IntervalSeconds": self.interval_seconds,
            "MaxAttempts": self.max_attempts,
            "BackoffRate": self.backoff_rate,
            "MaxDelaySeconds": self.max_delay_seconds,
            "JitterStrategy": self.jitter,
        }

    def with_overrides(self, **fields: Any) -> DeliveryRetryPolicy:
        """A copy with some fields changed, validated like the original."""
        policy = replace(self, **{k: v for k, v in fields.items() if v is not None})
        policy.validate()
        return policy

    def validate(self) -> None:
        """Refuse values that Step Functions would reject or that make no sense."""
        if not 1 <= self.interval_seconds <= 99_999_999:
            raise ValueError("interval_seconds must be between 1 and 99999999")
        if not 0 <= self.max_attempts <= 99_999_999:
            raise ValueError("max_attempts must be between 0 and 99999999")
        if self.backoff_rate < 1.0:
            raise ValueError("backoff_rate must be at least 1.0")
        if self.max_delay_seconds < self.interval_seconds:
            raise ValueError("max_delay_seconds must be at least interval_seconds")
        if self.jitter not in ("FULL", "NONE"):
            raise ValueError("jitter must be FULL or NONE")


@lru_cache(maxsize=1)
def load_definition() -> dict[str, Any]:
    """The definition as written in the repository, placeholders intact."""
    return json.loads(DEFINITION_PATH.read_text(encoding="utf-8"))


def _delivery_retrier(definition: dict[str, Any]) -> dict[str, Any]:
    for retrier in definition["States"][DELIVER_STATE]["Retry"]:
        if retrier["ErrorEquals"] == [DeliveryRetryableError.__name__]:
            return retrier
    raise LookupError(f"{DELIVER_STATE} has no Retry for {DeliveryRetryableError.__name__}")


def default_retry_policy() -> DeliveryRetryPolicy:
    """The delivery retry policy as written in the definition file (its one home)."""
    retrier = _delivery_retrier(load_definition())
    return DeliveryRetryPolicy(
        interval_seconds=int(retrier["IntervalSeconds"]),
        max_attempts=int(retrier["MaxAttempts"]),
        backoff_rate=float(retrier["BackoffRate"]),
        max_delay_seconds=int(retrier["MaxDelaySeconds"]),
        jitter=str(retrier.get("JitterStrategy", "NONE")),
    )


def retry_after_ceiling_seconds(definition: dict[str, Any] | None = None) -> int:
    """The longest Retry-After wait honoured: the delivery retrier's ``MaxDelaySeconds``."""
    return int(_delivery_retrier(definition or load_definition())["MaxDelaySeconds"])


def render_definition(
    substitutions: dict[str, str],
    retry_policy: DeliveryRetryPolicy | None = None,
) -> str:
    """Definition JSON with ``${Name}`` placeholders replaced and an optional retry override.

    Every placeholder must be supplied and nothing else may be: a typo fails here,
    not as a runtime error inside a deployed workflow.
    """
    missing = set(PLACEHOLDERS) - substitutions.keys()
    unknown = substitutions.keys() - set(PLACEHOLDERS)
    if missing or unknown:
        raise KeyError(f"substitutions missing {sorted(missing)} unknown {sorted(unknown)}")
    definition = copy.deepcopy(load_definition())
    if retry_policy is not None:
        retry_policy.validate()
        _delivery_retrier(definition).update(retry_policy.to_retrier())
    # A Retry-After answer is never honoured for longer than the schedule's own longest wait.
    definition["States"][DELIVER_STATE]["Parameters"]["Payload"][RETRY_AFTER_CEILING_FIELD] = (
        retry_after_ceiling_seconds(definition)
    )
    text = json.dumps(definition, indent=2)
    return _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)


def placeholder_names(text: str) -> set[str]:
    """Names of the ``${...}`` placeholders still present in a definition text."""
    return set(_PLACEHOLDER.findall(text))
