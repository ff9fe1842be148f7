"""The cost model's pieces on constructed inputs: DynamoDB sizes, history readers, pricing, the report."""

from __future__ import annotations

import inspect
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notiflow.cost import histories
from notiflow.cost.dynamodb import IndexShape, item_size, read_units, value_size, write_units
from notiflow.cost.meter import SEAMS
from notiflow.cost.model import price
from notiflow.cost.prices import PRICE_FILE, load_prices
from notiflow.cost.report import last_line, render, verdicts
from notiflow.cost.usage import Usage
from workflows.definition import load_fast_path_definition

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def _history(*steps: tuple[str, dict | None, float]) -> list[dict]:
    """Events (type, details, ms after start) in the shape GetExecutionHistory returns."""
    detail_keys = {
        "StateEntered": "stateEnteredEventDetails",
        "StateExited": "stateExitedEventDetails",
        "TaskScheduled": "taskScheduledEventDetails",
        "TaskStarted": "taskStartedEventDetails",
        "TaskSucceeded": "taskSucceededEventDetails",
        "TaskFailed": "taskFailedEventDetails",
        "ExecutionFailed": "executionFailedEventDetails",
    }
    events = []
    for index, (kind, details, ms) in enumerate(steps, start=1):
        event = {"id": index, "previousEventId": index - 1, "type": kind, "timestamp": T0 + timedelta(milliseconds=ms)}
        key = next((v for k, v in detail_keys.items() if kind.endswith(k)), None)
        if details is not None and key:
            event[key] = details
        events.append(event)
    return events


def _task(state: str, start: float, outcomes: list[tuple[str, float]], resource: str = "invoke") -> list[tuple]:
    steps: list[tuple] = [("TaskStateEntered", {"name": state, "input": "{}"}, start)]
    at = start
    for outcome, took in outcomes:
        steps.append(("TaskScheduled", {"resourceType": "lambda", "resource": resource, "parameters": "{}"}, at))
        steps.append(("TaskStarted", {"resourceType": "lambda", "resource": resource}, at))
        at += took
        if outcome == "ok":
            steps.append(("TaskSucceeded", {"resourceType": "lambda", "resource": resource, "output": "{}"}, at))
        else:
            steps.append(("TaskFailed", {"resourceType": "lambda", "resource": resource, "error": outcome}, at))
            at += 5  # a back-off, shortened by the local time scale
    steps.append(("TaskStateExited", {"name": state, "output": "{}"}, at))
    return steps


# -- DynamoDB sizes ----------------------------------------------------------------------------


def test_item_size_follows_dynamodbs_rules():
    assert value_size({"S": "héllo"}) == 6
    assert value_size({"N": "12345"}) == 4  # 5 significant digits -> 3 bytes + 1
    assert value_size({"N": "-1.5"}) == 3  # 2 digits -> 1 byte + 1, + 1 for the sign
    assert value_size({"BOOL": True}) == 1
    assert value_size({"NULL": True}) == 1
    assert value_size({"L": [{"S": "ab"}, {"N": "1"}]}) == 3 + (2 + 1) + (2 + 1)
    assert value_size({"M": {"k": {"S": "v"}}}) == 3 + (1 + 1 + 1)
    assert item_size({"notificationId": {"S": "n-1"}, "attempts": {"N": "3"}}) == 14 + 3 + 8 + 2


def test_write_units_charge_the_larger_item_and_at_least_one():
    small = {"id": {"S": "x"}}
    big = {"id": {"S": "x"}, "blob": {"S": "a" * 1500}}
    assert write_units(None, small) == 1
    assert write_units(small, big) == 2  # growing: the item after
    assert write_units(big, small) == 2  # shrinking: the item before
    assert write_units(big, big) == 2  # a failed condition: the item it checked
    assert read_units(None, consistent=True) == 1.0
    assert read_units({"id": {"S": "a" * 5000}}, consistent=True) == 2.0
    assert read_units({"id": {"S": "a" * 5000}}, consistent=False) == 1.0


