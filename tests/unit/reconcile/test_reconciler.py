"""The reconciler against moto: DynamoDB with the spec's table, Step Functions for the runs it reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from lambdas.reconcile.events import NotAStatusChangeError, StatusChange
from lambdas.reconcile.handler import lambda_handler
from lambdas.reconcile.reconciler import StepFunctionsExecutions, reconcile, summarize_cause
from lambdas.shared.clock import utc_iso
from lambdas.shared.constants import RecordStatus
from lambdas.shared.dal.notifications import NotificationStore, close_stopped_run, query_ops
from tests.unit.ops_table import iso, put_record

SECRET = "Bearer sk-live-do-not-leak"
DEFINITION = json.dumps({"StartAt": "A State", "States": {"A State": {"Type": "Pass", "End": True}}})


@pytest.fixture
def sfn(ops_table: Any) -> Any:
    """moto's Step Functions (inside the same mock as the table)."""
    return boto3.client("stepfunctions", region_name="us-east-1")


@pytest.fixture
def machine(sfn: Any) -> str:
    role = "arn:aws:iam::123456789012:role/notiflow-state-machine"
    return sfn.create_state_machine(name="notiflow-delivery", definition=DEFINITION, roleArn=role)["stateMachineArn"]


def start(sfn: Any, machine: str, notification_id: str) -> str:
    """A run whose input is what ingest starts: the notification, a bearer token in its headers."""
    execution_input = {
        "notificationId": notification_id,
        "notification": {"notificationId": notification_id, "target": {"headers": {"Authorization": SECRET}}},
    }
    return sfn.start_execution(stateMachineArn=machine, name=notification_id, input=json.dumps(execution_input))[
        "executionArn"
    ]


def event_for(sfn: Any, arn: str, **detail: Any) -> dict[str, Any]:
    """The EventBridge event of the run as it is now: its detail is what DescribeExecution says."""
    described = sfn.describe_execution(executionArn=arn)
    body: dict[str, Any] = {
        "executionArn": arn,
        "stateMachineArn": described["stateMachineArn"],
        "name": described["name"],
        "status": described["status"],
        "startDate": int(described["startDate"].timestamp() * 1000),
        "stopDate": int(described["stopDate"].timestamp() * 1000) if described.get("stopDate") else None,
        "input": described["input"],
        "inputDetails": {"included": True},
        "output": None,
        "outputDetails": None,
        "redriveCount": described.get("redriveCount", 0),
    }
    body.update(detail)
    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-11-30T10:05:00Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": body,
    }


def run(event: dict[str, Any], store: NotificationStore, sfn: Any) -> Any:
    return reconcile(StatusChange.from_event(event), store, StepFunctionsExecutions(sfn), now=iso(30))


def test_an_aborted_run_leaves_its_record_failed_and_listed(ops_store, ops_table, sfn, machine) -> None:
    # Given a run stopped by an operator while its record was PROCESSING
    arn = start(sfn, machine, "n-aborted")
    put_record(ops_table, "n-aborted", RecordStatus.PROCESSING, iso(1), executionArn=arn)
    sfn.stop_execution(executionArn=arn)

    # When its ABORTED event reaches the reconciler
    event = event_for(sfn, arn, error="OperatorStop", cause="stopped during the incident")
    result = run(event, ops_store, sfn)

    # Then the record is FAILED with the run's error name and cause, and where it stopped
    assert (result.action, result.notificationId) == ("closed", "n-aborted")
    record = ops_store.get("n-aborted")
    assert record is not None
    assert (record.status, record.errorName) == (RecordStatus.FAILED, "OperatorStop")
    assert record.failureReason == "run aborted in A State: stopped during the incident"
    assert record.opsSince == utc_iso(datetime.fromtimestamp(event["detail"]["stopDate"] / 1000, UTC))
    # And it is among the failures an operator lists (and no longer among the runs in progress)
    assert [r.notificationId for r in query_ops(ops_store, RecordStatus.FAILED)] == ["n-aborted"]
    assert list(query_ops(ops_store, RecordStatus.PROCESSING)) == []


