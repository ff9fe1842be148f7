"""Redriving failed runs: one, or many with a canary per target host, reporting what each redrive led to.

Redrive resumes a run in the state it stopped in. A delivery failure stopped in the FailureGate, which
reopens the notification on a redrive; a run the reconciler closed (aborted, timed out, failed outside
the gate) resumes where it stopped, so its record is reopened here first (and closed again if AWS
refuses the redrive). Bulk redrive tries the oldest run of each target host first and waits for it;
a host whose canary fails again keeps its other runs untouched. Then the rest follow at ``--rate`` per
second, and every redriven run is followed to its end (or the deadline) and reported: delivered,
failed again, or still running. The exit code says which (notiflow/operate/exit_codes.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TextIO

from botocore.exceptions import ClientError

from lambdas.shared.constants import REDRIVABLE_EXECUTION_STATUSES, REPLAY_ATTRIBUTE, ExecutionStatus, RecordStatus
from lambdas.shared.dal.notifications import close_stopped_run, reopen_closed_run
from lambdas.shared.errors import InvalidNotificationError
from lambdas.shared.models import notification_id_of_input
from lambdas.shared.record import NotificationRecord
from notiflow.operate.deployment import Deployment
from notiflow.operate.exit_codes import ExitCode
from notiflow.operate.queries import RunFilter, RunRow, list_runs, parse_since
from notiflow.operate.runs import RunStore
from notiflow.shared.waiting import WaitTimeoutError, wait_until

REDRIVE_WINDOW: Final = timedelta(days=14)
_REDRIVABLE_NAMES: Final = [status.value for status in ExecutionStatus if status in REDRIVABLE_EXECUTION_STATUSES]
_REDRIVABLE: Final = ", ".join(_REDRIVABLE_NAMES[:-1]) + " or " + _REDRIVABLE_NAMES[-1]
REPLAY_ADVICE: Final = (
    "rejected: the message broke the notification contract, and a redrive would only reject it again; "
    f"fix the message and send it again with the SQS message attribute {REPLAY_ATTRIBUTE}=true"
)
NO_HOST: Final = "(no target host recorded)"
_AWS_REFUSALS: Final = frozenset({"ExecutionNotRedrivable", "ExecutionLimitExceeded", "InvalidArn"})


class Verdict(StrEnum):
    """What a redriven run came to."""

    DELIVERED = "delivered"
    FAILED_AGAIN = "failed again"
    STILL_RUNNING = "still running"


@dataclass
class Candidate:
    """A run considered for redrive, with the reason when it must not or cannot be redriven."""

    notification_id: str
    execution_arn: str
    host: str | None = None
    execution: dict[str, Any] | None = None
    record: NotificationRecord | None = None
    refusal: str | None = None

    @property
    def redrive_count(self) -> int:
        """Redrives so far (before this one)."""
        return int((self.execution or {}).get("redriveCount", 0) or 0)


@dataclass(frozen=True)
class Outcome:
    """A redriven run at the end of the wait."""

    candidate: Candidate
    verdict: Verdict
    run_status: str
    record_status: str | None
    detail: str


class RedriveRefusedError(Exception):
    """AWS refused the redrive (not redrivable any more, or another redrive got there first)."""


def eligibility(execution: dict[str, Any], machine_type: str, now: datetime | None = None) -> str | None:
    """Why AWS would refuse to redrive this execution, or None when it may be redriven."""
    now = now or datetime.now(UTC)
    if machine_type != "STANDARD":
        return f"{machine_type.title()} workflows cannot be redriven"
    status = execution["status"]
    if status not in REDRIVABLE_EXECUTION_STATUSES:
        return f"execution is {status}; only {_REDRIVABLE} runs can be redriven"
    stopped = execution.get("stopDate")
    if stopped and now - stopped > REDRIVE_WINDOW:
        return f"execution stopped {(now - stopped).days} days ago; redrive is possible for 14 days"
    if execution.get("redriveStatus") == "NOT_REDRIVABLE":
        return execution.get("redriveStatusReason") or "AWS reports the execution as not redrivable"
    return None


def rejection(record: NotificationRecord | None, execution: dict[str, Any] | None, execution_arn: str) -> str | None:
    """The replay advice when the run was rejected (its own record says REJECTED, or it failed in Rejected)."""
    own = record is not None and record.executionArn == execution_arn
    if own and record is not None and record.status is RecordStatus.REJECTED:
        return REPLAY_ADVICE
    if execution is not None and execution.get("error") == InvalidNotificationError.__name__:
        return REPLAY_ADVICE
    return None


class Redriver:
    """Redrives through the Step Functions API; identical against AWS and the embedded stack."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._machine_type: str | None = None

    @property
    def machine_type(self) -> str:
        if self._machine_type is None:
            described = self.store.sfn.describe_state_machine(stateMachineArn=self.store.state_machine_arn)
            self._machine_type = described.get("type", "STANDARD")
        return self._machine_type

    def candidate(
        self,
        notification_id: str,
        execution_arn: str,
        *,
        record: NotificationRecord | None = None,
        execution: dict[str, Any] | None = None,
        host: str | None = None,
    ) -> Candidate:
        """A candidate with its refusal, if any: rejected runs never, AWS's rules otherwise."""
        if execution is None:
            try:
                execution = self.store.describe(execution_arn)
            except self.store.sfn.exceptions.ExecutionDoesNotExist:
                return Candidate(notification_id, execution_arn, host, None, record, "execution no longer exists")
        refusal = rejection(record, execution, execution_arn) or eligibility(execution, self.machine_type)
        host = host or (record.targetHost if record else None)
        return Candidate(notification_id, execution_arn, host, execution, record, refusal)

    def from_row(self, row: RunRow) -> Candidate:
        """A candidate from a `runs list` row (its record fields and execution already read)."""
        return self.candidate(
            row.notification_id,
            row.execution_arn or self.store.execution_arn(row.notification_id),
            record=row.record,
            execution=row.execution,
            host=row.target_host,
        )

    def start(self, candidate: Candidate) -> None:
        """Reopen the record when the reconciler closed it, then RedriveExecution.

        RedriveRefusedError when AWS refuses; a record reopened for that redrive is closed again unless
        the run is running (another redrive won the race and needs it open).
        """
        record = candidate.record
        reopened: NotificationRecord | None = None
        if (
            record is not None
            and record.reconciledAt
            and record.status is RecordStatus.FAILED
            and record.executionArn == candidate.execution_arn
        ):
            reopened = reopen_closed_run(
                self.store.notifications,
                candidate.notification_id,
                candidate.execution_arn,
                redrive_count=candidate.redrive_count + 1,
            )
        try:
            self.store.sfn.redrive_execution(executionArn=candidate.execution_arn)
        except ClientError as exc:
            if reopened is not None and self.store.describe(candidate.execution_arn)["status"] != "RUNNING":
                close_stopped_run(
                    self.store.notifications,
                    candidate.notification_id,
                    candidate.execution_arn,
                    error_name=reopened.errorName or "ExecutionFailed",
                    reason=reopened.failureReason or "the run stopped",
                    redrive_count=candidate.redrive_count,
                    reopened_at=reopened.reopenedAt,
                )
            error = exc.response.get("Error", {})
            if error.get("Code") in _AWS_REFUSALS:
                raise RedriveRefusedError(f"{error.get('Code')}: {error.get('Message')}") from None
            raise

    def outcome(self, candidate: Candidate, execution: dict[str, Any], finished: bool) -> Outcome:
        """Delivered, failed again or still running, from the run and the notification's record."""
        record = self.store.record_model(candidate.notification_id)
        owned = record is not None and record.executionArn == candidate.execution_arn
        record_status = record.status if record else None
        run_status = execution["status"]
        if not finished:
            return Outcome(candidate, Verdict.STILL_RUNNING, run_status, record_status, "not finished yet")
        if run_status == ExecutionStatus.SUCCEEDED and owned and record_status is RecordStatus.SUCCESS:
            return Outcome(candidate, Verdict.DELIVERED, run_status, record_status, "delivered")
        if owned and record is not None and record.errorName:
            detail = f"{record.errorName}: {record.failureReason or ''}".rstrip(": ")
        elif run_status == ExecutionStatus.SUCCEEDED:
            detail = f"the run ended without delivering (the notification is {record_status or 'not recorded'})"
        else:
            detail = execution.get("error") or run_status
        return Outcome(candidate, Verdict.FAILED_AGAIN, run_status, record_status, detail)

    def follow(self, candidates: list[Candidate], timeout: float) -> list[Outcome]:
        """Wait (one poll loop for all) until each redriven run has ended its new pass, or the deadline."""
        expected = {c.execution_arn: c.redrive_count + 1 for c in candidates}
        latest: dict[str, dict[str, Any]] = {}

        def pending() -> list[Candidate]:
            waiting = []
            for candidate in candidates:
                arn = candidate.execution_arn
                if arn in latest and _ended_pass(latest[arn], expected[arn]):
                    continue
                latest[arn] = self.store.describe(arn)
                if not _ended_pass(latest[arn], expected[arn]):
                    waiting.append(candidate)
            return waiting

        with contextlib.suppress(WaitTimeoutError):
            wait_until(pending, lambda left: not left, timeout=timeout, interval=0.1, max_interval=2.0)
        return [
            self.outcome(c, latest[c.execution_arn], _ended_pass(latest[c.execution_arn], expected[c.execution_arn]))
            for c in candidates
        ]


