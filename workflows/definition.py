"""Load and render both workflow definitions for both engines.

``notification_delivery.asl.json`` is the Standard workflow; ``fast_path.asl.json`` is the Express
workflow that makes the first attempt in ``fast-path`` mode and hands everything else over to the
Standard one. The CDK app and the embedded local stack both call :func:`render_definition` and
:func:`render_fast_path_definition`, so what is tested locally is exactly what deploys: the same
files, with ARNs and names substituted, and the settings below written in.

One home per setting:

- The delivery retry schedule is the Standard ``Deliver`` retrier in the file (a deployment may
  override it as a whole). The longest Retry-After wait honoured is the schedule's longest wait:
  rendering writes it into both ``Deliver`` payloads (``maxRetryAfterSeconds``).
- The quick retries of the fast path are the Express ``Deliver`` state's ``DeliveryRetryableError``
  retrier in its file (a deployment may override how many; 0 is the literal "deliver once").
- The total attempt budget stays the schedule's: in ``fast-path`` mode the Standard retrier is
  rendered to *continue* the schedule after the fast path's attempts (it starts at the wait the
  schedule owes next and allows that many fewer retries), and the Express run draws the wait the
  schedule owes before the first Standard attempt (``handOver.waitSeconds``, FULL jitter).
- The lease of an Express claim is the Express ``TimeoutSeconds`` plus the longest one delivery
  attempt can take plus a margin, counted from the run's start, so it ends only once the run and
  every invocation it started must be over.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from lambdas.shared.errors import DeliveryRetryableError

DEFINITION_PATH: Final = Path(__file__).with_name("notification_delivery.asl.json")
FAST_PATH_DEFINITION_PATH: Final = Path(__file__).with_name("fast_path.asl.json")
DELIVER_STATE: Final = "Deliver"
DEDUPLICATE_STATE: Final = "Deduplicate"
HAND_OVER_RETRY_STATE: Final = "HandOverRetry"
RETRY_AFTER_CEILING_FIELD: Final = "maxRetryAfterSeconds"
LEASE_MARGIN_SECONDS: Final = 30
"""Clock skew and scheduling slack on top of the longest an Express run and its invocations can last."""
PLACEHOLDERS: Final = (
    "ValidateFunctionArn",
    "DeduplicateFunctionArn",
    "DeliverFunctionArn",
    "FailureGateFunctionArn",
    "NotificationsTableName",
)
FAST_PATH_PLACEHOLDERS: Final = (
    "ValidateFunctionArn",
    "DeduplicateFunctionArn",
    "DeliverFunctionArn",
    "NotificationsTableName",
    "StandardStateMachineArn",
    "StandardExecutionArnPrefix",
)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
_MATH_RANDOM = re.compile(r"^States\.MathRandom\(1, \d+\)$")


@dataclass(frozen=True)
class DeliveryRetryPolicy:
    """A back-off for retryable delivery failures: the ASL Retry fields of a Deliver state."""

    interval_seconds: int
    max_attempts: int
    backoff_rate: float
    max_delay_seconds: int
    jitter: str = "FULL"

    def nominal_delays(self) -> list[float]:
        """Upper bound of each wait before a retry; FULL jitter draws uniformly below it."""
        return [self.bound(n) for n in range(1, self.max_attempts + 1)]

    def bound(self, retry: int) -> float:
        """Upper bound of the wait before retry number ``retry`` (1-based)."""
        return min(self.interval_seconds * self.backoff_rate ** (retry - 1), self.max_delay_seconds)

    def describe(self) -> str:
        """One line for humans: how long the schedule keeps trying."""
        total = sum(self.nominal_delays())
        expected = total / 2 if self.jitter == "FULL" else total
        return (
            f"{self.max_attempts} retries after the first attempt, starting at {self.interval_seconds}s, "
            f"x{self.backoff_rate:g} each time, capped at {self.max_delay_seconds}s, {self.jitter} jitter: "
            f"at most {total / 3600:.1f} h of waiting, {expected / 3600:.1f} h expected"
        )

    def continued_after(self, attempts: int) -> DeliveryRetryPolicy:
        """This schedule as it continues once ``attempts`` attempts were already made elsewhere.

        ``attempts`` (the fast path's) used up ``attempts - 1`` retries, and the wait before retry
        ``attempts`` is the hand-over's. The continuation starts at the wait before retry
        ``attempts + 1`` and allows ``max_attempts - attempts`` more, so the notification's total
        stays ``1 + max_attempts`` attempts.
        """
        if attempts <= 0:
            return self
        if attempts > self.max_attempts:
            raise ValueError(
                f"the fast path makes {attempts} attempts, more than the schedule's {self.max_attempts} retries allow"
            )
        return replace(
            self,
            interval_seconds=math.ceil(self.bound(attempts + 1)),
            max_attempts=self.max_attempts - attempts,
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
    """The Standard definition as written in the repository, placeholders intact."""
    return json.loads(DEFINITION_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def load_fast_path_definition() -> dict[str, Any]:
    """The Express (fast path) definition as written in the repository, placeholders intact."""
    return json.loads(FAST_PATH_DEFINITION_PATH.read_text(encoding="utf-8"))


def _delivery_retrier(definition: dict[str, Any]) -> dict[str, Any]:
    for retrier in definition["States"][DELIVER_STATE]["Retry"]:
        if retrier["ErrorEquals"] == [DeliveryRetryableError.__name__]:
            return retrier
    raise LookupError(f"{DELIVER_STATE} has no Retry for {DeliveryRetryableError.__name__}")


def _policy(retrier: dict[str, Any]) -> DeliveryRetryPolicy:
    return DeliveryRetryPolicy(
        interval_seconds=int(retrier["IntervalSeconds"]),
        max_attempts=int(retrier["MaxAttempts"]),
        backoff_rate=float(retrier["BackoffRate"]),
        max_delay_seconds=int(retrier["MaxDelaySeconds"]),
        jitter=str(retrier.get("JitterStrategy", "NONE")),
    )


def default_retry_policy() -> DeliveryRetryPolicy:
    """The delivery retry schedule as written in the Standard definition file (its one home)."""
    return _policy(_delivery_retrier(load_definition()))


def default_fast_retry_policy() -> DeliveryRetryPolicy:
    """The fast path's quick retries as written in the Express definition file (their one home)."""
    return _policy(_delivery_retrier(load_fast_path_definition()))


def fast_path_timeout_seconds() -> int:
    """The longest an Express run may last (its ``TimeoutSeconds``)."""
    return int(load_fast_path_definition()["TimeoutSeconds"])


def claim_lease_seconds(attempt_deadline_seconds: int) -> int:
    """How long after its run's start an Express claim holds: the run, a last attempt begun at its end, a margin."""
    return fast_path_timeout_seconds() + attempt_deadline_seconds + LEASE_MARGIN_SECONDS


def fast_path_attempts(fast_retry_policy: DeliveryRetryPolicy | None = None) -> int:
    """Attempts the fast path makes before it hands a retryable failure over: the first plus its quick retries."""
    return 1 + (fast_retry_policy or default_fast_retry_policy()).max_attempts


def hand_over_wait_bound(schedule: DeliveryRetryPolicy, attempts: int) -> int:
    """Upper bound of the wait the schedule owes after ``attempts`` attempts (before the first Standard one)."""
    return max(1, math.ceil(schedule.bound(attempts)))


def retry_after_ceiling_seconds(definition: dict[str, Any] | None = None) -> int:
    """The longest Retry-After wait honoured: the delivery schedule's ``MaxDelaySeconds``."""
    return int(_delivery_retrier(definition or load_definition())["MaxDelaySeconds"])


def _check_substitutions(substitutions: dict[str, str], expected: tuple[str, ...]) -> None:
    missing = set(expected) - substitutions.keys()
    unknown = substitutions.keys() - set(expected)
    if missing or unknown:
        raise KeyError(f"substitutions missing {sorted(missing)} unknown {sorted(unknown)}")


def _substitute(definition: dict[str, Any], substitutions: dict[str, str]) -> str:
    text = json.dumps(definition, indent=2)
    return _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)