def test_the_cause_is_kept_without_the_notification(ops_store, ops_table, sfn, machine) -> None:
    # Given a run that failed in a state with no Catch, its cause quoting the state input (as States.Runtime does)
    arn = start(sfn, machine, "n-runtime")
    put_record(ops_table, "n-runtime", RecordStatus.PROCESSING, iso(1), executionArn=arn)
    state_input = json.dumps({"notification": {"target": {"headers": {"Authorization": SECRET}}}})
    cause = (
        "An error occurred while executing the state 'RecordSuccess'. "
        f"The JSONPath '$.x' could not be found in the input '{state_input}'"
    )
    event = event_for(sfn, arn, status="FAILED", error="States.Runtime", cause=cause)

    # When it is reconciled
    assert run(event, ops_store, sfn).action == "closed"

    # Then the reason names the error and keeps the message, but no part of the input
    record = ops_store.get("n-runtime")
    assert record is not None
    assert record.errorName == "States.Runtime"
    assert record.failureReason is not None
    assert record.failureReason.startswith("run failed in A State with States.Runtime: An error occurred")
    assert "{…}" in record.failureReason
    assert "sk-live" not in json.dumps(record.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("cause", "summary"),
    [
        (None, "no cause given"),
        (
            '{"errorMessage": "DynamoDB ThrottlingException on update_item", "errorType": "StorageError", '
            '"stackTrace": ["  File x"]}',
            "DynamoDB ThrottlingException on update_item",
        ),
        ("line one\nline two", "line one line two"),
        ('{"notification": {"payload": 1}}', "{…}"),
        ("x" * 600, "x" * 511 + "…"),
    ],
)
def test_causes_are_summarized_on_one_bounded_line(cause: str | None, summary: str) -> None:
    assert summarize_cause(cause) == summary


def test_failures_the_workflow_recorded_are_left_to_it(ops_store, ops_table, sfn, machine) -> None:
    # Given a run that failed in the FailureGate after RecordFailure wrote the outcome
    arn = start(sfn, machine, "n-gate")
    put_record(ops_table, "n-gate", RecordStatus.FAILED, iso(1), executionArn=arn, errorName="DeliveryPermanentError")
    before = ops_store.get("n-gate")
    # When its FAILED event arrives / Then the record is left as the workflow wrote it
    event = event_for(sfn, arn, status="FAILED", error="DeliveryPermanentError", cause="{}")
    assert run(event, ops_store, sfn).action == "unchanged"
    assert ops_store.get("n-gate") == before


def test_a_delivery_error_outside_the_gate_still_closes_the_record(ops_store, ops_table, sfn, machine) -> None:
    # Given a run that failed with a delivery error while its record was PROCESSING (no Catch ran: the run was
    # stopped during the attempt), the cause being the deliver step's error with the last outcome as JSON
    arn = start(sfn, machine, "n-midway")
    put_record(ops_table, "n-midway", RecordStatus.PROCESSING, iso(1), executionArn=arn)
    outcome = {"outcome": {"category": "TIMEOUT", "errorDetails": "no response from hooks.example.com within 2 s"}}
    cause = json.dumps({"errorMessage": json.dumps(outcome), "errorType": "DeliveryRetryableError"})
    event = event_for(sfn, arn, status="FAILED", error="DeliveryRetryableError", cause=cause)
    # When it is reconciled / Then the record says what the last attempt met
    assert run(event, ops_store, sfn).action == "closed"
    record = ops_store.get("n-midway")
    assert record is not None
    assert (record.status, record.errorName) == (RecordStatus.FAILED, "DeliveryRetryableError")
    assert record.failureReason == (
        "run failed in A State with DeliveryRetryableError: no response from hooks.example.com within 2 s"
    )


def test_the_input_comes_from_the_execution_when_the_event_lacks_it(ops_store, ops_table, sfn, machine) -> None:
    # Given an aborted run whose event carries no input (EventBridge drops inputs above 248 KB), error or cause
    arn = start(sfn, machine, "n-large")
    put_record(ops_table, "n-large", RecordStatus.PROCESSING, iso(1), executionArn=arn)
    sfn.stop_execution(executionArn=arn)
    event = event_for(sfn, arn, input=None, inputDetails={"included": False})
    # When it is reconciled / Then DescribeExecution names the notification, and the status names the error
    assert run(event, ops_store, sfn).action == "closed"
    record = ops_store.get("n-large")
    assert record is not None
    assert (record.errorName, record.failureReason) == ("ExecutionAborted", "run aborted in A State: no cause given")


