"""Redriving failed runs: one, or many with a canary first.

Redrive resumes a failed execution at the state that failed (the FailureGate for
delivery failures), which reopens the notification and delivers it again under
the same execution. Bulk redrive tries the oldest run first and stops if that
canary fails again, so a still-broken endpoint costs one attempt, not hundreds.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TextIO

from lambdas.shared.constants import REDRIVABLE_EXECUTION_STATUSES, ExecutionStatus, RecordStatus
from notiflow.operate.deployment import Deployment
from notiflow.operate.queries import RunFilter, list_runs, parse_since
from notiflow.operate.runs import RunStore
from notiflow.shared.waiting import WaitTimeoutError

REDRIVE_WINDOW = timedelta(days=14)
_REDRIVABLE_NAMES: Final = [status.value for status in ExecutionStatus if status in REDRIVABLE_EXECUTION_STATUSES]
_REDRIVABLE: Final = ", ".join(_REDRIVABLE_NAMES[:-1]) + " or " + _REDRIVABLE_NAMES[-1]


@dataclass(frozen=True)
class Candidate:
    """A run considered for redrive, with the reason when AWS would refuse it."""

    notification_id: str
    execution_arn: str
    refusal: str | None = None


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


def wait_until_settled(store: RunStore, execution_arn: str, timeout: float) -> dict[str, Any]:
    """Describe the execution until it is no longer RUNNING; after ``timeout`` seconds, as it is then."""
    try:
        return store.wait_for_finish(execution_arn, timeout)
    except WaitTimeoutError:
        return store.describe(execution_arn)


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

    def candidate(self, notification_id: str, execution_arn: str) -> Candidate:
        try:
            execution = self.store.describe(execution_arn)
        except self.store.sfn.exceptions.ExecutionDoesNotExist:
            return Candidate(notification_id, execution_arn, "execution no longer exists")
        return Candidate(notification_id, execution_arn, eligibility(execution, self.machine_type))

    def redrive(self, candidate: Candidate) -> None:
        self.store.sfn.redrive_execution(executionArn=candidate.execution_arn)

    def settle(self, candidate: Candidate, timeout: float) -> tuple[str, str | None]:
        """Execution status and record status once the redriven run has finished (or timed out)."""
        execution = wait_until_settled(self.store, candidate.execution_arn, timeout)
        record = self.store.record(candidate.notification_id) or {}
        return execution["status"], record.get("status")


def _progress(out: TextIO, done: int, total: int, failed: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} redriven, {failed} refused by the API")
    out.flush()


def bulk_redrive(
    redriver: Redriver,
    candidates: list[Candidate],
    rate: float,
    dry_run: bool,
    canary_timeout: float,
    out: TextIO | None = None,
) -> int:
    """Canary first, then the rest at ``rate`` per second; returns a process exit code."""
    out = out or sys.stdout
    refused = [c for c in candidates if c.refusal]
    eligible = [c for c in candidates if not c.refusal]
    for candidate in refused:
        print(f"skip  {candidate.notification_id}: {candidate.refusal}", file=out)
    if dry_run:
        for candidate in eligible:
            print(f"would redrive  {candidate.notification_id}  {candidate.execution_arn}", file=out)
        print(f"dry run: {len(eligible)} would be redriven, {len(refused)} cannot be", file=out)
        return 0
    if not eligible:
        print(f"nothing to redrive ({len(refused)} cannot be)", file=out)
        return 0
    canary, rest = eligible[0], eligible[1:]
    print(f"canary  {canary.notification_id}: redriving and waiting up to {canary_timeout:g}s", file=out)
    redriver.redrive(canary)
    run_status, record_status = redriver.settle(canary, canary_timeout)
    if record_status != RecordStatus.SUCCESS:
        print(
            f"canary did not succeed (run {run_status}, notification {record_status}); "
            f"stopping before the other {len(rest)}. Fix the endpoint and try again.",
            file=out,
        )
        return 1
    print(f"canary delivered; redriving {len(rest)} more at {rate:g}/s", file=out)
    api_failures: list[tuple[Candidate, str]] = []
    interval = 1.0 / rate if rate > 0 else 0.0
    for index, candidate in enumerate(rest, start=1):
        started = time.monotonic()
        try:
            redriver.redrive(candidate)
        except redriver.store.sfn.exceptions.ClientError as exc:
            api_failures.append((candidate, str(exc)))
        _progress(out, index, len(rest), len(api_failures))
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    if rest:
        out.write("\n")
    for candidate, message in api_failures:
        print(f"failed  {candidate.notification_id}: {message}", file=out)
    print(
        f"summary: canary delivered, {len(rest) - len(api_failures)} more redriven, "
        f"{len(api_failures)} refused by the API, {len(refused)} not redrivable",
        file=out,
    )
    return 1 if api_failures else 0


def run_redrive_command(deployment: Deployment, args: argparse.Namespace) -> int:
    """`notiflow redrive ID` or `notiflow redrive --status FAILED --since 6h ...`."""
    store = deployment.store()
    redriver = Redriver(store)
    if args.id:
        if args.id.startswith("arn:"):
            candidate = redriver.candidate(args.id, args.id)
        else:
            record = store.record(args.id)
            if record is None:
                raise LookupError(f"no notification {args.id}")
            candidate = redriver.candidate(args.id, record.get("executionArn") or store.execution_arn(args.id))
        return bulk_redrive(redriver, [candidate], args.rate, args.dry_run, args.wait_seconds)
    if args.status != RecordStatus.FAILED:
        raise ValueError("give a notification id, or --status FAILED for a bulk redrive")
    since = parse_since(args.since) if args.since else None
    run_filter = RunFilter(status=RecordStatus.FAILED, since=since, host=args.host, error=args.error)
    candidates = [
        redriver.candidate(row.notification_id, row.execution_arn or store.execution_arn(row.notification_id))
        for row in list_runs(store, run_filter)
    ]
    return bulk_redrive(redriver, candidates, args.rate, args.dry_run, args.wait_seconds)
