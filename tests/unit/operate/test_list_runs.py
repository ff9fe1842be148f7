"""`runs list` semantics against moto: the operator index first, then the runs it cannot hold, newest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from lambdas.shared.constants import RecordStatus
from notiflow.operate.queries import RunFilter, list_runs
from notiflow.operate.runs import RunStore
from tests.conftest import TEST_TABLE
from tests.unit.ops_table import iso, put_record

DEFINITION = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})


@pytest.fixture
def store(ops_table: Any) -> RunStore:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(
        name="notiflow-delivery", definition=DEFINITION, roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    return RunStore(ops_table, sfn, TEST_TABLE, machine)


def run(store: RunStore, notification_id: str, *, stop: bool = True) -> str:
    """A run of the notification (moto's Step Functions: it stays RUNNING until stopped -> ABORTED)."""
    arn = store.sfn.start_execution(
        stateMachineArn=store.state_machine_arn,
        name=notification_id,
        input=json.dumps({"notificationId": notification_id}),
    )["executionArn"]
    if stop:
        store.sfn.stop_execution(executionArn=arn)
    return arn


def ids(rows: list[Any]) -> list[str]:
    return [row.notification_id for row in rows]


def test_failures_come_from_the_index_newest_first_with_their_runs(store: RunStore, ops_table: Any) -> None:
    # Given five indexed failures a minute apart, on two hosts, each with its stopped run
    for n in range(5):
        arn = run(store, f"f-{n}")
        host = "a.example.com" if n % 2 else "b.example.com"
        put_record(ops_table, f"f-{n}", RecordStatus.FAILED, iso(n), executionArn=arn, targetHost=host)

    # When the three newest are listed / Then they come newest first, with their run's status and times
    rows = list_runs(store, RunFilter(status=RecordStatus.FAILED), limit=3)
    assert ids(rows) == ["f-4", "f-3", "f-2"]
    assert {row.run_status for row in rows} == {"ABORTED"}
    assert all(row.started is not None and row.ended is not None for row in rows)
    assert all(row.duration_seconds is not None and row.duration_seconds >= 0 for row in rows)
    # And the host filter and the window apply
    assert ids(list_runs(store, RunFilter(status=RecordStatus.FAILED, host="A.example.com"))) == ["f-3", "f-1"]
    since = datetime.fromisoformat(iso(2).replace("Z", "+00:00"))
    assert ids(list_runs(store, RunFilter(status=RecordStatus.FAILED, since=since))) == ["f-4", "f-3", "f-2"]


def test_failed_runs_the_index_cannot_hold_are_listed_too(store: RunStore, ops_table: Any) -> None:
    # Given a stopped run that never wrote a record
    run(store, "no-record")
    # And a stopped run whose record is still PROCESSING under it (nothing closed it)
    stuck = run(store, "stuck")
    put_record(ops_table, "stuck", RecordStatus.PROCESSING, None, executionArn=stuck)
    # And a failure written before the index existed (no opsStatus)
    old = run(store, "pre-index")
    put_record(ops_table, "pre-index", RecordStatus.FAILED, None, executionArn=old)
    # And a rejection written before the index existed, and a stopped run whose notification a replay now owns
    rejected = run(store, "old-rejected")
    put_record(ops_table, "old-rejected", RecordStatus.REJECTED, None, executionArn=rejected)
    run(store, "replayed")
    put_record(ops_table, "replayed", RecordStatus.SUCCESS, None, executionArn="arn:replay")

    # When failures are listed
    rows = {row.notification_id: row for row in list_runs(store, RunFilter(status=RecordStatus.FAILED))}
    # Then the first three are there, each as what it is, and the other two are not
    assert set(rows) == {"no-record", "stuck", "pre-index"}
    assert (rows["no-record"].status, rows["no-record"].run_status) == (None, "ABORTED")
    assert rows["stuck"].status == RecordStatus.PROCESSING
    assert rows["pre-index"].status == RecordStatus.FAILED
    # And the rejection is listed among rejections instead
    assert ids(list_runs(store, RunFilter(status=RecordStatus.REJECTED))) == ["old-rejected"]


def test_runs_in_progress_for_too_long_are_found_by_age(store: RunStore, ops_table: Any) -> None:
    # Given two runs in progress, claimed at 10:05 and 10:50
    for name, minute in (("early", 5), ("late", 50)):
        arn = run(store, name, stop=False)
        put_record(ops_table, name, RecordStatus.PROCESSING, iso(minute), executionArn=arn)
    # When those in progress since before 10:30 are listed / Then only the early one is
    older_than = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
    rows = list_runs(store, RunFilter(status=RecordStatus.PROCESSING, older_than=older_than))
    assert ids(rows) == ["early"]
    assert rows[0].run_status == "RUNNING"
    assert rows[0].ended is None


def test_without_a_status_the_newest_runs_are_read_a_page_at_a_time(store: RunStore, ops_table: Any) -> None:
    # Given five runs, three of them with a record
    for n in range(5):
        arn = run(store, f"r-{n}")
        if n < 3:
            put_record(ops_table, f"r-{n}", RecordStatus.SUCCESS, None, executionArn=arn, attempts=n + 1)
    # When the list is asked for two / Then the two newest runs come, joined with their records
    rows = list_runs(store, RunFilter(), limit=2)
    assert len(rows) == 2
    assert all(row.run_status == "ABORTED" for row in rows)
    everything = {row.notification_id: row for row in list_runs(store, RunFilter(), limit=10)}
    assert set(everything) == {f"r-{n}" for n in range(5)}
    assert everything["r-2"].attempts == 3
    assert everything["r-4"].status is None
    # And a SUCCESS listing keeps only runs whose own record says SUCCESS
    assert set(ids(list_runs(store, RunFilter(status=RecordStatus.SUCCESS), limit=10))) == set()  # all ABORTED


def test_a_window_in_the_future_lists_nothing(store: RunStore, ops_table: Any) -> None:
    arn = run(store, "f")
    put_record(ops_table, "f", RecordStatus.FAILED, iso(1), executionArn=arn)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert list_runs(store, RunFilter(status=RecordStatus.FAILED, since=tomorrow)) == []
