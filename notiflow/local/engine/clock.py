"""Time in the engine: Retry back-offs and Wait states, scaled, and parked instead of holding a thread.

moto sleeps for a Retry back-off (``time.sleep`` in ``retrier_decl``) and blocks on an event for a
Wait state. The engine scales both by one factor (``configure_time(0.01)`` turns the day-long
delivery schedule into minutes without touching the definition), optionally capped per wait, and
records each wait so tests can check the scaling without timing anything. A run on the worker pool
parks for the wait (its worker runs other executions meanwhile); anything else (a Map iteration or
Parallel branch, which moto runs on its own threads) waits on its thread. Either way the wait ends
early when the run is stopped or times out.
"""

from __future__ import annotations

import collections
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from notiflow.local.engine import scheduler

MAX_RECORDED_WAITS: Final = 2000


@dataclass(frozen=True)
class WaitRecord:
    """One back-off or Wait the interpreter asked for, and what it really waited."""

    kind: str
    nominal_seconds: float
    real_seconds: float


@dataclass
class _TimeScale:
    factor: float = 1.0
    max_wait_seconds: float | None = None


_time_scale = _TimeScale()
_waits: collections.deque[WaitRecord] = collections.deque(maxlen=MAX_RECORDED_WAITS)
_retry_env: contextvars.ContextVar[Any] = contextvars.ContextVar("notiflow_retry_env", default=None)


def configure_time(scale: float = 1.0, max_wait_seconds: float | None = None) -> None:
    """Scale every Retry back-off and Wait state by ``scale``, optionally capped per wait.

    Tests add a small cap so exhausting 24 retries takes about a second.
    """
    if scale <= 0:
        raise ValueError("time scale must be positive")
    if max_wait_seconds is not None and max_wait_seconds < 0:
        raise ValueError("max_wait_seconds must not be negative")
    _time_scale.factor = float(scale)
    _time_scale.max_wait_seconds = None if max_wait_seconds is None else float(max_wait_seconds)


def time_scale() -> tuple[float, float | None]:
    """The current (scale, max_wait_seconds)."""
    return _time_scale.factor, _time_scale.max_wait_seconds


def scaled_seconds(seconds: float) -> float:
    """Real seconds to wait for a nominal ASL wait of ``seconds``."""
    real = max(0.0, float(seconds) * _time_scale.factor)
    if _time_scale.max_wait_seconds is not None:
        real = min(real, _time_scale.max_wait_seconds)
    return real


def recent_waits() -> list[WaitRecord]:
    """The latest waits (most recent last)."""
    return list(_waits)


def clear_recent_waits() -> None:
    """Forget recorded waits (tests start from a clean slate)."""
    _waits.clear()


def _wait_while_running(env: Any, seconds: float) -> None:
    """Block up to ``seconds``, returning early when the execution stops or times out."""
    deadline = time.monotonic() + seconds
    while env is None or env.is_running():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if env is None:
            time.sleep(remaining)
            return
        env.program_state_event.wait(min(remaining, 0.5))


def pause(env: Any, kind: str, nominal_seconds: float) -> None:
    """Wait the scaled ``nominal_seconds`` for ``env``'s run: parked on the pool, else on this thread."""
    real = scaled_seconds(nominal_seconds)
    _waits.append(WaitRecord(kind, float(nominal_seconds), real))
    if real <= 0 or (env is not None and not env.is_running()):
        return
    if not scheduler.park(real):
        _wait_while_running(env, real)


class _RetryClock:
    """Stands in for the ``time`` module inside retrier_decl: only ``sleep`` changes."""

    def sleep(self, seconds: float) -> None:
        pause(_retry_env.get(), "retry", seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


RETRY_CLOCK: Final = _RetryClock()


def remember_retry_env(eval_body: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """Wrap RetrierDecl._eval_body so the back-off knows which run it delays."""

    def retrier_eval_body(self: Any, env: Any) -> None:
        token = _retry_env.set(env)
        try:
            eval_body(self, env)
        finally:
            _retry_env.reset(token)

    return retrier_eval_body


def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
    """Replacement of WaitFunction._wait_interval: a scaled, parked wait."""
    pause(env, "wait", wait_seconds)
