"""pytest plugin for tests that drive the embedded stack; register with
``pytest_plugins = ["notiflow.local.fixtures"]`` in the top-level conftest.

Fixtures: ``local_stack_settings`` (override per module), ``local_stack`` (module-scoped running
:class:`EmbeddedStack` with a small time scale), ``sfn_mock_config_source`` and ``sfn_mock_config``
(Step Functions Local mock test cases, addressed ``stateMachineArn#TestCase``).

The stack is module-scoped on purpose: unit tests using ``mock_aws`` reset moto's process-global
backends, so a stack must not outlive the module that started it.

Helpers: :func:`wait_for_execution` and :func:`wait_for_item` (bounded waits),
:func:`execution_history`, :func:`execution_history_states` (states entered, retries, errors).

The plugin installs the local engine when pytest configures (and removes it when pytest ends),
so tests using plain ``mock_aws`` get the same moto (atomic conditional writes, in-process Lambda)
as the stack; importing this module patches nothing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import pytest

from lambdas.shared.constants import FINISHED_EXECUTION_STATUSES
from notiflow.local import engine
from notiflow.local.stack import EmbeddedStack, StackSettings
from notiflow.shared.waiting import wait_until

TEST_TIME_SCALE: Final = 0.0001
"""The production delivery schedule (about a day) shrinks to seconds."""
TEST_MAX_WAIT_SECONDS: Final = 0.02
"""And no single wait exceeds 20 ms, so 24 retries take about half a second."""
_SCHEDULED: Final = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
_FAILED: Final = frozenset({"TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "LambdaFunctionTimedOut"})


def stack_settings_for_tests(**overrides: Any) -> StackSettings:
    """Settings for tests: tiny waits, short HTTP timeouts, quick SQS redelivery, a poller that stops at once."""
    defaults: dict[str, Any] = {
        "time_scale": TEST_TIME_SCALE,
        "max_wait_seconds": TEST_MAX_WAIT_SECONDS,
        "connect_timeout_seconds": 1.0,
        "read_timeout_seconds": 2.0,
        "queue_visibility_timeout_seconds": 2,
        "poller_wait_seconds": 0,
    }
    defaults.update(overrides)
    return StackSettings(**defaults)


# ---------------------------------------------------------------------------------------------
# Bounded waits and history helpers
# ---------------------------------------------------------------------------------------------


def wait_for_execution(
    client: Any, execution_arn: str, timeout: float = 30.0, interval: float = 0.05
) -> dict[str, Any]:
    """DescribeExecution once the run is no longer RUNNING; WaitTimeoutError (a TimeoutError) after ``timeout``.

    An execution that does not exist yet (the poller has not started it) is waited for too.
    """

    def describe() -> dict[str, Any] | None:
        try:
            return dict(client.describe_execution(executionArn=execution_arn))
        except client.exceptions.ExecutionDoesNotExist:
            return None

    def state(last: dict[str, Any] | None) -> str:
        return f"{execution_arn} to finish; it " + ("does not exist" if last is None else f"is still {last['status']}")

    return cast(
        dict[str, Any],
        wait_until(
            describe,
            lambda last: last is not None and last["status"] in FINISHED_EXECUTION_STATUSES,
            timeout=timeout,
            interval=interval,
            describe=state,
        ),
    )


def wait_for_item(
    dynamodb: Any,
    table_name: str,
    key: Mapping[str, Any],
    predicate: Callable[[dict[str, Any]], bool] = lambda item: True,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> dict[str, Any]:
    """GetItem (low-level client) until ``predicate(item)`` holds; WaitTimeoutError after ``timeout``."""
    item = wait_until(
        lambda: dynamodb.get_item(TableName=table_name, Key=dict(key), ConsistentRead=True).get("Item"),
        lambda found: found is not None and predicate(found),
        timeout=timeout,
        interval=interval,
        describe=lambda last: f"{table_name} item {dict(key)} to reach the expected state; last: {last}",
    )
    return cast(dict[str, Any], item)


def execution_history(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every history event of a run, oldest first (follows nextToken)."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(10_000):
        request: dict[str, Any] = {"executionArn": execution_arn}
        if token:
            request["nextToken"] = token
        page = client.get_execution_history(**request)
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events
    raise RuntimeError("execution history did not end")


@dataclass(frozen=True)
class HistorySummary:
    """What a run did, from its history: entered states in order, retries and errors per state."""

    entered: list[str]
    retries: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    redrives: int = 0
    outcome: str | None = None

    def attempts(self, state: str) -> int:
        """Times the state's task was scheduled (first attempt plus retries, over all entries)."""
        return self.entered.count(state) + self.retries[state]


