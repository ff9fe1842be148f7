"""What the reconciler does with one execution status change.

A run that stops outside the workflow's own terminal writes (stopped: ABORTED; a state or execution
timeout: TIMED_OUT; an error no Catch handles: FAILED outside the FailureGate and Rejected) would leave
its record PROCESSING for ever. The reconciler makes it FAILED, with the error name and the run's cause
(documents elided, so no notification content), under the usual condition: only while the record is
still PROCESSING under that execution, so it never overwrites what a run wrote. Which runs those are
is decided by the record, not by the error name: a read tells, and most failed runs end there.

A redrive resumes such a run in the state it stopped in, whose writes expect PROCESSING. Notiflow's
redrive command and console reopen the record before they redrive; for a redrive started elsewhere
the reconciler reopens it on the redrive's RUNNING event. If that run has already ended by then (its
writes were refused), the reopening is undone, so the record never stays PROCESSING under a finished run.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

from lambdas.reconcile.events import StatusChange
from lambdas.shared.clock import utc_iso
from lambdas.shared.constants import ExecutionStatus, RecordStatus
from lambdas.shared.dal.notifications import NotificationStore, close_stopped_run, reopen_closed_run
from lambdas.shared.models import notification_id_of_input

STOPPED: Final = {
    ExecutionStatus.ABORTED: ("ExecutionAborted", "aborted"),
    ExecutionStatus.TIMED_OUT: ("ExecutionTimedOut", "timed out"),
    ExecutionStatus.FAILED: ("ExecutionFailed", "failed"),
}
"""Statuses that close a record, with the error name used when the run reports none and how to say it."""
REASON_LIMIT: Final = 512
_DOCUMENT: Final = re.compile(r"[\[{].*[\]}]", re.DOTALL)


class Executions(Protocol):
    """What the reconciler reads about a run."""

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """DescribeExecution."""
        ...

    def last_state(self, execution_arn: str) -> str | None:
        """The state the run entered last, or None."""
        ...


class StepFunctionsExecutions:
    """:class:`Executions` over a Step Functions client; never asks for execution data (inputs, outputs)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """DescribeExecution."""
        described: dict[str, Any] = self.client.describe_execution(executionArn=execution_arn)
        return described

    def last_state(self, execution_arn: str) -> str | None:
        """Newest history events first, page by page, until a state entry is found."""
        pages = self.client.get_paginator("get_execution_history").paginate(
            executionArn=execution_arn, reverseOrder=True, includeExecutionData=False
        )
        for page in pages:
            for event in sorted(page["events"], key=lambda event: event["id"], reverse=True):
                if event["type"].endswith("StateEntered"):
                    name: str | None = event.get("stateEnteredEventDetails", {}).get("name")
                    return name
        return None


@dataclass(frozen=True)
class Reconciled:
    """What one event led to: closed, reopened, reverted, unchanged (the record was not ours) or ignored."""

    action: str
    notificationId: str | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize_cause(cause: str | None) -> str:
    """One line of a run's cause: a Lambda error's message, JSON documents in it elided, at most REASON_LIMIT long.

    Causes can quote a state's input (States.Runtime errors do), which is the notification; every
    ``{...}`` or ``[...]`` span is replaced, so the record never gets notification content from here.
    """
    if not cause:
        return "no cause given"
    text = cause
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("errorMessage"), str):
        text = _outcome_details(parsed["errorMessage"]) or parsed["errorMessage"]
    elif parsed is not None and not isinstance(parsed, str):
        text = "{…}"
    text = _DOCUMENT.sub("{…}", " ".join(text.split()))
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def _outcome_details(message: str) -> str | None:
    """A delivery error's message is its last outcome as JSON: its errorDetails say what happened."""
    try:
        parsed = json.loads(message)
    except ValueError:
        return None
    outcome = parsed.get("outcome") if isinstance(parsed, dict) else None
    details = outcome.get("errorDetails") if isinstance(outcome, dict) else None
    return details if isinstance(details, str) else None


def stop_reason(status: ExecutionStatus, state: str | None, error: str | None, cause: str | None) -> str:
    """The failureReason of a closed run, e.g. ``run aborted in Deliver: stopped by an operator``."""
    where = f" in {state}" if state else ""
    name = f" with {error}" if error and status is ExecutionStatus.FAILED else ""
    return f"run {STOPPED[status][1]}{where}{name}: {summarize_cause(cause)}"


def reconcile(
    change: StatusChange, store: NotificationStore, executions: Executions, now: str | None = None
) -> Reconciled:
    """Close the record of a run that stopped, or reopen it for a redrive; see the module docstring."""
    if change.status in STOPPED:
        return _close(change, store, executions)
    if change.status is ExecutionStatus.RUNNING and change.redriven:
        return _reopen(change, store, executions, now or utc_iso())
    return Reconciled("ignored", None, f"a {change.status} change needs nothing")


def _notification_id(change: StatusChange, executions: Executions, described: dict[str, Any] | None) -> str | None:
    found = change.notification_id()
    if found is None:
        described = described or executions.describe(change.executionArn)
        found = notification_id_of_input(described.get("input"))
    return found


def _close(change: StatusChange, store: NotificationStore, executions: Executions) -> Reconciled:
    error, cause = change.error, change.cause
    described: dict[str, Any] | None = None
    if error is None and cause is None:  # event shapes without them: the execution has both
        described = executions.describe(change.executionArn)
        error, cause = described.get("error"), described.get("cause")
    notification_id = _notification_id(change, executions, described)
    if notification_id is None:
        return Reconciled("ignored", None, "the execution input names no notification")
    # Most stopped runs wrote their own terminal status (the FailureGate, Rejected): one read settles it,
    # before the history is read for where the run stopped.
    record = store.get(notification_id)
    if record is None or record.executionArn != change.executionArn or record.status is not RecordStatus.PROCESSING:
        return Reconciled("unchanged", notification_id, "the record is not PROCESSING under this run")
    reason = stop_reason(change.status, executions.last_state(change.executionArn), error, cause)
    wrote = close_stopped_run(
        store,
        notification_id,
        change.executionArn,
        error_name=error or STOPPED[change.status][0],
        reason=reason,
        redrive_count=change.redriveCount,
        stopped_at=utc_iso(change.stopDate) if change.stopDate else None,
    )
    if not wrote:
        return Reconciled("unchanged", notification_id, "the record is not PROCESSING under this run")
    return Reconciled("closed", notification_id, reason)


def _reopen(change: StatusChange, store: NotificationStore, executions: Executions, now: str) -> Reconciled:
    notification_id = _notification_id(change, executions, None)
    if notification_id is None:
        return Reconciled("ignored", None, "the execution input names no notification")
    reopened = reopen_closed_run(
        store, notification_id, change.executionArn, redrive_count=change.redriveCount, now=now
    )
    if reopened is None:
        return Reconciled("unchanged", notification_id, "no record closed by the reconciler under this run")
    status = executions.describe(change.executionArn)["status"]
    if status != ExecutionStatus.RUNNING:
        close_stopped_run(
            store,
            notification_id,
            change.executionArn,
            error_name=reopened.errorName or STOPPED[ExecutionStatus.FAILED][0],
            reason=reopened.failureReason or "the run stopped before the reconciler could reopen it",
            redrive_count=change.redriveCount,
            reopened_at=reopened.reopenedAt,
        )
        return Reconciled("reverted", notification_id, f"redrive {change.redriveCount} had already ended ({status})")
    return Reconciled("reopened", notification_id, f"reopened for redrive {change.redriveCount}")
