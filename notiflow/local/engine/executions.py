"""Standard executions on the worker pool: the local Execution, its worker, snapshots, listeners.

moto's ``start_execution`` builds :class:`LocalExecution` (the engine swaps the class it names), so
name idempotency, input checks and the ARN stay moto's. The local execution knows its Step Functions
Local mock test case (``stateMachineArn#TestCase``), carries ``$$.Execution.RedriveCount`` and can be
redriven (:mod:`~notiflow.local.engine.redrive`). Its worker runs on the pool
(:mod:`~notiflow.local.engine.scheduler`): the program and every task attempt are evaluated inline,
with the program's TimeoutSeconds on a timer and a task's TimeoutSeconds checked when it returns.
Executions share one snapshot of their state machine per revision instead of a deep copy each.
Each status change (start, redrive, end) goes to :mod:`~notiflow.local.engine.events`. When a run
ends, :mod:`~notiflow.local.engine.retention` may evict old runs, then listeners hear of it.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Final, cast

from moto.stepfunctions.exceptions import InvalidName
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.api import StateMachineType
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.evaluation_details import EvaluationDetails
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.mocking.mock_config import MockTestCase

from notiflow.local.engine import events, mock_configs, redrive, retention, scheduler, speed

LOG = logging.getLogger(__name__)

_mock_test_case: contextvars.ContextVar[MockTestCase | None] = contextvars.ContextVar(
    "notiflow_mock_test_case", default=None
)


# ---------------------------------------------------------------------------------------------
# Listeners
# ---------------------------------------------------------------------------------------------

_listeners: list[Callable[[Execution], None]] = []


def add_execution_listener(listener: Callable[[Execution], None]) -> Callable[[], None]:
    """Call ``listener(execution)`` whenever a run ends (also after a redrive); returns a remover.

    Lets in-process callers (benchmarks, tests) wait for runs without polling the API.
    """
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def _finished(execution: Execution) -> None:
    events.run_ended(execution)
    if isinstance(execution, LocalExecution):
        execution.ended()
    retention.finished(execution)
    for listener in list(_listeners):
        try:
            listener(execution)
        except Exception:
            LOG.exception("execution listener failed")


# ---------------------------------------------------------------------------------------------
# The local execution and its worker
# ---------------------------------------------------------------------------------------------


class InlineProgram:
    """Stands in for the Program moto's worker evaluates: no thread, TimeoutSeconds on a timer."""

    def __init__(self, program: Program, worker: LocalExecutionWorker) -> None:
        self.program = program
        self.worker = worker

    def eval(self, env: Environment) -> None:
        """Program.eval without its thread: start at StartAt."""
        env.next_state_name = self.program.start_at.start_at_name
        self.worker.apply_pending_stop(env)
        run_program(self.program, env, self.worker)


def run_program(program: Program, env: Environment, worker: LocalExecutionWorker) -> None:
    """Evaluate ``program`` from ``env.next_state_name`` on this thread, timing out as Program.eval does.

    The run times out at the definition's TimeoutSeconds or at its workflow type's longest run
    (``max_duration_seconds``: an Express run's five minutes), whichever comes first.
    """
    limits: list[float | None] = [program.timeout_seconds.timeout_seconds if program.timeout_seconds else None]
    limits.append(worker.max_duration_seconds)
    timeout = min((limit for limit in limits if limit), default=None)
    timer = None
    if timeout:

        def time_out() -> None:
            env.set_timed_out()
            scheduler.wake(worker.run)

        timer = scheduler.call_later(timeout, time_out)
    try:
        if env.is_running():
            EvalComponent.eval(program, env)
        else:
            # Stopped before its first state: only the terminal event is written, as moto would.
            program._eval_body(env)
    finally:
        if timer is not None:
            timer.cancel()


