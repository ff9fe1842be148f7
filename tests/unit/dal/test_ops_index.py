"""The operator index and the reads built on it, against moto's DynamoDB with the table the spec defines."""

from __future__ import annotations

from typing import Any

from lambdas.shared.constants import OPS_INDEX_PROJECTION, RecordStatus
from lambdas.shared.dal.notifications import NotificationStore, get_many, query_ops, query_ops_page
from tests.unit.ops_table import EXEC_PREFIX, iso, put_record


def fill(client: Any) -> None:
    """200 delivered records (not indexed), 30 FAILED, 5 REJECTED and 4 PROCESSING ones, one a minute apart."""
    for n in range(200):
        put_record(client, f"ok-{n:03d}", RecordStatus.SUCCESS, None)
    for n in range(30):
        put_record(client, f"failed-{n:02d}", RecordStatus.FAILED, iso(n), errorName="DeliveryPermanentError")
    for n in range(5):
        put_record(client, f"rejected-{n}", RecordStatus.REJECTED, iso(n, 30))
    for n in range(4):
        put_record(client, f"processing-{n}", RecordStatus.PROCESSING, iso(n * 10, 15))


def test_a_page_of_failures_reads_only_those_failures_newest_first(ops_store: NotificationStore, ops_table) -> None:
    # Given a table where failures are a small part
    fill(ops_table)

    # When the ten newest failures are asked for
    page = query_ops_page(ops_store, RecordStatus.FAILED, limit=10)

    # Then exactly those are read, newest first, and the page says where to go on
    assert [r.notificationId for r in page.records] == [f"failed-{n:02d}" for n in range(29, 19, -1)]
    assert page.items_read == 10
    assert page.next_key is not None
    # And each carries what the index projects (no attempt log, which stays in the table)
    first = page.records[0]
    assert (first.status, first.errorName, first.targetHost) == (
        RecordStatus.FAILED,
        "DeliveryPermanentError",
        "hooks.example.com",
    )
    assert first.attemptLog == ()
    assert "attemptLog" not in OPS_INDEX_PROJECTION


def test_a_window_selects_by_the_time_the_record_entered_its_status(ops_store: NotificationStore, ops_table) -> None:
    fill(ops_table)
    # When failures since 10:25 are listed
    recent = list(query_ops(ops_store, RecordStatus.FAILED, since=iso(25)))
    # Then only the five newest come back
    assert [r.notificationId for r in recent] == [f"failed-{n:02d}" for n in range(29, 24, -1)]

    # When PROCESSING records older than 10:15 are listed, oldest first
    stuck = list(query_ops(ops_store, RecordStatus.PROCESSING, before=iso(15), newest_first=False))
    # Then the two that entered PROCESSING before then are listed
    assert [r.notificationId for r in stuck] == ["processing-0", "processing-1"]

    # When a closed window is given, its upper bound is exclusive
    between = list(query_ops(ops_store, RecordStatus.FAILED, since=iso(3), before=iso(6)))
    assert [r.notificationId for r in between] == ["failed-05", "failed-04", "failed-03"]


def test_query_ops_follows_pages_up_to_the_limit(ops_store: NotificationStore, ops_table, monkeypatch) -> None:
    # Given pages of 7 records
    fill(ops_table)
    monkeypatch.setattr("lambdas.shared.dal.notifications.OPS_PAGE_SIZE", 7)
    # When 17 failures are asked for / Then they come from three pages, in order, and no more
    listed = [r.notificationId for r in query_ops(ops_store, RecordStatus.FAILED, limit=17)]
    assert listed == [f"failed-{n:02d}" for n in range(29, 12, -1)]
    # And all of them when there is no limit
    assert len(list(query_ops(ops_store, RecordStatus.FAILED))) == 30
    assert len(list(query_ops(ops_store, RecordStatus.REJECTED))) == 5
    assert list(query_ops(ops_store, RecordStatus.SUCCESS)) == []


def test_get_many_reads_existing_records_by_id_in_batches(ops_store: NotificationStore, ops_table) -> None:
    fill(ops_table)
    # When 230 ids (more than one request's 100) are asked for, with repeats and ids that have no record
    ids = [f"ok-{n:03d}" for n in range(200)] + ["failed-01", "failed-01", "nope-1", "nope-2"] + ["rejected-0"] * 26
    found = get_many(ops_store, ids, attributes=("status", "executionArn"))
    # Then every existing one is returned once, with what was asked for
    assert len(found) == 202
    assert found["failed-01"].status == RecordStatus.FAILED
    assert found["failed-01"].errorName is None  # not asked for
    assert found["rejected-0"].executionArn == EXEC_PREFIX + "rejected-0"
    assert "nope-1" not in found
    assert get_many(ops_store, []) == {}


def test_an_entry_whose_status_moved_on_without_the_index_is_not_listed(
    ops_store: NotificationStore, ops_table
) -> None:
    # Given a record delivered by a writer that did not remove the index attributes
    put_record(ops_table, "moved-on", RecordStatus.PROCESSING, iso(1))
    ops_table.update_item(
        TableName=ops_store.table_name,
        Key={"notificationId": {"S": "moved-on"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "SUCCESS"}},
    )
    # When PROCESSING records are listed / Then it is not among them
    assert list(query_ops(ops_store, RecordStatus.PROCESSING)) == []
