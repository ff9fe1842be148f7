"""The reconciler's two writes: closing a run that stopped outside the workflow, and reopening it for a redrive."""

from __future__ import annotations

from typing import Any

import pytest

from lambdas.shared.constants import RecordStatus
from lambdas.shared.dal.notifications import (
    NotificationStore,
    close_stopped_run,
    query_ops,
    reopen_closed_run,
)
from tests.unit.ops_table import EXEC_PREFIX, iso, put_record

EXEC = EXEC_PREFIX + "n-1"


def close(store: NotificationStore, **overrides: Any) -> bool:
    options: dict[str, Any] = {
        "error_name": "ExecutionAborted",
        "reason": "the run was ABORTED: stopped by an operator",
        "redrive_count": 0,
        "stopped_at": iso(5),
        "now": iso(6),
    }
    options.update(overrides)
    return close_stopped_run(store, "n-1", overrides.pop("execution", EXEC), **options)


def test_a_processing_record_of_the_stopped_run_becomes_failed_and_indexed(
    ops_store: NotificationStore, ops_table
) -> None:
    # Given a record PROCESSING under the run that was stopped
    put_record(ops_table, "n-1", RecordStatus.PROCESSING, iso(1))
    # When the reconciler closes it
    assert close(ops_store) is True
    # Then it is FAILED with the run's error and cause, marked as reconciled, and listed among failures
    record = ops_store.get("n-1")
    assert record is not None
    assert (record.status, record.errorName, record.failureReason) == (
        RecordStatus.FAILED,
        "ExecutionAborted",
        "the run was ABORTED: stopped by an operator",
    )
    assert (record.opsStatus, record.opsSince, record.reconciledAt) == (RecordStatus.FAILED, iso(5), iso(6))
    assert [r.notificationId for r in query_ops(ops_store, RecordStatus.FAILED)] == ["n-1"]
    assert list(query_ops(ops_store, RecordStatus.PROCESSING)) == []


@pytest.mark.parametrize(
    ("status", "execution"),
    [
        (RecordStatus.FAILED, EXEC),  # the workflow already wrote its terminal status
        (RecordStatus.SUCCESS, EXEC),
        (RecordStatus.REJECTED, EXEC),
        (RecordStatus.PROCESSING, EXEC_PREFIX + "n-1-replay-abc"),  # a replay owns it now
    ],
)
def test_a_record_the_run_no_longer_owns_is_left_alone(
    ops_store: NotificationStore, ops_table, status: RecordStatus, execution: str
) -> None:
    put_record(ops_table, "n-1", status, iso(1), executionArn=execution, errorName="DeliveryPermanentError")
    before = ops_store.get("n-1")
    assert close(ops_store) is False
    assert ops_store.get("n-1") == before


def test_no_record_means_nothing_to_close(ops_store: NotificationStore) -> None:
    assert close(ops_store) is False
    assert ops_store.get("n-1") is None


def test_a_closed_run_reopens_for_its_redrive_and_only_once(ops_store: NotificationStore, ops_table) -> None:
    # Given a run the reconciler closed
    put_record(ops_table, "n-1", RecordStatus.PROCESSING, iso(1))
    assert close(ops_store)
    # When it is reopened for redrive 1
    reopened = reopen_closed_run(ops_store, "n-1", EXEC, redrive_count=1, now=iso(20))
    # Then it is PROCESSING under the same execution again, indexed as such, with the reason kept
    assert reopened is not None
    assert (reopened.status, reopened.opsStatus, reopened.opsSince) == (
        RecordStatus.PROCESSING,
        RecordStatus.PROCESSING,
        iso(20),
    )
    assert (reopened.redriveCount, reopened.reopenedAt, reopened.reconciledAt) == (1, iso(20), None)
    assert reopened.errorName == "ExecutionAborted"
    assert ops_store.get("n-1") == reopened
    # And a second reopen (the reconciler's event after the CLI already reopened) changes nothing
    assert reopen_closed_run(ops_store, "n-1", EXEC, redrive_count=1, now=iso(21)) is None
    assert ops_store.get("n-1") == reopened


def test_a_failure_the_workflow_wrote_is_reopened_by_the_workflow_not_here(
    ops_store: NotificationStore, ops_table
) -> None:
    # Given a run that failed in the FailureGate (its redrive reopens the record through ReopenForRedrive)
    put_record(ops_table, "n-1", RecordStatus.FAILED, iso(1), errorName="DeliveryPermanentError")
    # When a reopen is tried / Then it is refused, so ReopenForRedrive still finds FAILED
    assert reopen_closed_run(ops_store, "n-1", EXEC, redrive_count=1) is None
    assert ops_store.get("n-1").status == RecordStatus.FAILED  # type: ignore[union-attr]


def test_closing_again_after_a_reopen_requires_that_same_reopen(ops_store: NotificationStore, ops_table) -> None:
    # Given a reopened record
    put_record(ops_table, "n-1", RecordStatus.PROCESSING, iso(1))
    assert close(ops_store)
    reopened = reopen_closed_run(ops_store, "n-1", EXEC, redrive_count=1, now=iso(20))
    assert reopened is not None
    # When a revert names another reopening / Then nothing changes
    assert close(ops_store, reopened_at=iso(19), now=iso(22)) is False
    # When it names this one / Then the record is FAILED (reconciled) again
    assert close(ops_store, reopened_at=iso(20), now=iso(22)) is True
    record = ops_store.get("n-1")
    assert record is not None
    assert (record.status, record.reconciledAt) == (RecordStatus.FAILED, iso(22))
