"""Validate's input (what ingest starts either workflow with) and its output."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lambdas.shared.models import Notification


class ExecutionInput(BaseModel):
    """What ingest passes to either workflow; ``notification`` is the parsed body, unvalidated.

    A Standard run started by the fast path gets the same fields (and, for a hand-over, the
    Express run's first outcome besides them, which Validate does not read).
    """

    model_config = ConfigDict(extra="allow")

    notificationId: str
    notification: Any = None
    rawBody: str | None = None
    parseError: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)
    replay: bool = False
    expiresAt: int = Field(description="epoch seconds after which DynamoDB may expire the record")
    fastPathExecutionArn: str | None = Field(
        default=None, description="the Express run that started this Standard run (None when ingest did)"
    )


class RetryAfterCount(BaseModel):
    """Retry-After waits honoured so far in this run (the workflow adds the seconds of the next one)."""

    waits: int = Field(default=0, ge=0)


class ValidatedInput(BaseModel):
    """Validate's output: the state the rest of either workflow works on.

    Besides the normalized notification it starts the run's Retry-After count and carries the
    fast-path link, so no state downstream needs a Pass state to initialise them.
    """

    notificationId: str
    notification: Notification
    source: dict[str, Any] = Field(default_factory=dict)
    replay: bool = False
    expiresAt: int
    retryAfter: RetryAfterCount = Field(default_factory=RetryAfterCount)
    fastPathExecutionArn: str | None = None
