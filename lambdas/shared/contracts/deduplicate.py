"""Deduplicate's input and output: the claim an execution asks for and whether it got it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from lambdas.shared.models import Notification


class ClaimLease(BaseModel):
    """How long an Express run's claim holds: until its run (and any invocation it started) must be over."""

    seconds: int = Field(ge=1, description="from the run's start; the definition renders it from the timeouts")
    startedAt: str = Field(description="$$.Execution.StartTime of the claiming run")


class ClaimRequest(BaseModel):
    """Deduplicate's input, from either workflow.

    An Express run sends ``lease`` (its claim expires, so a later run can take it over after a
    crash) and ``standardExecutionArn`` (the run a hand-over would start). A Standard run sends
    ``handedOverBy``: the Express run that handed it over, whose claim it may take.
    """

    notificationId: str
    executionId: str
    replay: bool = False
    expiresAt: int
    notification: Notification
    lease: ClaimLease | None = None
    standardExecutionArn: str | None = None
    handedOverBy: str | None = None


class ClaimResult(BaseModel):
    """Deduplicate's output: whether this execution owns the notification."""

    claimed: bool
    duplicate: bool
    reason: str
    handedOver: bool = Field(
        default=False, description="the record is PROCESSING under the Standard run a hand-over starts"
    )
    takenOver: bool = Field(default=False, description="claimed from a crashed Express run whose lease expired")
    busy: bool = Field(default=False, description="another Express run holds a live claim (its lease has not ended)")
    existingStatus: str | None = None
    existingExecutionArn: str | None = None
