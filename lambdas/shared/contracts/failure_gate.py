"""The failure gate's input (a Catch's error and the redrive counts) and its decision."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StateError(BaseModel):
    """The ``{Error, Cause}`` object a Catch writes into the state."""

    Error: str
    Cause: str | None = None


class GateRequest(BaseModel):
    """Failure gate input: live redrive count vs. the count when the failure was recorded."""

    notificationId: str
    executionId: str
    redriveCount: int = Field(ge=0)
    failedAtRedriveCount: int = Field(ge=0)
    error: StateError


class GateDecision(BaseModel):
    """Failure gate output on a redrive: reopen the notification and deliver again."""

    reopen: Literal[True] = True
    redriveCount: int