def _ended_pass(execution: dict[str, Any], redrive_count: int) -> bool:
    """Whether the run has ended the pass the redrive started (a describe right after it may show the old end)."""
    return int(execution.get("redriveCount", 0) or 0) >= redrive_count and ExecutionStatus(execution["status"]).finished


def _progress(out: TextIO, done: int, total: int, refused: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} redriven, {refused} refused by AWS")
    out.flush()


def _paced(items: list[Candidate], rate: float, action: Callable[[Candidate], None], out: TextIO | None) -> None:
    interval = 1.0 / rate if rate > 0 else 0.0
    for index, item in enumerate(items, start=1):
        started = time.monotonic()
        action(item)
        if out is not None:
            _progress(out, index, len(items), 0)
        if index < len(items):
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    if out is not None and items:
        out.write("\n")


@dataclass
class Report:
    """Everything a bulk redrive did, for its summary and exit code."""

    outcomes: list[Outcome]
    untried: list[Candidate]
    not_redrivable: list[Candidate]
    refused_by_aws: list[tuple[Candidate, str]]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for outcome in self.outcomes if outcome.verdict is verdict)

    @property
    def exit_code(self) -> ExitCode:
        if self.count(Verdict.FAILED_AGAIN) or self.count(Verdict.STILL_RUNNING) or self.untried:
            return ExitCode.SOME_FAILED
        if not self.outcomes and (self.refused_by_aws or self.not_redrivable):
            return ExitCode.REFUSED
        return ExitCode.OK

    def summary(self) -> str:
        return (
            f"summary: {self.count(Verdict.DELIVERED)} delivered, {self.count(Verdict.FAILED_AGAIN)} failed again, "
            f"{self.count(Verdict.STILL_RUNNING)} still running, {len(self.untried)} not tried (their host's "
            f"canary did not deliver), {len(self.not_redrivable)} cannot be redriven, "
            f"{len(self.refused_by_aws)} refused by AWS"
        )