class LocalExecutionWorker(ExecutionWorker):
    """ExecutionWorker on the pool, with a cached program, RedriveCount and redrive."""

    max_duration_seconds: float | None = None
    """The longest run of the workflow type (None: a Standard run's year is not enforced)."""

    def __init__(self, *, execution: LocalExecution, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.execution = execution
        self.run: scheduler.Run | None = None
        self._pending_stop: tuple[Any, str | None, str | None] | None = None

    def _get_evaluation_entrypoint(self) -> Any:
        program = speed.parse_program(self._evaluation_details.state_machine_details.definition)
        return InlineProgram(program, self) if scheduler.current_run() is not None else program

    def _get_evaluation_environment(self) -> Environment:
        env = super()._get_evaluation_environment()
        execution_data = env.states.context_object.context_object_data["Execution"]
        execution_data["RedriveCount"] = self.execution.redrive_count  # type: ignore[typeddict-unknown-key]
        if self.execution.redrive_date is not None:
            execution_data["RedriveTime"] = self.execution.redrive_date.isoformat()  # type: ignore[typeddict-unknown-key]
        return env

    def start(self) -> None:
        events.status_changed(self.execution)
        self.run = scheduler.spawn(self._execution_logic, self.execution.name)

    def _execution_logic(self) -> None:
        try:
            super()._execution_logic()
        finally:
            _finished(self.execution)

    def stop(self, stop_date: Any, error: str | None, cause: str | None) -> None:
        """StopExecution: also for a run still queued, and waking a parked one."""
        self._pending_stop = (stop_date, error, cause)
        if self.env is not None:
            super().stop(stop_date=stop_date, error=error, cause=cause)
        scheduler.wake(self.run)

    def apply_pending_stop(self, env: Environment) -> None:
        """A stop requested before the run had an Environment takes effect as it starts."""
        if self._pending_stop is not None:
            stop_date, error, cause = self._pending_stop
            env.set_stop(stop_date=stop_date, cause=cause, error=error)

    def redrive(self, resume_at: str, state_input: Any, redrive_count: int) -> None:
        """Continue the run at ``resume_at`` with the input that state had, in the same history."""
        self._pending_stop = None
        self.env = redrive.continued_environment(self, resume_at, state_input, redrive_count)
        events.status_changed(self.execution)
        self.run = scheduler.spawn(self._redriven_logic, f"{self.execution.name} (redrive {redrive_count})")

    def _redriven_logic(self) -> None:
        try:
            env = cast(Environment, self.env)
            self.apply_pending_stop(env)
            run_program(speed.parse_program(self._evaluation_details.state_machine_details.definition), env, self)
            self._execution_communication.terminated()
        finally:
            _finished(self.execution)


class LocalExecution(redrive.Redrivable, Execution):
    """A Standard execution on the pool that knows its mock test case and can be redriven."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mock_test_case = _mock_test_case.get()
        self.owner_executions: list[Any] | None = None

    is_express = False
    worker_class: type[LocalExecutionWorker] = LocalExecutionWorker
    """What runs this execution: the Express subclass names one with Express's time limit."""

    def ended(self) -> None:
        """The run ended (its status is final until a redrive); called before retention and listeners."""

    def evaluation_details(self) -> EvaluationDetails:
        """What the worker evaluates: the execution, its state machine snapshot, the account."""
        return EvaluationDetails(
            aws_execution_details=self._get_start_aws_execution_details(),
            execution_details=self.get_start_execution_details(),
            state_machine_details=self.get_start_state_machine_details(),
        )

    def _get_start_execution_worker(self) -> LocalExecutionWorker:
        return self.worker_class(
            execution=self,
            evaluation_details=self.evaluation_details(),
            exec_comm=self._get_start_execution_worker_comm(),
            cloud_watch_logging_session=self._cloud_watch_logging_session,
            activity_store=self._activity_store,
            mock_test_case=self.mock_test_case,
        )


# ---------------------------------------------------------------------------------------------
# StartExecution, snapshots, inline tasks
# ---------------------------------------------------------------------------------------------


def start_execution(original: Callable[..., Execution]) -> Callable[..., Execution]:
    """Wrap the parser backend's start_execution: ``arn#TestCase``, validated names, never a None name."""

    def start(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Execution:
        base_arn, _, test_case_name = state_machine_arn.partition("#")
        if name:
            self._validate_name(name)
        state_machine = self.describe_state_machine(base_arn)
        mock_test_case = None
        if test_case_name:
            try:
                mock_test_case = mock_configs.mock_test_case_for(
                    state_machine.name, test_case_name, state_machine.definition
                )
            except (mock_configs.MockConfigError, OSError) as exc:
                raise InvalidName(f"Invalid mock test case name '{test_case_name}': {exc}") from None
        token = _mock_test_case.set(mock_test_case)
        try:
            if getattr(state_machine, "type", None) == StateMachineType.EXPRESS:
                # Express names do not deduplicate; the run gets an Express ARN (see .express).
                from notiflow.local.engine import express

                return express.start_express(self, state_machine, name, execution_input, trace_header)
            execution = original(self, base_arn, name or str(uuid.uuid4()), execution_input, trace_header)
        finally:
            _mock_test_case.reset(token)
        if isinstance(execution, LocalExecution) and execution.owner_executions is None:
            execution.owner_executions = state_machine.executions
        return execution

    return start


class _SnapshotCopy:
    """Stands in for the ``copy`` module inside moto's parser models.

    ``start_execution`` deep-copies the state machine so a later UpdateStateMachine does not change
    a running execution. One shallow snapshot per revision does the same: moto replaces (never
    mutates) the attributes an update changes, and the snapshot has no executions of its own.
    """

    def __init__(self) -> None:
        self._snapshots: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if not speed.options.share_snapshots or not isinstance(value, StateMachine):
            return copy.deepcopy(value, memo)
        revision = (value.definition, value.roleArn, value.update_date, value.type, value.loggingConfiguration)
        cached = self._snapshots.get(value)
        if cached is not None and cached[0] == revision:
            return cached[1]
        snapshot = copy.copy(value)
        snapshot.executions = []
        self._snapshots[value] = (revision, snapshot)
        return snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


SNAPSHOT_COPY: Final = _SnapshotCopy()


def evaluate_with_timeout(original: Callable[[Any, Environment], None]) -> Callable[[Any, Environment], None]:
    """Wrap ExecutionState._evaluate_with_timeout: on the pool, the task runs inline instead of on a thread.

    Mirrors moto's method (its source hash is in the table): the task is evaluated in a frame; a task
    that overran TimeoutSeconds fails with EvalTimeoutError (States.Timeout), as it would have been cut
    off at that moment; otherwise its exception is re-raised or its output goes through Assign,
    ResultSelector and ResultPath.
    """

    def evaluate(self: Any, env: Environment) -> None:
        if scheduler.current_run() is None:
            original(self, env)
            return
        self.timeout.eval(env=env)
        timeout_seconds: int = env.stack.pop()
        frame: Environment = env.open_frame()
        frame.states.reset(input_value=env.states.get_input())
        frame.stack = copy.deepcopy(env.stack)
        started = time.monotonic()
        try:
            self._eval_execution(frame)
            failure: Exception | None = None
        except Exception as exc:
            failure = exc
        finished_on_time = time.monotonic() - started <= timeout_seconds
        frame.set_ended()
        env.close_frame(frame)
        if not finished_on_time:
            raise EvalTimeoutError()
        if failure is not None:
            raise failure
        env.stack.append(frame.stack[-1])
        if not self._is_language_query_jsonpath():
            env.states.set_result(frame.stack[-1])
        if self.assign_decl:
            self.assign_decl.eval(env=env)
        if self.result_selector:
            self.result_selector.eval(env=env)
        if self.result_path:
            self.result_path.eval(env)
        else:
            env.states.reset(input_value=env.stack.pop())

    return evaluate
