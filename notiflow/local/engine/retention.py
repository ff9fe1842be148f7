"""Bounded memory: finished runs beyond the retention are evicted, and moto tracks no Items or Messages.

Retention. moto keeps every execution, with its history, for the life of the process. The engine
keeps the ``limit`` most recently finished runs (``StackSettings.execution_retention``, 1,000 by
default; None keeps every run) and evicts older ones from their state machine: DescribeExecution
and GetExecutionHistory of an evicted run answer ``ExecutionDoesNotExist`` and ListExecutions no
longer lists it, as AWS does for a run past its retention period, and its name can be used again.
The DynamoDB records those runs wrote stay. Running runs are never evicted.

Express runs are counted apart (``StackSettings.express_retention``, 1,000 by default): AWS keeps
no Express run at all (only what CloudWatch Logs received), so locally they stay visible only as a
debugging aid, and a burst of them must not push the Standard runs an operator reads out of view.
An evicted run is no longer referenced by the engine, so its history and worker are freed.

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

STANDARD: Final = "standard"
EXPRESS: Final = "express"

_lock = threading.Lock()
_limits: dict[str, int | None] = {STANDARD: DEFAULT_LIMIT, EXPRESS: DEFAULT_LIMIT}
_finished: dict[str, collections.OrderedDict[str, Any]] = {
    STANDARD: collections.OrderedDict(),
    EXPRESS: collections.OrderedDict(),
}
_evicted = 0
_ends = 0


def configure(limit: int | None = DEFAULT_LIMIT, express_limit: int | None = DEFAULT_LIMIT) -> None:
    """Keep at most ``limit`` finished Standard runs and ``express_limit`` Express runs (None: all of them)."""
    if (limit is not None and limit < 0) or (express_limit is not None and express_limit < 0):
        raise ValueError("the retention must not be negative")
    with _lock:
        _limits[STANDARD] = limit
        _limits[EXPRESS] = express_limit
    for kind in _finished:
        _evict_beyond_limit(kind)


def reset() -> None:
    """Forget every run (moto's backends were reset)."""
    global _evicted
    with _lock:
        for runs in _finished.values():
            runs.clear()
        _evicted = 0


def kept(kind: str = STANDARD) -> int:
    """How many finished runs of ``kind`` the engine keeps now."""
    with _lock:
        return len(_finished[kind])


def evicted_count() -> int:
    """How many runs were evicted since the last reset."""
    return _evicted


def finished(execution: Any) -> None:
    """A run ended (also after a redrive): it is now the most recent, older ones may go."""
    global _ends
    kind = EXPRESS if getattr(execution, "is_express", False) else STANDARD
    with _lock:
        runs = _finished[kind]
        runs.pop(execution.exec_arn, None)
        runs[execution.exec_arn] = execution
        _ends += 1
        prune = _ends % _PRUNE_THREADS_EVERY == 0
    if prune:
        # moto appends every interpreter thread (Map, Parallel, callbacks) to TMP_THREADS and never removes one.
        parser_utils.TMP_THREADS[:] = [thread for thread in parser_utils.TMP_THREADS if thread.is_alive()]
    _evict_beyond_limit(kind)


def _evict_beyond_limit(kind: str) -> None:
    global _evicted
    runs = _finished[kind]
    while True:
        with _lock:
            limit = _limits[kind]
            if limit is None or len(runs) <= limit:
                return
            _, execution = runs.popitem(last=False)
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