def test_a_sparse_index_is_written_only_when_it_holds_the_item():
    index = IndexShape.from_description(
        {
            "IndexName": "byOpsStatus",
            "KeySchema": [{"AttributeName": "opsStatus", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    )
    keys = ["notificationId"]
    plain = {"notificationId": {"S": "n"}, "status": {"S": "PROCESSING"}}
    failed = {**plain, "status": {"S": "FAILED"}, "opsStatus": {"S": "FAILED"}}
    processing = {**plain, "opsStatus": {"S": "PROCESSING"}}
    assert index.write_units(None, plain, keys) == 0  # never in the index
    assert index.write_units(plain, failed, keys) == 1  # enters it
    assert index.write_units(failed, plain, keys) == 1  # leaves it
    assert index.write_units(processing, failed, keys) == 2  # key changes: delete + put
    assert index.write_units(failed, {**failed, "status": {"S": "X"}}, keys) == 0  # nothing projected changed


# -- history readers ---------------------------------------------------------------------------


def test_transitions_count_states_entered_and_every_retry():
    events = _history(
        ("ExecutionStarted", None, 0),
        ("ChoiceStateEntered", {"name": "Route"}, 0),
        ("ChoiceStateExited", {"name": "Route"}, 1),
        *_task("Deliver", 1, [("DeliveryRetryableError", 50), ("DeliveryRetryableError", 50), ("ok", 50)]),
        *_task("RecordSuccess", 200, [("ok", 10)]),
        ("ExecutionSucceeded", None, 220),
    )
    assert histories.states_entered(events) == ["Route", "Deliver", "RecordSuccess"]
    assert histories.transitions(events) == 3 + 2
    assert [(r.state, r.error, r.number) for r in histories.retries(events)] == [
        ("Deliver", "DeliveryRetryableError", 1),
        ("Deliver", "DeliveryRetryableError", 2),
    ]
    calls = histories.task_calls(events)
    assert [(c.state, c.failed, round(c.duration_ms)) for c in calls] == [
        ("Deliver", True, 50),
        ("Deliver", True, 50),
        ("Deliver", False, 50),
        ("RecordSuccess", False, 10),
    ]


def test_express_runs_bill_full_scale_durations_in_100_ms_and_64_mb_steps():
    events = _history(
        ("ExecutionStarted", None, 0),
        *_task("Deliver", 0, [("DeliveryRetryableError", 120), ("ok", 130)]),
        ("ExecutionSucceeded", None, 260),
    )
    definition = load_fast_path_definition()
    assert histories.waited_ms(events) == pytest.approx(5)
    # The quick retrier: 2 s bound, FULL jitter -> 1 s expected for the first retry.
    assert histories.full_scale_duration_ms(events, definition, 0.0001) == pytest.approx(255 + 1000)
    assert histories.full_scale_duration_ms(events, definition, 1.0) == pytest.approx(260)
    billing = histories.express_billing(1255, step_ms=100, memory_mb=64)
    assert (billing.billed_ms, billing.billed_memory_mb) == (1300, 64)
    assert billing.gb_seconds == pytest.approx(1.3 * 64 / 1024)
    reported = histories.express_billing(
        1255,
        step_ms=100,
        memory_mb=64,
        billing_details={"billedDurationInMilliseconds": 1400, "billedMemoryUsedInMB": 128},
    )
    assert (reported.billed_ms, reported.billed_memory_mb, reported.measured_memory) == (1400, 128, True)


def test_execution_logs_by_level_leave_execution_data_out():
    events = _history(
        ("ExecutionStarted", None, 0),
        *_task("Deliver", 0, [("DeliveryPermanentError", 10)]),
        ("ExecutionFailed", {"error": "DeliveryPermanentError", "cause": "secret payload"}, 20),
    )
    arn = "arn:aws:states:us-east-1:123456789012:execution:notiflow-fast-path:n-1"
    sizes = {level: histories.log_event_bytes(events, arn, level) for level in histories.LOG_LEVELS}
    assert sizes["OFF"] == 0 < sizes["FATAL"] < sizes["ERROR"] < sizes["ALL"]
    logged = [histories.log_event(e, arn) for e in events if histories.logged_at(e["type"], "ERROR")]
    assert [json.loads(line)["type"] for line in logged] == ["TaskFailed", "ExecutionFailed"]
    assert all("secret payload" not in line and '"input"' not in line for line in logged)


# -- prices, model, report ---------------------------------------------------------------------


def test_the_price_file_names_a_source_for_every_figure(tmp_path: Path):
    prices = load_prices()
    assert prices.region == "us-east-1"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prices.read_on)
    assert all(p.source for p in prices.prices.values())
    assert all(a.source for a in prices.assumptions.values())
    assert prices.usd("stepfunctions.standard.transition") * 1_000_000 == pytest.approx(25)
    broken = json.loads(PRICE_FILE.read_text())
    del broken["prices"]["sqs.request"]
    (tmp_path / "prices.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"sqs\.request"):
        load_prices(tmp_path / "prices.json")


def test_seven_transitions_cost_175_per_million_and_the_last_line_reads_both_modes():
    prices = load_prices()
    standard = Usage(mode="standard", notifications=1000, standard_transitions=7000)
    fast = Usage(mode="fast-path", notifications=1000, express_requests=1000, express_gb_seconds=1000 * 0.1 * 64 / 1024)
    fast.provenance["lambda"] = "derived: ingest not run"
    costs = {"standard": price(standard, prices), "fast-path": price(fast, prices)}
    assert costs["standard"].step_functions == pytest.approx(175)
    assert costs["fast-path"].step_functions == pytest.approx(1 + 0.1 * 0.0625 * 16.67)
    line = last_line(costs)
    assert re.fullmatch(
        r"per million: fast-path Step Functions \$\d+\.\d\d, all-in \$\d+\.\d\d; "
        r"standard Step Functions \$\d+\.\d\d, all-in \$\d+\.\d\d",
        line,
    )
    assert [(v.target, v.met) for v in verdicts(costs)] == [
        ("fast-path Step Functions", True),
        ("fast-path all-in", True),
    ]
    text = render(costs, prices)
    assert text.splitlines()[-1] == line
    assert "* fast-path lambda: derived: ingest not run" in text


def test_the_meters_moto_seams_have_the_expected_shape():
    for owner, name, params in SEAMS:
        method = owner.__dict__.get(name)
        assert callable(method), f"{owner.__name__}.{name} is gone"
        if params is not None:
            assert ", ".join(inspect.signature(method).parameters) == params, f"{owner.__name__}.{name} changed"


def test_the_express_machine_is_found_beside_the_standard_one_for_any_prefix():
    from notiflow.cost.read import fast_path_arn

    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:"
    assert fast_path_arn(arn + "notiflow-delivery") == arn + "notiflow-fast-path"
    assert fast_path_arn(arn + "notiflow-prod-delivery") == arn + "notiflow-prod-fast-path"
