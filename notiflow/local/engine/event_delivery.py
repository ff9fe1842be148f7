"""Asynchronous delivery of EventBridge events to Lambda targets: a bounded queue, its own threads, Lambda's retries.

EventBridge invokes a Lambda target asynchronously, so a slow or failing target never holds the run
whose status changed: :mod:`.events` queues one :class:`Delivery` per matched target, served by a few
threads of their own. Each attempt invokes the function in-process through the engine's one Lambda
path (:func:`runtime.invoke_moto_function`). Delivery is at least once: a failed attempt (a function
error, or the function cannot be reached) is tried again as Lambda retries an asynchronous
invocation, twice, about one and two minutes later (nominal seconds, scaled by the engine's time
scale), then it is counted and logged (on AWS it would go to the on-failure destination or the
target's dead-letter queue). A full queue drops the event, counted and logged, as a best-effort
delivery would. Logs say where a delivery went, never its payload (a run's input is a notification).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Final

from moto.awslambda.utils import get_backend as get_lambda_backend

from notiflow.local.engine import clock, runtime

LOG = logging.getLogger(__name__)

RETRY_DELAYS_SECONDS: Final = (60.0, 120.0)
"""Lambda retries a failed asynchronous invocation twice, about one then two minutes later (nominal seconds)."""
QUEUE_LIMIT: Final = 10_000
DELIVERY_THREADS: Final = 2
COUNTED: Final = ("submitted", "delivered", "retried", "failed", "dropped", "undeliverable")


@dataclass
class Delivery:
    """One event for one Lambda target."""

    function_arn: str
    payload: str
    account_id: str
    rule_arn: str
    target_id: str
    event_id: str
    attempts: int = 0

    def __str__(self) -> str:
        """Where it goes, for logs (never the payload: a run's input is a notification)."""
        return f"{self.event_id} (rule {self.rule_arn}, target {self.target_id}: {self.function_arn})"


class _Deliveries:
    """A bounded queue of deliveries (ready ones, and retries waiting for their time) and its threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: collections.deque[Delivery] = collections.deque()
        self._later: list[tuple[float, int, Delivery]] = []
        self._sequence = itertools.count()
        self._busy = 0
        self._threads: list[threading.Thread] = []
        self._generation = 0
        self._counts: collections.Counter[str] = collections.Counter()
        self.limit = QUEUE_LIMIT

    def count(self, kind: str) -> None:
        with self._cond:
            self._counts[kind] += 1

    def stats(self) -> dict[str, int]:
        with self._cond:
            counts = {kind: self._counts[kind] for kind in COUNTED}
            return {"queued": len(self._ready) + len(self._later), "in_flight": self._busy, **counts}

    def submit(self, delivery: Delivery) -> None:
        with self._cond:
            if len(self._ready) + len(self._later) >= self.limit:
                self._counts["dropped"] += 1
                LOG.warning("event %s dropped: %d deliveries queued", delivery, self.limit)
                return
            self._counts["submitted"] += 1
            self._ready.append(delivery)
            if len(self._threads) < DELIVERY_THREADS:
                thread = threading.Thread(
                    target=self._serve, args=(self._generation,), name="notiflow-events", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify()

    def _next(self, generation: int) -> Delivery | None:
        with self._cond:
            while generation == self._generation:
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    self._ready.append(heapq.heappop(self._later)[2])
                if self._ready:
                    self._busy += 1
                    return self._ready.popleft()
                self._cond.wait(self._later[0][0] - now if self._later else None)
            return None

    def _serve(self, generation: int) -> None:
        while (delivery := self._next(generation)) is not None:
            try:
                error = _invoke(delivery)
            except Exception as exc:  # the function cannot be reached (deleted, a bad ARN)
                error = type(exc).__name__
            with self._cond:
                self._busy -= 1
                if generation != self._generation:
                    return
                if error is None:
                    self._counts["delivered"] += 1
                elif delivery.attempts <= len(RETRY_DELAYS_SECONDS):
                    self._counts["retried"] += 1
                    due = time.monotonic() + clock.scaled_seconds(RETRY_DELAYS_SECONDS[delivery.attempts - 1])
                    heapq.heappush(self._later, (due, next(self._sequence), delivery))
                else:
                    self._counts["failed"] += 1
                    LOG.warning("event %s not delivered after %d attempts: %s", delivery, delivery.attempts, error)
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued, waiting for a retry or being delivered; False at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._ready or self._later or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def stop(self, timeout: float, *, clear_counts: bool) -> None:
        with self._cond:
            self._generation += 1
            dropped = len(self._ready) + len(self._later)
            self._ready.clear()
            self._later.clear()
            threads, self._threads = self._threads, []
            if clear_counts:
                self._counts.clear()
            else:
                self._counts["dropped"] += dropped
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


def _invoke(delivery: Delivery) -> str | None:
    """One attempt: the function's errorType when it failed, else None."""
    delivery.attempts += 1
    region = delivery.function_arn.split(":")[3]
    function = get_lambda_backend(delivery.account_id, region).get_function(delivery.function_arn)
    invocation = runtime.invoke_moto_function(function, delivery.payload)
    return (invocation.error_type or "Unhandled") if invocation.errored else None


_deliveries = _Deliveries()


def submit(delivery: Delivery) -> None:
    """Queue one delivery (dropped and counted when the queue is full)."""
    _deliveries.submit(delivery)


def count(kind: str) -> None:
    """Count an event that could not be handed to its rule's targets (``undeliverable``)."""
    _deliveries.count(kind)


def stats() -> dict[str, int]:
    """Counts since the last reset: submitted, delivered, retried, failed, dropped, undeliverable; queued now."""
    return _deliveries.stats()


def wait_idle(timeout: float = 10.0) -> bool:
    """Wait until every queued delivery was made or given up on (retries included); False at the deadline."""
    return _deliveries.wait_idle(timeout)


def configure(queue_limit: int = QUEUE_LIMIT) -> None:
    """At most ``queue_limit`` deliveries wait at once; more events are dropped and counted."""
    if queue_limit < 1:
        raise ValueError("the event queue needs room for at least one delivery")
    _deliveries.limit = queue_limit


def reset() -> None:
    """Forget queued deliveries and counts (moto's backends, and so the rules, were reset)."""
    _deliveries.stop(0.0, clear_counts=True)


def shutdown(timeout: float = 10.0) -> None:
    """Stop delivering: queued deliveries are dropped (counted), threads end after their current one."""
    _deliveries.stop(timeout, clear_counts=False)
