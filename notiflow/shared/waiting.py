"""The one wait-until helper: poll an observable condition with a deadline, never a bare sleep.

Callers that wait for a run to end, a record to change or a server to answer all go through
:func:`wait_until`, so every wait is bounded and says what it was waiting for when it gives up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """The condition did not hold before the deadline; the message says what was awaited and the last value."""


def wait_until(
    probe: Callable[[], T],
    done: Callable[[T], bool] = bool,
    *,
    timeout: float,
    interval: float = 0.05,
    max_interval: float | None = None,
    describe: str | Callable[[T | None], str] = "condition",
) -> T:
    """Call ``probe`` until ``done(value)`` holds and return that value; raise WaitTimeoutError at the deadline.

    ``interval`` grows by half each round up to ``max_interval`` (default: ``interval``, i.e. fixed), so a
    long wait against a remote API backs off while a short local one stays responsive.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    ceiling = interval if max_interval is None else max_interval
    last: T | None = None
    while True:
        last = probe()
        if done(last):
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = describe(last) if callable(describe) else f"{describe}; last value: {last!r}"
            raise WaitTimeoutError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, ceiling)
