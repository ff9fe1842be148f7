"""Process-wide AWS clients: one boto3 session, one client per service, built once under a lock.

Why here and not ``boto3.client(...)`` at each call site:

* ``boto3`` is imported on first use, so a step that never calls AWS (validate, failure gate)
  never loads it, and the handlers that do call AWS import faster (the client is built on the
  first call instead).
* Building a session or a client is not thread-safe and costs tens of milliseconds. The local
  engine runs many handlers at once in one process; without the lock every concurrent first
  call built its own session, clients and resource models (a start-up spike of hundreds of MB).
  boto3 clients themselves are thread-safe once built, so one per service is shared.

Every cache here exposes ``cache_clear`` (as ``functools`` caches do), so tests and the local
engine's cold start can forget clients built against another endpoint or mock.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Final, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class ProcessCache(Generic[P, R]):
    """A thread-safe memo of ``function`` per argument tuple, optionally expiring after ``max_age`` seconds.

    The builder runs under the cache's lock, so concurrent first calls build the value once
    and the others wait for it (and never see a half-built value).
    """

    def __init__(self, function: Callable[P, R], max_age: float | None = None) -> None:
        functools.update_wrapper(self, function)
        self._function = function
        self._max_age = max_age
        self._lock = threading.Lock()
        self._values: dict[Hashable, tuple[float, R]] = {}
        # An instance attribute, not a method: the local engine's cold start clears every module-level
        # object with a ``cache_clear`` (as functools caches have), and must not find one on this class.
        self.cache_clear = self._clear

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key = (args, tuple(sorted(kwargs.items())))
        found = self._values.get(key)
        if found is not None and not self._expired(found[0]):
            return found[1]
        with self._lock:
            found = self._values.get(key)
            if found is None or self._expired(found[0]):
                found = (time.monotonic(), self._function(*args, **kwargs))
                self._values[key] = found
            return found[1]

    def _expired(self, built_at: float) -> bool:
        return self._max_age is not None and time.monotonic() - built_at >= self._max_age

    def _clear(self) -> None:
        """Forget every value (the next call builds afresh)."""
        with self._lock:
            self._values.clear()


def process_cache(max_age: float | None = None) -> Callable[[Callable[P, R]], ProcessCache[P, R]]:
    """Decorator form of :class:`ProcessCache`."""

    def wrap(function: Callable[P, R]) -> ProcessCache[P, R]:
        return ProcessCache(function, max_age)

    return wrap


@process_cache()
def session() -> Any:
    """The one boto3 session of this process (region, credentials and endpoints from the environment)."""
    import boto3.session  # deferred: a step that never calls AWS must not pay for importing boto3

    return boto3.session.Session()


@process_cache()
def client(service: str) -> Any:
    """The low-level client for ``service``, shared by every caller and thread of this process."""
    return session().client(service)


SYNC_CALL_SECONDS: Final = 330
"""Read timeout of a call that waits for the service to finish work: an Express run lasts 5 minutes at most."""


@process_cache()
def sync_client(service: str) -> Any:
    """A client for calls that block until the service has done the work (StartSyncExecution).

    Its read timeout outlasts the longest Express run, and it never retries: a retried
    StartSyncExecution would start a second run while the first may still be going.
    """
    from botocore.config import Config

    config = Config(read_timeout=SYNC_CALL_SECONDS, retries={"total_max_attempts": 1, "mode": "standard"})
    return session().client(service, config=config)


def clear() -> None:
    """Forget the session and every client (tests switch mocks and endpoints)."""
    sync_client.cache_clear()
    client.cache_clear()
    session.cache_clear()
