"""Notiflow's local Step Functions engine: moto 5.2.5's interpreter with the real handlers in-process.

moto in execution mode interprets the real ASL. The engine adapts it, one module per concern:

- :mod:`.runtime`: the in-process Lambda runtime (handler calls, ``Sandbox.Timedout``, Environment).
- :mod:`.clock`: the time scale of Retry back-offs and Wait states; a waiting run is parked.
- :mod:`.scheduler`: a bounded pool of worker threads runs executions, parked runs hold none.
- :mod:`.executions`: the local Execution on the pool, StartExecution, snapshots, listeners.
- :mod:`.mock_configs`: Step Functions Local ``MockConfigFile`` test cases (``arn#TestCase``).
- :mod:`.redrive`: RedriveExecution and ``$$.Execution.RedriveCount``.
- :mod:`.express`: ``type=EXPRESS`` runs, StartSyncExecution, the ``states:startExecution`` task.
- :mod:`.storage`: atomic conditional writes in moto's DynamoDB.
- :mod:`.retention`: finished runs beyond the retention are evicted; moto tracks no Items or Messages.
- :mod:`.speed`: parse once, call moto in-process, share snapshots (each switchable for benchmarks).
- :mod:`.server`: moto's HTTP server, the execution-mode switch, the reset of every backend.

:mod:`.internals` is the one table of the moto internals all of them patch or use; :func:`install`
and :func:`uninstall` apply and remove exactly its rows, and ``tests/local/test_engine_guard.py``
checks each row against moto. Nothing is patched at import: a stack installs the engine when it
starts, the pytest plugin when pytest configures. Further concerns (fault injection at the seams
:func:`runtime.invoke_moto_function`, the DynamoDB backend and the SQS poller, API-fidelity fixes)
are new modules with their own rows.

Retention: the engine keeps the most recent ``retention`` finished runs (1,000 by default, the
``StackSettings.execution_retention`` setting); older ones answer ``ExecutionDoesNotExist`` like a
run past its retention period on AWS, while their DynamoDB records stay (see :mod:`.retention`).
Express runs have their own budget (``StackSettings.express_retention``, also 1,000 by default).
"""

from __future__ import annotations

from moto.core import DEFAULT_ACCOUNT_ID

from notiflow.local.engine import clock, faults, retention, runtime, scheduler, speed
from notiflow.local.engine.clock import WaitRecord, clear_recent_waits, configure_time, recent_waits, time_scale
from notiflow.local.engine.executions import LocalExecution, add_execution_listener
from notiflow.local.engine.internals import MOTO_VERSION, PATCHES, USES
from notiflow.local.engine.mock_configs import (
    MOCK_CONFIG_ENV,
    MockConfigError,
    current_mock_config,
    mock_test_case_for,
    set_mock_config,
)
from notiflow.local.engine.patching import install, is_installed, uninstall
from notiflow.local.engine.redrive import ExecutionNotRedrivableError
from notiflow.local.engine.runtime import (
    EnvironmentConflictError,
    Invocation,
    apply_function_environment,
    cold_start,
    invoke_function,
    restore_environment,
)
from notiflow.local.engine.server import MotoServer, reset_backends, set_execution_mode, start_server, stop_server

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "MOCK_CONFIG_ENV",
    "MOTO_VERSION",
    "PATCHES",
    "USES",
    "EnvironmentConflictError",
    "ExecutionNotRedrivableError",
    "Invocation",
    "LocalExecution",
    "MockConfigError",
    "MotoServer",
    "WaitRecord",
    "add_execution_listener",
    "apply_function_environment",
    "clear_recent_waits",
    "cold_start",
    "configure",
    "configure_time",
    "current_mock_config",
    "faults",
    "install",
    "invoke_function",
    "is_installed",
    "mock_test_case_for",
    "recent_waits",
    "reset",
    "reset_backends",
    "restore_environment",
    "set_execution_mode",
    "set_mock_config",
    "shutdown",
    "start_server",
    "stop_server",
    "time_scale",
    "uninstall",
]


def configure(
    *,
    time_scale: float = 1.0,
    max_wait_seconds: float | None = None,
    workers: int = scheduler.DEFAULT_WORKERS,
    retention_limit: int | None = retention.DEFAULT_LIMIT,
    express_retention_limit: int | None = retention.DEFAULT_LIMIT,
) -> None:
    """Settings of the engine for the stack about to run (defaults: real time, 4 workers, 1,000 runs of each kind)."""
    clock.configure_time(time_scale, max_wait_seconds)
    scheduler.configure(workers)
    retention.configure(retention_limit, express_retention_limit)


def reset() -> None:
    """Empty every moto backend and forget what the engine knew about them (runs, parsed programs)."""
    reset_backends()
    retention.reset()
    speed.clear_caches()


def shutdown(timeout: float = 10.0) -> None:
    """Stop the worker pool (parked runs are unwound) and undo the handlers' process environment."""
    scheduler.shutdown(timeout)
    runtime.restore_environment()
