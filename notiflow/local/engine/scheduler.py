"""A bounded pool of worker threads that runs executions; a waiting run is parked, not holding a thread.

moto gives every execution a thread, its program another and every task attempt a third, all
contending for the GIL, and a run asleep in a Retry back-off keeps them all. Here at most
``workers`` threads run executions. Each run is a greenlet: it runs on a worker until it finishes
or waits (a Retry back-off or a Wait state, see :mod:`~notiflow.local.engine.clock`), then it is
parked on its worker's timer heap and the worker takes the next run; when the timer fires (or the
run is stopped or times out) the run resumes on the same worker (a greenlet cannot change threads).
A handler blocked on I/O holds its worker, as a Lambda invocation holds its environment.

:func:`backlog` (runs queued or on a worker, parked ones excluded) is what the SQS poller checks
before taking more messages, like the maximum concurrency of an event source mapping.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

import greenlet

LOG = logging.getLogger(__name__)

DEFAULT_WORKERS: Final = 4
QUEUED: Final = "queued"
ACTIVE: Final = "active"
PARKED: Final = "parked"
DONE: Final = "done"


@dataclass
class PoolOptions:
    """``enabled=False`` gives moto's thread per execution back (``bench/engine_modes.py`` measures both)."""

    enabled: bool = True


options = PoolOptions()


@dataclass(eq=False)
class Run:
    """One execution (or one redrive of it) on the pool."""

    target: Callable[[], None]
    name: str
    state: str = QUEUED
    worker: _Worker | None = None
    glet: greenlet.greenlet | None = None
    token: int = 0
    timer: Timer | None = None
    """The timer that resumes the run while it is parked."""


@dataclass(eq=False)
class Timer:
    """A callback due at some deadline; :meth:`cancel` drops it (and what it refers to)."""

    callback: Callable[[], None] | None

    def cancel(self) -> None:
        """Do not call the callback."""
        self.callback = None

    def fire(self) -> None:
        """Call the callback unless cancelled."""
        callback = self.callback
        if callback is not None:
            try:
                callback()
            except Exception:
                LOG.exception("engine timer failed")


@dataclass(eq=False)
class _Worker:
    generation: int
    cond: threading.Condition
    hub: greenlet.greenlet | None = None
    ready: deque[Run] = field(default_factory=deque)
    timers: list[tuple[float, int, Timer]] = field(default_factory=list)
    runs: set[Run] = field(default_factory=set)
    idle: bool = False
    thread: threading.Thread | None = None


_lock = threading.Lock()
_queue: deque[Run] = deque()
_workers: list[_Worker] = []
_size = DEFAULT_WORKERS
_generation = 0
_sequence = itertools.count()
_counts = {ACTIVE: 0, PARKED: 0}


def configure(workers: int = DEFAULT_WORKERS) -> None:
    """Run at most ``workers`` executions at once (threads start as runs arrive)."""
    global _size
    if workers < 1:
        raise ValueError("the engine needs at least one worker")
    with _lock:
        _size = workers


def current_run() -> Run | None:
    """The run whose greenlet is executing now, None outside the pool."""
    return getattr(greenlet.getcurrent(), "notiflow_run", None)


def backlog() -> int:
    """Runs waiting for a worker or running on one (parked runs are not counted)."""
    with _lock:
        return len(_queue) + _counts[ACTIVE]


def stats() -> dict[str, int]:
    """Queued, active and parked runs and worker threads, for benchmarks and tests."""
    with _lock:
        return {"queued": len(_queue), "active": _counts[ACTIVE], "parked": _counts[PARKED], "workers": len(_workers)}


def spawn(target: Callable[[], None], name: str) -> Run | None:
    """Run ``target`` on the pool (returns its Run), or on a thread of its own when the pool is off."""
    if not options.enabled:
        threading.Thread(target=target, name=name, daemon=True).start()
        return None
    run = Run(target=target, name=name)
    with _lock:
        _queue.append(run)
        idle = next((worker for worker in _workers if worker.idle), None)
        if idle is not None:
            idle.idle = False  # the next spawn wakes another worker
            idle.cond.notify()
        elif len(_workers) < _size:
            _start_worker()
    return run


def _start_worker() -> None:
    worker = _Worker(generation=_generation, cond=threading.Condition(_lock))
    worker.thread = threading.Thread(
        target=_serve, args=(worker,), name=f"engine-worker-{len(_workers) + 1}", daemon=True
    )
    _workers.append(worker)
    worker.thread.start()


def park(seconds: float) -> bool:
    """Suspend the current run for ``seconds`` (or until :func:`wake`); False outside the pool."""
    run = current_run()
    worker = run.worker if run is not None else None
    hub = worker.hub if worker is not None else None
    if run is None or worker is None or hub is None:
        return False
    with _lock:
        run.token += 1
        run.state = PARKED
        _counts[ACTIVE] -= 1
        _counts[PARKED] += 1
        run.timer = Timer(functools.partial(_resume, run, run.token))
        _push_timer(worker, seconds, run.timer)
    hub.switch()
    return True


