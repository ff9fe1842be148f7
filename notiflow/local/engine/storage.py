"""Atomic conditional writes in moto's DynamoDB.

moto evaluates a ConditionExpression and then writes without a lock, so two concurrent conditional
writes (two runs claiming one notification) could both succeed. DynamoDB applies each write
atomically; the engine runs every write of moto's DynamoDB backend under one lock, whether it comes
over HTTP (a handler) or in-process (a service integration of the interpreter).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from notiflow.local.engine import fault_seams

_lock = threading.RLock()


def atomic(write: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap one DynamoDBBackend write method so its condition check and write are one step."""

    @functools.wraps(write)
    def atomic_write(self: Any, *args: Any, **kwargs: Any) -> Any:
        fault_seams.throttle_dynamodb(self, write.__name__, args, kwargs)  # ddb-throttle, when configured
        with _lock:
            return write(self, *args, **kwargs)

    return atomic_write
