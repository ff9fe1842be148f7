"""Step Functions Local mock configs: ``StartExecution`` of ``stateMachineArn#TestCase`` runs mocked states.

The file format is Step Functions Local's ``MockConfigFile``:
``StateMachines.<name>.TestCases.<TestCase>.<State> -> <MockedResponseName>`` and
``MockedResponses.<MockedResponseName>.{"0": {"Return": ...}, "1-2": {"Throw": {"Error", "Cause"}}}``,
where the keys number the state's invocations. moto's parser has the mocking machinery
(MockTestCase) but never loads a config; this module builds its test cases and makes them behave as
Step Functions Local's, because users bring suites written for it:

- The response index counts every invocation of the state in the run, as AWS documents it
  ("the successful result or error output for each invocation of a mocked Task state"): retries,
  re-entries through a Choice loop, and Map iterations (in their order, hence ``MaxConcurrency: 1``
  for predictable responses) each take the next response; moto picks by the state's retry count, so
  a polling loop got response "0" for ever. A state invoked more often than it has responses fails
  the run, as Step Functions Local does.
- A mocked ``lambda:invoke`` return is the Invoke response (``{StatusCode, Payload}``); for a Task
  whose Resource is a function ARN, a Return without ``Payload`` is the function's result itself
  (moto failed with an internal ``KeyError: 'Payload'``).
- ``aws-sdk`` task events name ``resourceType: "aws-sdk"`` and ``resource: "service:action"``, as
  Step Functions Local and AWS histories do (moto wrote ``aws-sdk:service`` and ``action``).
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, cast

from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
from moto.stepfunctions.parser.mocking.mock_config import (
    MockedResponse,
    MockedResponseReturn,
    MockedResponseThrow,
    MockTestCase,
    StateMockedResponses,
)

MOCK_CONFIG_ENV: Final = "SFN_MOCK_CONFIG"
"""Same variable Step Functions Local reads: path of the mock config file."""

_mock_config: dict[str, Any] | None = None
_file_cache: dict[tuple[str, float], dict[str, Any]] = {}


class MockConfigError(ValueError):
    """The mock config file is malformed or lacks the requested test case."""


def set_mock_config(config: Mapping[str, Any] | str | os.PathLike[str] | None) -> None:
    """Use this mock config (a mapping or a JSON file path) for ``arn#TestCase`` starts; None clears it.

    Without one, the file named by ``SFN_MOCK_CONFIG`` is used, as Step Functions Local does.
    """
    global _mock_config
    if config is None:
        _mock_config = None
    elif isinstance(config, Mapping):
        _mock_config = json.loads(json.dumps(config))
    else:
        _mock_config = json.loads(Path(config).read_text(encoding="utf-8"))


def current_mock_config() -> dict[str, Any] | None:
    """The mock config in force: the one set explicitly, else the file named by SFN_MOCK_CONFIG."""
    if _mock_config is not None:
        return _mock_config
    path = os.environ.get(MOCK_CONFIG_ENV)
    if not path:
        return None
    key = (path, Path(path).stat().st_mtime)
    if key not in _file_cache:
        _file_cache[key] = json.loads(Path(path).read_text(encoding="utf-8"))
    return _file_cache[key]


def _parse_range(text: str) -> tuple[int, int]:
    parts = text.strip().split("-")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise MockConfigError(f"mocked response key {text!r} is not a number or a range like '1-2'") from None
    if len(numbers) == 1:
        return numbers[0], numbers[0]
    if len(numbers) == 2 and 0 <= numbers[0] <= numbers[1]:
        return numbers[0], numbers[1]
    raise MockConfigError(f"mocked response key {text!r} is not a number or a range like '1-2'")


class CountingTestCase(MockTestCase):
    """A test case of one run: counts the invocations of each mocked state to pick its next response."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._invocations: Counter[str] = Counter()
        self._lock = threading.Lock()

    def next_invocation(self, state_name: str) -> int:
        """The 0-based number of this invocation of ``state_name`` in the run."""
        with self._lock:
            number = self._invocations[state_name]
            self._invocations[state_name] += 1
            return number


def current_mocked_response(self: Any) -> MockedResponse:
    """Environment.get_current_mocked_response by invocation count (replaces moto's retry-count pick)."""
    if not self.is_mocked_mode():
        raise RuntimeError("Cannot retrieve mocked response: execution is not operating in mocked mode")
    state_name = self.next_state_name
    test_case = self.mock_test_case
    responses = test_case.state_mocked_responses[state_name].mocked_responses
    if isinstance(test_case, CountingTestCase):
        number = test_case.next_invocation(state_name)
    else:
        number = self.states.context_object.context_object_data["State"]["RetryCount"]
    if number >= len(responses):
        raise RuntimeError(f"No mocked response for invocation {number} of state '{state_name}'")
    return cast(MockedResponse, responses[number])