def wake(run: Run | None) -> None:
    """Resume a parked run now (it was stopped or timed out); nothing for a run that is not parked."""
    if run is None:
        return
    with _lock:
        if run.state == PARKED and run.worker is not None:
            _make_ready(run)
            run.worker.cond.notify()


def _resume(run: Run, token: int) -> None:
    with _lock:
        if run.state == PARKED and run.token == token:
            _make_ready(run)


def _make_ready(run: Run) -> None:
    """Move a parked run to its worker's ready queue (the lock is held)."""
    worker = cast(_Worker, run.worker)
    if run.timer is not None:
        run.timer.cancel()
        run.timer = None
    run.token += 1
    run.state = ACTIVE
    _counts[PARKED] -= 1
    _counts[ACTIVE] += 1
    worker.ready.append(run)


def call_later(seconds: float, callback: Callable[[], None]) -> Timer:
    """Call ``callback`` on the engine's one timer thread after ``seconds`` (e.g. a program's TimeoutSeconds).

    Not on a worker: the deadline must pass even while the run keeps its worker busy.
    """
    global _timer_thread
    timer = Timer(callback)
    with _timer_cond:
        heapq.heappush(_timer_heap, (time.monotonic() + max(0.0, seconds), next(_sequence), timer))
        if _timer_thread is None or not _timer_thread.is_alive():
            _timer_thread = threading.Thread(target=_run_timers, name="engine-timer", daemon=True)
            _timer_thread.start()
        _timer_cond.notify()
    return timer


_timer_cond = threading.Condition()
_timer_heap: list[tuple[float, int, Timer]] = []
_timer_thread: threading.Thread | None = None


def _run_timers() -> None:
    while True:
        with _timer_cond:
            while not _timer_heap or _timer_heap[0][0] > time.monotonic():
                timeout = _timer_heap[0][0] - time.monotonic() if _timer_heap else None
                _timer_cond.wait(timeout)
            timer = heapq.heappop(_timer_heap)[2]
        timer.fire()


def _push_timer(worker: _Worker, seconds: float, timer: Timer) -> None:
    heapq.heappush(worker.timers, (time.monotonic() + max(0.0, seconds), next(_sequence), timer))


def _serve(worker: _Worker) -> None:
    worker.hub = greenlet.getcurrent()
    while True:
        due, run = _next(worker)
        for timer in due:
            timer.fire()
        if run is _STOP:
            break
        if isinstance(run, Run):
            _step(worker, run)
    _abandon(worker)


_STOP: Final = object()


def _next(worker: _Worker) -> tuple[list[Timer], Any]:
    """Due timers and the next run for ``worker``, waiting while there is neither."""
    with _lock:
        while True:
            if worker.generation != _generation:
                return [], _STOP
            now = time.monotonic()
            due: list[Timer] = []
            while worker.timers and worker.timers[0][0] <= now:
                timer = heapq.heappop(worker.timers)[2]
                if timer.callback is not None:
                    due.append(timer)
            if due:
                return due, None
            if worker.ready:
                return [], worker.ready.popleft()
            if _queue:
                run = _queue.popleft()
                run.worker = worker
                run.state = ACTIVE
                _counts[ACTIVE] += 1
                worker.runs.add(run)
                return [], run
            timeout = worker.timers[0][0] - now if worker.timers else None
            worker.idle = True
            worker.cond.wait(timeout)
            worker.idle = False


def _step(worker: _Worker, run: Run) -> None:
    """Switch to the run until it parks or ends."""
    if run.glet is None:
        run.glet = greenlet.greenlet(functools.partial(_main, run), parent=worker.hub)
        run.glet.notiflow_run = run
    run.glet.switch()
    if run.glet.dead:
        with _lock:
            run.state = DONE
            _counts[ACTIVE] -= 1
            worker.runs.discard(run)
            run.glet = None


def _main(run: Run) -> None:
    try:
        run.target()
    except Exception:
        LOG.exception("engine run %s failed", run.name)


def _abandon(worker: _Worker) -> None:
    """On shutdown, unwind the runs still parked on this worker (their finally blocks run)."""
    for run in list(worker.runs):
        if run.glet is not None and not run.glet.dead:
            try:
                run.glet.throw()
            except Exception:
                LOG.exception("engine run %s failed while stopping", run.name)
    with _lock:
        for run in worker.runs:
            run.state = DONE
        worker.runs.clear()
        if worker in _workers:
            _workers.remove(worker)


def shutdown(timeout: float = 10.0) -> None:
    """Stop every worker (parked runs are unwound, queued runs dropped); the next spawn starts afresh."""
    global _generation
    with _lock:
        _generation += 1
        workers = list(_workers)
        dropped = list(_queue)
        _queue.clear()
        for worker in workers:
            worker.cond.notify_all()
    for run in dropped:
        run.state = DONE
    deadline = time.monotonic() + timeout
    for worker in workers:
        if worker.thread is not None and worker.thread is not threading.current_thread():
            worker.thread.join(max(0.0, deadline - time.monotonic()))
    with _lock:
        _workers[:] = [worker for worker in _workers if worker.generation == _generation]
        _counts[ACTIVE] = sum(len(worker.runs) for worker in _workers)
        _counts[PARKED] = 0