def test_a_record_another_run_owns_is_not_touched(ops_store, ops_table, sfn, machine) -> None:
    # Given a notification a replay has claimed since its first run was stopped
    arn = start(sfn, machine, "n-replayed")
    put_record(ops_table, "n-replayed", RecordStatus.PROCESSING, iso(1), executionArn=arn + "-replay-1")
    sfn.stop_execution(executionArn=arn)
    # When the stopped run's event arrives / Then the replay's record is unchanged
    assert run(event_for(sfn, arn), ops_store, sfn).action == "unchanged"
    assert ops_store.get("n-replayed").status == RecordStatus.PROCESSING  # type: ignore[union-attr]


def closed_record(ops_store: NotificationStore, ops_table: Any, arn: str, notification_id: str) -> None:
    put_record(ops_table, notification_id, RecordStatus.PROCESSING, iso(1), executionArn=arn)
    assert close_stopped_run(
        ops_store, notification_id, arn, error_name="ExecutionAborted", reason="run aborted in Deliver", redrive_count=0
    )


def test_a_redrive_started_elsewhere_reopens_the_record(ops_store, ops_table, sfn, machine) -> None:
    # Given a closed record whose run is running again (a redrive through the AWS CLI)
    arn = start(sfn, machine, "n-redriven")
    closed_record(ops_store, ops_table, arn, "n-redriven")
    # When the redrive's RUNNING event arrives
    result = run(event_for(sfn, arn, redriveCount=1), ops_store, sfn)
    # Then the record is PROCESSING again under the same run, so the resumed states can write
    assert result.action == "reopened"
    record = ops_store.get("n-redriven")
    assert record is not None
    assert (record.status, record.executionArn, record.redriveCount) == (RecordStatus.PROCESSING, arn, 1)
    # And a second delivery of the same event changes nothing
    assert run(event_for(sfn, arn, redriveCount=1), ops_store, sfn).action == "unchanged"


def test_a_redrive_that_ended_before_its_event_arrived_is_not_left_processing(
    ops_store, ops_table, sfn, machine
) -> None:
    # Given a closed record whose redriven run has already stopped again
    arn = start(sfn, machine, "n-late")
    closed_record(ops_store, ops_table, arn, "n-late")
    sfn.stop_execution(executionArn=arn)
    # When the late RUNNING event arrives
    result = run(event_for(sfn, arn, status="RUNNING", redriveCount=1), ops_store, sfn)
    # Then the reopening is undone: FAILED, reconciled, with the reason kept
    assert result.action == "reverted"
    record = ops_store.get("n-late")
    assert record is not None
    assert (record.status, record.failureReason) == (RecordStatus.FAILED, "run aborted in Deliver")
    assert record.reconciledAt is not None


def test_a_first_start_needs_nothing(ops_store, ops_table, sfn, machine) -> None:
    arn = start(sfn, machine, "n-new")
    put_record(ops_table, "n-new", RecordStatus.PROCESSING, iso(1), executionArn=arn)
    assert run(event_for(sfn, arn), ops_store, sfn).action == "ignored"
    assert ops_store.get("n-new").status == RecordStatus.PROCESSING  # type: ignore[union-attr]


def test_the_handler_reconciles_an_eventbridge_event(ops_table, sfn, machine, lambda_context, capsys) -> None:
    # Given an aborted run (the handler builds its own clients from the environment, as on AWS)
    arn = start(sfn, machine, "n-handler")
    put_record(ops_table, "n-handler", RecordStatus.PROCESSING, iso(1), executionArn=arn)
    sfn.stop_execution(executionArn=arn)
    # When the handler gets its event
    result = lambda_handler(event_for(sfn, arn, cause="stopped"), lambda_context)
    # Then the record is closed, and nothing of the notification reached the logs
    assert result == {"action": "closed", "notificationId": "n-handler", "detail": "run aborted in A State: stopped"}
    assert NotificationStore("notiflow-test-notifications", client=ops_table).get("n-handler").status == "FAILED"  # type: ignore[union-attr]
    assert SECRET not in capsys.readouterr().out

    # When an event of another kind reaches it / Then it refuses it
    with pytest.raises(NotAStatusChangeError):
        lambda_handler({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}, lambda_context)