def _states(machine: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every (name, state) of a definition, inside Map and Parallel states too."""
    for name, state in (machine.get("States") or {}).items():
        if not isinstance(state, Mapping):
            continue
        yield name, state
        for field in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(field), Mapping):
                yield from _states(state[field])
        for branch in state.get("Branches") or []:
            if isinstance(branch, Mapping):
                yield from _states(branch)


def _function_arn_states(definition: str | None) -> set[str]:
    """States whose Resource is a Lambda function ARN (their mocked Return may be the bare result)."""
    try:
        machine = json.loads(definition or "{}")
    except ValueError:
        return set()
    return {
        name
        for name, state in _states(machine)
        if str(state.get("Resource", "")).startswith("arn:") and ":lambda:" in str(state.get("Resource", ""))
    }


def _as_invoke_response(response: MockedResponse) -> MockedResponse:
    if isinstance(response, MockedResponseReturn):
        payload = response.payload
        if not (isinstance(payload, Mapping) and "Payload" in payload):
            return MockedResponseReturn(
                range_start=response.range_start,
                range_end=response.range_end,
                payload={"StatusCode": 200, "Payload": payload},
            )
    return response


def _mocked_responses(config: Mapping[str, Any], response_name: str) -> list[MockedResponse]:
    raw = (config.get("MockedResponses") or {}).get(response_name)
    if not isinstance(raw, Mapping) or not raw:
        raise MockConfigError(f"MockedResponses has no entry {response_name!r}")
    responses: list[MockedResponse] = []
    for key, spec in raw.items():
        start, end = _parse_range(key)
        if not isinstance(spec, Mapping) or ("Return" in spec) == ("Throw" in spec):
            raise MockConfigError(f"{response_name}[{key}] must hold exactly one of Return or Throw")
        if "Return" in spec:
            responses.append(MockedResponseReturn(range_start=start, range_end=end, payload=spec["Return"]))
            continue
        throw = spec["Throw"]
        if not isinstance(throw, Mapping) or "Error" not in throw:
            raise MockConfigError(f"{response_name}[{key}].Throw needs an Error")
        responses.append(
            MockedResponseThrow(
                range_start=start, range_end=end, error=str(throw["Error"]), cause=str(throw.get("Cause", ""))
            )
        )
    return responses


def mock_test_case_for(state_machine_name: str, test_case_name: str, definition: str | None = None) -> MockTestCase:
    """A MockTestCase for one run of a test case of the mock config in force (``definition``: the machine's ASL)."""
    config = current_mock_config()
    if config is None:
        raise MockConfigError(f"no mock config is loaded (set_mock_config or {MOCK_CONFIG_ENV})")
    machine = (config.get("StateMachines") or {}).get(state_machine_name)
    if not isinstance(machine, Mapping):
        raise MockConfigError(f"mock config has no state machine {state_machine_name!r}")
    test_case = (machine.get("TestCases") or {}).get(test_case_name)
    if not isinstance(test_case, Mapping):
        raise MockConfigError(f"mock config has no test case {test_case_name!r} for {state_machine_name!r}")
    function_states = _function_arn_states(definition)
    try:
        states = []
        for state_name, response_name in test_case.items():
            responses = _mocked_responses(config, response_name)
            if state_name in function_states:
                responses = [_as_invoke_response(response) for response in responses]
            states.append(
                StateMockedResponses(
                    state_name=state_name, mocked_response_name=response_name, mocked_responses=responses
                )
            )
        return CountingTestCase(
            state_machine_name=state_machine_name, test_case_name=test_case_name, state_mocked_responses_list=states
        )
    except (RuntimeError, ValueError) as exc:
        raise MockConfigError(str(exc)) from exc


def keep_mocked_error_name(from_error: Callable[[Any, Any, Exception], FailureEvent]) -> Callable[..., FailureEvent]:
    """Wrap StateTaskServiceDynamoDB._from_error: a mocked Throw keeps its error name.

    moto turns any non-ClientError of a DynamoDB task into ``DynamoDB.AmazonDynamoDBException``.
    """

    def dynamodb_from_error(self: Any, env: Any, ex: Exception) -> FailureEvent:
        if isinstance(ex, FailureEventException):
            return ex.failure_event
        return from_error(self, env, ex)

    return dynamodb_from_error


def sdk_resource_type(self: Any) -> str:
    """StateTaskServiceAwsSdk._get_sfn_resource_type: ``aws-sdk``."""
    return str(self.resource.service_name)


def sdk_resource(self: Any) -> str:
    """StateTaskServiceAwsSdk._get_sfn_resource: ``service:action``."""
    return f"{self.resource.api_name}:{self.resource.api_action}"