def by_host(candidates: list[Candidate]) -> dict[str, list[Candidate]]:
    """Candidates grouped by target host, each group oldest first (its first one is the host's canary)."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in sorted(candidates, key=_age_key):
        groups.setdefault(candidate.host or NO_HOST, []).append(candidate)
    return groups


def _age_key(candidate: Candidate) -> tuple[datetime, str]:
    started = (candidate.execution or {}).get("startDate") or datetime.max.replace(tzinfo=UTC)
    return started, candidate.notification_id


def _print_outcome(out: TextIO, outcome: Outcome, label: str = "result") -> None:
    text = outcome.verdict.value
    if outcome.verdict is not Verdict.DELIVERED:
        text += f" ({outcome.detail})"
    print(f"{label:<8}{outcome.candidate.notification_id}: {text}", file=out)


def bulk_redrive(
    redriver: Redriver,
    candidates: list[Candidate],
    rate: float,
    dry_run: bool,
    wait_seconds: float,
    out: TextIO | None = None,
) -> ExitCode:
    """One canary per host, then the rest of the hosts whose canary delivered, at ``rate`` per second."""
    out = out or sys.stdout
    not_redrivable = [c for c in candidates if c.refusal]
    eligible = [c for c in candidates if not c.refusal]
    for candidate in not_redrivable:
        print(f"skip    {candidate.notification_id}: {candidate.refusal}", file=out)
    groups = by_host(eligible)
    if dry_run:
        for host, group in groups.items():
            print(f"host    {host}: canary {group[0].notification_id}, then {len(group) - 1} more", file=out)
            for candidate in group:
                print(f"would redrive  {candidate.notification_id}  {candidate.execution_arn}", file=out)
        print(f"dry run: {len(eligible)} would be redriven, {len(not_redrivable)} cannot be", file=out)
        return ExitCode.OK
    report = Report(outcomes=[], untried=[], not_redrivable=not_redrivable, refused_by_aws=[])
    if not eligible:
        print(f"nothing to redrive ({len(not_redrivable)} cannot be redriven)", file=out)
        return report.exit_code

    def start(candidate: Candidate) -> bool:
        try:
            redriver.start(candidate)
        except RedriveRefusedError as exc:
            report.refused_by_aws.append((candidate, str(exc)))
            print(f"refused {candidate.notification_id}: {exc}", file=out)
            return False
        return True

    canaries = [group[0] for group in groups.values()]
    hosts = len(groups)
    print(
        f"canary  one per host ({hosts} host{'s' if hosts != 1 else ''}): redriving "
        f"{', '.join(c.notification_id for c in canaries)} and waiting up to {wait_seconds:g} s",
        file=out,
    )
    started: list[Candidate] = []
    _paced(canaries, rate, lambda c: started.append(c) if start(c) else None, None)
    healthy: set[str] = set()
    for outcome in redriver.follow(started, wait_seconds):
        report.outcomes.append(outcome)
        _print_outcome(out, outcome, "canary")
        if outcome.verdict is Verdict.DELIVERED:
            healthy.add(outcome.candidate.host or NO_HOST)
    rest: list[Candidate] = []
    for host, group in groups.items():
        if host in healthy:
            rest += group[1:]
        elif len(group) > 1:
            report.untried += group[1:]
            print(f"host    {host}: its canary did not deliver; not trying its other {len(group) - 1}", file=out)
    if rest:
        print(f"redriving {len(rest)} more at {rate:g}/s", file=out)
        started_rest: list[Candidate] = []
        _paced(rest, rate, lambda c: started_rest.append(c) if start(c) else None, out)
        print(f"waiting up to {wait_seconds:g} s for {len(started_rest)} redriven runs", file=out)
        for outcome in redriver.follow(started_rest, wait_seconds):
            report.outcomes.append(outcome)
            if outcome.verdict is not Verdict.DELIVERED:
                _print_outcome(out, outcome)
    print(report.summary(), file=out)
    return report.exit_code


def single_candidate(redriver: Redriver, store: RunStore, ident: str) -> Candidate:
    """The candidate named by a notification id or an execution ARN (LookupError when there is none)."""
    if ident.startswith("arn:"):
        try:
            execution = store.describe(ident)
        except store.sfn.exceptions.ExecutionDoesNotExist:
            raise LookupError(f"no execution {ident}") from None
        notification_id = notification_id_of_input(execution.get("input")) or ident
        record = store.record_model(notification_id)
        return redriver.candidate(notification_id, ident, record=record, execution=execution)
    record = store.record_model(ident)
    if record is None:
        try:
            execution = store.describe(store.execution_arn(ident))
        except store.sfn.exceptions.ExecutionDoesNotExist:
            raise LookupError(f"no notification {ident}") from None
        return redriver.candidate(ident, execution["executionArn"], execution=execution)
    return redriver.candidate(ident, record.executionArn or store.execution_arn(ident), record=record)


def redrive_one(redriver: Redriver, candidate: Candidate, dry_run: bool, wait_seconds: float, out: TextIO) -> ExitCode:
    """Redrive one run and report what it came to."""
    if candidate.refusal:
        print(f"refused {candidate.notification_id}: {candidate.refusal}", file=out)
        return ExitCode.REFUSED
    if dry_run:
        print(f"would redrive  {candidate.notification_id}  {candidate.execution_arn}", file=out)
        return ExitCode.OK
    try:
        redriver.start(candidate)
    except RedriveRefusedError as exc:
        print(f"refused {candidate.notification_id}: AWS refused the redrive ({exc})", file=out)
        return ExitCode.REFUSED
    print(f"redrive {candidate.notification_id}: redriven, waiting up to {wait_seconds:g} s", file=out)
    (outcome,) = redriver.follow([candidate], wait_seconds)
    _print_outcome(out, outcome)
    return ExitCode.OK if outcome.verdict is Verdict.DELIVERED else ExitCode.SOME_FAILED


def run_redrive_command(deployment: Deployment, args: argparse.Namespace, out: TextIO | None = None) -> ExitCode:
    """`notiflow redrive ID` or `notiflow redrive --status FAILED --since 6h ...`."""
    out = out or sys.stdout
    store = deployment.store()
    redriver = Redriver(store)
    if args.id:
        return redrive_one(redriver, single_candidate(redriver, store, args.id), args.dry_run, args.wait_seconds, out)
    if args.status != RecordStatus.FAILED:
        raise ValueError("give a notification id, or --status FAILED for a bulk redrive")
    run_filter = RunFilter(
        status=RecordStatus.FAILED,
        since=parse_since(args.since) if args.since else None,
        host=args.host,
        error=args.error,
    )
    candidates = [redriver.from_row(row) for row in list_runs(store, run_filter)]
    return bulk_redrive(redriver, candidates, args.rate, args.dry_run, args.wait_seconds, out)