def execution_history_states(history: list[dict[str, Any]]) -> HistorySummary:
    """Summarise a history: state names entered, retries counted per state, task errors by state.

    A retry is a task scheduled again within the same entry of a state, which is how Step
    Functions records Retry; re-entering a state through a loop counts as a new entry instead.
    """
    entered: list[str] = []
    retries: Counter[str] = Counter()
    errors: list[tuple[str, str]] = []
    redrives = 0
    outcome: str | None = None
    current: str | None = None
    scheduled = 0
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            current = event["stateEnteredEventDetails"]["name"]
            entered.append(current)
            scheduled = 0
        elif kind in _SCHEDULED and current is not None:
            scheduled += 1
            if scheduled > 1:
                retries[current] += 1
        elif kind in _FAILED and current is not None:
            details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
            errors.append((current, str(details.get("error", ""))))
        elif kind == "ExecutionRedriven":
            redrives += 1
        if kind.startswith("Execution") and kind not in ("ExecutionStarted", "ExecutionRedriven"):
            outcome = kind
    return HistorySummary(entered=entered, retries=retries, errors=errors, redrives=redrives, outcome=outcome)


@dataclass(frozen=True)
class ExecutionResult:
    """A finished run: DescribeExecution, its history and the summary of that history."""

    description: dict[str, Any]
    history: list[dict[str, Any]]
    summary: HistorySummary

    @property
    def status(self) -> str:
        """SUCCEEDED, FAILED, TIMED_OUT or ABORTED."""
        return str(self.description["status"])

    @property
    def output(self) -> Any:
        """The parsed output of a SUCCEEDED run."""
        return json.loads(self.description["output"]) if "output" in self.description else None


def finished_execution(client: Any, execution_arn: str, timeout: float = 30.0) -> ExecutionResult:
    """Wait for a run to end and collect its description, history and summary."""
    description = wait_for_execution(client, execution_arn, timeout)
    history = execution_history(client, execution_arn)
    return ExecutionResult(description=description, history=history, summary=execution_history_states(history))


# ---------------------------------------------------------------------------------------------
# Mock config runner
# ---------------------------------------------------------------------------------------------


class MockConfigRunner:
    """Starts the stack's real state machine as ``arn#TestCase`` against the loaded mock config."""

    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack
        self.client = stack.client("stepfunctions")
        self._counter = 0

    def start(self, test_case: str, execution_input: Mapping[str, Any], name: str | None = None) -> str:
        """StartExecution of ``stateMachineArn#test_case``; returns the execution ARN."""
        self._counter += 1
        name = name or f"{test_case}-{self._counter}-{time.monotonic_ns()}"[:80]
        response = self.client.start_execution(
            stateMachineArn=f"{self.stack.state_machine_arn}#{test_case}", name=name, input=json.dumps(execution_input)
        )
        return str(response["executionArn"])

    def run(self, test_case: str, execution_input: Mapping[str, Any], timeout: float = 30.0) -> ExecutionResult:
        """Start the test case and wait for it to finish."""
        return finished_execution(self.client, self.start(test_case, execution_input), timeout)


# ---------------------------------------------------------------------------------------------
# Hooks and fixtures
# ---------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Install the local engine for the session (explicitly here, never at import)."""
    engine.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give moto back as it was."""
    engine.uninstall()


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    """Settings of the module's stack; override this fixture in a module to change them."""
    return stack_settings_for_tests()


@pytest.fixture(scope="module")
def local_stack(local_stack_settings: StackSettings) -> Iterator[EmbeddedStack]:
    """A running EmbeddedStack for the module, stopped (and the environment restored) afterwards."""
    with EmbeddedStack(local_stack_settings) as stack:
        yield stack


@pytest.fixture(scope="session")
def sfn_mock_config_source(pytestconfig: pytest.Config) -> Path:
    """The Step Functions Local mock config file; override to use another."""
    return pytestconfig.rootpath / "tests" / "workflows" / "mock_config.json"


@pytest.fixture
def sfn_mock_config(local_stack: EmbeddedStack, sfn_mock_config_source: Path) -> Iterator[MockConfigRunner]:
    """Load the mock config for this test and give a runner for ``stateMachineArn#TestCase`` starts."""
    engine.set_mock_config(sfn_mock_config_source)
    try:
        yield MockConfigRunner(local_stack)
    finally:
        engine.set_mock_config(None)