def render_definition(
    substitutions: dict[str, str],
    retry_policy: DeliveryRetryPolicy | None = None,
    fast_attempts: int = 0,
) -> str:
    """The Standard definition with ``${Name}`` placeholders replaced and the schedule written in.

    ``retry_policy`` overrides the schedule as a whole. ``fast_attempts`` is how many attempts the
    fast path makes before it hands over (0 in ``standard`` mode): the Deliver retrier then continues
    the schedule after them (:meth:`DeliveryRetryPolicy.continued_after`). Every placeholder must be
    supplied and nothing else may be: a typo fails here, not as a runtime error inside a deployed
    workflow.
    """
    _check_substitutions(substitutions, PLACEHOLDERS)
    definition = copy.deepcopy(load_definition())
    schedule = retry_policy or default_retry_policy()
    schedule.validate()
    _delivery_retrier(definition).update(schedule.continued_after(fast_attempts).to_retrier())
    # A Retry-After answer is never honoured for longer than the schedule's own longest wait.
    definition["States"][DELIVER_STATE]["Parameters"]["Payload"][RETRY_AFTER_CEILING_FIELD] = schedule.max_delay_seconds
    return _substitute(definition, substitutions)


def render_fast_path_definition(
    substitutions: dict[str, str],
    retry_policy: DeliveryRetryPolicy | None = None,
    fast_retries: int | None = None,
    attempt_deadline_seconds: int = 30,
    lease_seconds: int | None = None,
) -> str:
    """The Express definition with placeholders replaced and the schedule-derived values written in.

    ``retry_policy`` is the delivery schedule (as for :func:`render_definition`); ``fast_retries``
    overrides how many quick retries the Express run makes (0: deliver once);
    ``attempt_deadline_seconds`` is the longest one delivery attempt can take (the deliver Lambda's
    timeout), from which the claim lease follows. ``lease_seconds`` replaces that lease: only the local
    stack does, so tests see a crashed run's claim taken over on their shortened time scale.
    """
    _check_substitutions(substitutions, FAST_PATH_PLACEHOLDERS)
    definition = copy.deepcopy(load_fast_path_definition())
    schedule = retry_policy or default_retry_policy()
    schedule.validate()
    fast = default_fast_retry_policy().with_overrides(max_attempts=fast_retries)
    attempts = fast_path_attempts(fast)
    schedule.continued_after(attempts)  # refuses more quick retries than the schedule has
    states = definition["States"]
    _delivery_retrier(definition).update(fast.to_retrier())
    states[DELIVER_STATE]["Parameters"]["Payload"][RETRY_AFTER_CEILING_FIELD] = schedule.max_delay_seconds
    states[DEDUPLICATE_STATE]["Parameters"]["Payload"]["lease"]["seconds"] = (
        lease_seconds if lease_seconds is not None else claim_lease_seconds(attempt_deadline_seconds)
    )
    hand_over = states[HAND_OVER_RETRY_STATE]["Parameters"]["handOver"]
    if not _MATH_RANDOM.match(hand_over["waitSeconds.$"]):
        raise ValueError(f"{HAND_OVER_RETRY_STATE} must draw handOver.waitSeconds with States.MathRandom(1, n)")
    hand_over["waitSeconds.$"] = f"States.MathRandom(1, {hand_over_wait_bound(schedule, attempts)})"
    return _substitute(definition, substitutions)


def placeholder_names(text: str) -> set[str]:
    """Names of the ``${...}`` placeholders still present in a definition text."""
    return set(_PLACEHOLDER.findall(text))
