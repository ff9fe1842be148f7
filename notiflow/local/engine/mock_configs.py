"""Step Functions Local mock configs: ``StartExecution`` of ``stateMachineArn#TestCase`` runs mocked states.

The file format is Step Functions Local's ``MockConfigFile``:
``StateMachines.<name>.TestCases.<TestCase>.<State> -> <MockedResponseName>`` and
``MockedResponses.<MockedResponseName>.{"0": {"Return": ...}, "1-2": {"Throw": {"Error", "Cause"}}}``,
where the keys count the state's retries. moto's parser has the mocking machinery (MockTestCase)
but never loads a config; this module builds its test cases. A mocked ``lambda:invoke`` return
must include the ``{StatusCode, Payload}`` envelope, as in Step Functions Local.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

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


def mock_test_case_for(state_machine_name: str, test_case_name: str) -> MockTestCase:
    """moto's MockTestCase for a test case of the mock config in force."""
    config = current_mock_config()
    if config is None:
        raise MockConfigError(f"no mock config is loaded (set_mock_config or {MOCK_CONFIG_ENV})")
    machine = (config.get("StateMachines") or {}).get(state_machine_name)
    if not isinstance(machine, Mapping):
        raise MockConfigError(f"mock config has no state machine {state_machine_name!r}")
    test_case = (machine.get("TestCases") or {}).get(test_case_name)
    if not isinstance(test_case, Mapping):
        raise MockConfigError(f"mock config has no test case {test_case_name!r} for {state_machine_name!r}")
    try:
        states = [
            StateMockedResponses(
                state_name=state_name,
                mocked_response_name=response_name,
                mocked_responses=_mocked_responses(config, response_name),
            )
            for state_name, response_name in test_case.items()
        ]
        return MockTestCase(
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
