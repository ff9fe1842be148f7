"""Fault injection: platform faults at the engine's real seams, deterministic with a seed, counted and reported.

A spec such as ``lambda-throttle=0.05,lambda-timeout=0.01,ddb-throttle=0.05,sqs-duplicate=0.02,
crash-after-send=0.01,crash-after-state=Deliver:0.1`` gives each kind a probability (``--faults`` of
``notiflow local up``, ``StackSettings.faults``). The kinds and their seams:

- ``lambda-throttle``: the in-process Lambda call (:func:`.runtime.invoke`, the one path of Lambda
  tasks, the Invoke API and the SQS poller) refuses the invocation with ``TooManyRequestsException``
  (HTTP 429) before the handler runs; a Lambda task fails with ``Lambda.TooManyRequestsException``.
- ``lambda-timeout``: the handler runs, then the invocation reports ``Sandbox.Timedout``, as when the
  function outlived its Timeout: its side effects may have happened, its result is lost.
- ``crash-after-send``: an invocation whose handler sends an HTTP request with ``requests`` dies as
  soon as the response headers arrived (the receiver has the request): the invocation fails with
  ``Runtime.ExitError`` as a killed sandbox does. Only handlers that send requests can be hit (deliver).
- ``ddb-throttle``: moto's DynamoDB backend refuses a write, GetItem or Query with
  ``ProvisionedThroughputExceededException``, for service integrations (``DynamoDB.`` + that name)
  and for the handlers' boto3 clients (which retry it, as the SDK does on AWS).
- ``sqs-duplicate``: the SQS poller hands a received message to the function a second time.
- ``crash-after-state=State:p`` (or ``State@notification`` for exactly once): the run is lost right
  after that state completed. An Express run ends FAILED (``Fault.CrashAfterState``) without running
  further states: Express runs are not durable (at-most-once synchronous, at-least-once asynchronous).
  A Standard run carries on: Step Functions persists every transition of a Standard run and resumes it
  after a host failure (exactly-once execution), so failing it would invent a loss AWS does not have;
  the hit is still recorded, with outcome ``resumed``.

Decisions do not come from one shared random stream (concurrent runs would draw in a different order
each time) but from a keyed hash of (seed, kind, subject, n), where the subject names what is hit
(function and notification, table and key, message body) and n counts earlier decisions for it: the
same seed and the same notifications give the same faults whatever the interleaving.

This module holds the spec, the decisions and the report (what a chaos run reads: :func:`report`,
or the JSON file of ``report_path`` from another process); :mod:`.fault_seams` holds the hooks.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

LAMBDA_THROTTLE: Final = "lambda-throttle"
LAMBDA_TIMEOUT: Final = "lambda-timeout"
DDB_THROTTLE: Final = "ddb-throttle"
SQS_DUPLICATE: Final = "sqs-duplicate"
CRASH_AFTER_SEND: Final = "crash-after-send"
CRASH_AFTER_STATE: Final = "crash-after-state"
KINDS: Final = (LAMBDA_THROTTLE, LAMBDA_TIMEOUT, DDB_THROTTLE, SQS_DUPLICATE, CRASH_AFTER_SEND, CRASH_AFTER_STATE)

CRASH_AFTER_STATE_ERROR: Final = "Fault.CrashAfterState"
MAX_HITS: Final = 10_000
"""Hits kept in the report (the counters count all of them)."""
_MAX_SUBJECTS: Final = 100_000
_REPORT_DELAY_SECONDS: Final = 0.5


class FaultSpecError(ValueError):
    """A ``--faults`` spec that cannot be parsed."""


def _probability(kind: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{kind}: {text!r} is not a probability") from None
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"{kind}: {text} is not between 0 and 1")
    return value


@dataclass(frozen=True)
class FaultSpec:
    """Probabilities per kind, crash-after-state targets, and the seed."""

    probabilities: Mapping[str, float] = field(default_factory=dict)
    """Kind -> probability, for every kind but crash-after-state."""
    crash_after_state: Mapping[str, float] = field(default_factory=dict)
    """State name -> probability that a run is lost right after it."""
    crash_once: tuple[tuple[str, str], ...] = ()
    """(state, notification id or execution name): lost exactly once after that state."""
    seed: int = 0

    @classmethod
    def parse(cls, text: str | None, seed: int = 0) -> FaultSpec:
        """``kind=p`` items separated by commas; ``crash-after-state=State:p`` or ``State@notification``."""
        probabilities: dict[str, float] = {}
        states: dict[str, float] = {}
        once: list[tuple[str, str]] = []
        for item in filter(None, (part.strip() for part in (text or "").split(","))):
            kind, sep, value = item.partition("=")
            kind, value = kind.strip(), value.strip()
            if not sep or not value:
                raise FaultSpecError(f"{item!r}: expected kind=value")
            if kind not in KINDS:
                raise FaultSpecError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
            if kind != CRASH_AFTER_STATE:
                probabilities[kind] = _probability(kind, value)
                continue
            if "@" in value:
                state, _, target = value.partition("@")
                if not state.strip() or not target.strip():
                    raise FaultSpecError(f"{item!r}: expected {CRASH_AFTER_STATE}=State@notification")
                once.append((state.strip(), target.strip()))
                continue
            state, sep, p = value.rpartition(":")
            if not sep or not state.strip():
                raise FaultSpecError(f"{item!r}: expected {CRASH_AFTER_STATE}=State:probability")
            states[state.strip()] = _probability(kind, p)
        return cls(probabilities, states, tuple(once), seed)

    def text(self) -> str:
        """The spec in the ``--faults`` syntax."""
        items = [f"{kind}={p:g}" for kind, p in self.probabilities.items()]
        items += [f"{CRASH_AFTER_STATE}={state}:{p:g}" for state, p in self.crash_after_state.items()]
        items += [f"{CRASH_AFTER_STATE}={state}@{target}" for state, target in self.crash_once]
        return ",".join(items)

    def probability(self, kind: str) -> float:
        """The probability of ``kind`` (0 when not given)."""
        return self.probabilities.get(kind, 0.0)


@dataclass(frozen=True)
class FaultHit:
    """One injected fault and what it hit."""

    seq: int
    at: str
    kind: str
    error: str
    seam: str
    function: str | None = None
    state: str | None = None
    execution: str | None = None
    notification: str | None = None
    detail: str | None = None
    outcome: str | None = None


def _uniform(seed: int, kind: str, subject: str, n: int) -> float:
    # surrogatepass: a subject may quote a hostile body's id, and a lone surrogate must not crash the seam
    text = f"{seed}\x1f{kind}\x1f{subject}\x1f{n}"
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultInjector:
    """Decides, counts and records the faults of one spec; thread-safe."""

    def __init__(self, spec: FaultSpec, report_path: str | Path | None = None) -> None:
        self.spec = spec
        self.report_path = Path(report_path) if report_path is not None else None
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._checks: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._hits: deque[FaultHit] = deque(maxlen=MAX_HITS)
        self._seq = 0
        self._once = list(spec.crash_once)
        self._timer: threading.Timer | None = None

    def decide(self, kind: str, subject: str, probability: float | None = None) -> bool:
        """Whether the fault ``kind`` hits this occurrence of ``subject`` (deterministic for a seed)."""
        p = self.spec.probability(kind) if probability is None else probability
        if p <= 0.0:
            return False
        with self._lock:
            key = (kind, subject)
            n = self._seen.pop(key, 0)
            self._seen[key] = n + 1
            if len(self._seen) > _MAX_SUBJECTS:
                self._seen.popitem(last=False)
            self._checks[kind] += 1
        return p >= 1.0 or _uniform(self.spec.seed, kind, subject, n) < p

    def arm_crash_after_state(self, state: str, target: str) -> None:
        """Lose the run of ``target`` (notification id or execution name) once, right after ``state``."""
        with self._lock:
            self._once.append((state, target))

    def take_crash_once(self, state: str, targets: tuple[str | None, ...]) -> bool:
        """Whether an armed exactly-once crash matches; it is disarmed when it does."""
        with self._lock:
            for index, (armed_state, target) in enumerate(self._once):
                if armed_state == state and target in targets:
                    del self._once[index]
                    return True
        return False

    def record(self, kind: str, error: str, seam: str, **about: str | None) -> FaultHit:
        """Count a fault that was injected and keep what it hit."""
        with self._lock:
            self._seq += 1
            hit = FaultHit(self._seq, datetime.datetime.now(tz=datetime.UTC).isoformat(), kind, error, seam, **about)
            self._counts[kind] += 1
            self._hits.append(hit)
            if self.report_path is not None and self._timer is None:
                self._timer = threading.Timer(_REPORT_DELAY_SECONDS, self.write_report)
                self._timer.daemon = True
                self._timer.start()
        return hit

    def counts(self) -> dict[str, int]:
        """Faults injected per kind (every kind, zero included)."""
        with self._lock:
            return {kind: self._counts[kind] for kind in KINDS}

    def hits(self, kind: str | None = None) -> list[FaultHit]:
        """The recorded hits, oldest first (the last :data:`MAX_HITS`)."""
        with self._lock:
            return [hit for hit in self._hits if kind is None or hit.kind == kind]

    def report(self) -> dict[str, Any]:
        """Spec, seed, decisions and hits per kind, and every kept hit: what a chaos run reads."""
        with self._lock:
            hits = [asdict(hit) for hit in self._hits]
            return {
                "spec": self.spec.text(),
                "seed": self.spec.seed,
                "counts": {kind: self._counts[kind] for kind in KINDS},
                "checks": {kind: self._checks[kind] for kind in KINDS},
                "dropped": self._seq - len(hits),
                "armed": [{"state": state, "target": target} for state, target in self._once],
                "hits": hits,
            }

    def write_report(self) -> None:
        """Write :meth:`report` to ``report_path`` atomically (another process may read it at any time)."""
        with self._lock:
            self._timer = None
        if self.report_path is None:
            return
        self.report_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.report_path.with_name(f".{self.report_path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.report(), indent=1), encoding="utf-8")
        temporary.replace(self.report_path)

    def close(self) -> None:
        """Cancel a pending write and write the final report."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if self.report_path is not None:
            self.write_report()


_injector: FaultInjector | None = None


def configure(
    spec: FaultSpec | str | None, *, seed: int = 0, report_path: str | Path | None = None
) -> FaultInjector | None:
    """Inject the faults of ``spec`` from now on (None or an empty spec: none); returns the injector."""
    global _injector
    clear()
    parsed = spec if isinstance(spec, FaultSpec) else FaultSpec.parse(spec, seed)
    if parsed.probabilities or parsed.crash_after_state or parsed.crash_once or report_path is not None:
        _injector = FaultInjector(parsed, report_path)
    return _injector


def clear() -> None:
    """Inject no more faults (the report file, if any, gets its final state)."""
    global _injector
    injector, _injector = _injector, None
    if injector is not None:
        injector.close()


def current() -> FaultInjector | None:
    """The active injector, None when no faults are configured."""
    return _injector


def report() -> dict[str, Any]:
    """The active injector's report; an empty one when no faults are configured."""
    injector = _injector
    return injector.report() if injector is not None else FaultInjector(FaultSpec()).report()
