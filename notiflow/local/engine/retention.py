"""Bounded memory: finished runs beyond the retention are evicted, and moto tracks no Items or Messages.

Retention. moto keeps every execution, with its history, for the life of the process. The engine
keeps the ``limit`` most recently finished runs (``StackSettings.execution_retention``, 1,000 by
default; None keeps every run) and evicts older ones from their state machine: DescribeExecution
and GetExecutionHistory of an evicted run answer ``ExecutionDoesNotExist`` and ListExecutions no
longer lists it, as AWS does for a run past its retention period, and its name can be used again.
The DynamoDB records those runs wrote stay. Running runs are never evicted.

Instance tracking. moto's ``BaseModel`` appends every model object it ever builds to its class's
``instances_tracked`` (for the moto dashboard), so every DynamoDB Item (a Scan copies each one) and
every SQS Message (each receive copies it) stayed alive forever. Items and Messages are built
untracked; ``/moto-api/data.json`` no longer lists them.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Final

from moto.stepfunctions.parser import utils as parser_utils
from moto.stepfunctions.parser.api import ExecutionStatus

DEFAULT_LIMIT: Final = 1000
_PRUNE_THREADS_EVERY: Final = 200

_lock = threading.Lock()
_limit: int | None = DEFAULT_LIMIT
_finished: collections.OrderedDict[str, Any] = collections.OrderedDict()
_evicted = 0
_ends = 0


def configure(limit: int | None = DEFAULT_LIMIT) -> None:
    """Keep at most ``limit`` finished runs (None: all of them)."""
    global _limit
    if limit is not None and limit < 0:
        raise ValueError("the retention must not be negative")
    with _lock:
        _limit = limit
    _evict_beyond_limit()


def reset() -> None:
    """Forget every run (moto's backends were reset)."""
    global _evicted
    with _lock:
        _finished.clear()
        _evicted = 0


def evicted_count() -> int:
    """How many runs were evicted since the last reset."""
    return _evicted


def finished(execution: Any) -> None:
    """A run ended (also after a redrive): it is now the most recent, older ones may go."""
    global _ends
    with _lock:
        _finished.pop(execution.exec_arn, None)
        _finished[execution.exec_arn] = execution
        _ends += 1
        prune = _ends % _PRUNE_THREADS_EVERY == 0
    if prune:
        # moto appends every interpreter thread (Map, Parallel, callbacks) to TMP_THREADS and never removes one.
        parser_utils.TMP_THREADS[:] = [thread for thread in parser_utils.TMP_THREADS if thread.is_alive()]
    _evict_beyond_limit()


def _evict_beyond_limit() -> None:
    global _evicted
    while True:
        with _lock:
            if _limit is None or len(_finished) <= _limit:
                return
            _, execution = _finished.popitem(last=False)
        if execution.exec_status == ExecutionStatus.RUNNING:
            continue  # redriven meanwhile; it comes back when it ends
        owner = getattr(execution, "owner_executions", None)
        if owner is not None and execution in owner:
            owner.remove(execution)
            with _lock:
                _evicted += 1


def untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``__new__`` of a moto model without the append to ``instances_tracked``."""
    return object.__new__(cls)
