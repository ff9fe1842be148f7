"""Toy Lambda handlers that EventBridge rules target in the engine's status-change event tests.

Addressed by Handler strings (``tests.local.event_targets.<name>``) like the real handlers, so the
events reach them through the engine's one in-process Lambda path. Each remembers what it received
per function, so tests wait on what a target got instead of sleeping.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

_lock = threading.Lock()
_received: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
_calls: Counter[str] = Counter()
release = threading.Event()
"""``blocked`` waits for this before it records the event."""


class TargetError(Exception):
    """Raised on purpose by a failing target."""


def received(function_name: str) -> list[dict[str, Any]]:
    """Events ``function_name`` handled successfully, in order."""
    with _lock:
        return list(_received[function_name])


def calls(function_name: str) -> int:
    """How many times ``function_name`` was invoked, failures included."""
    with _lock:
        return _calls[function_name]


def _call(context: Any) -> int:
    with _lock:
        _calls[context.function_name] += 1
        return _calls[context.function_name]


def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Remember the event."""
    _call(context)
    with _lock:
        _received[context.function_name].append(event)
    return {"recorded": event.get("id")}


def fail_once_per_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fail the first delivery of each event id, record the next one (an at-least-once consumer)."""
    _call(context)
    with _lock:
        seen = _calls[f"{context.function_name}/{event.get('id')}"]
        _calls[f"{context.function_name}/{event.get('id')}"] += 1
    if seen == 0:
        raise TargetError("first delivery fails")
    with _lock:
        _received[context.function_name].append(event)
    return {"recorded": event.get("id")}


def always_fail(event: dict[str, Any], context: Any) -> None:
    """Every delivery fails."""
    _call(context)
    raise TargetError("this target always fails")


def blocked(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Hold the delivery until the test sets :data:`release` (a slow target), then record the event."""
    _call(context)
    if not release.wait(30):
        raise TargetError("never released")
    with _lock:
        _received[context.function_name].append(event)
    return {"recorded": event.get("id")}
