"""Deliver's input; its output is a :class:`~lambdas.shared.models.DeliveryOutcome` and an item."""

from __future__ import annotations

from pydantic import BaseModel, Field

from lambdas.shared.models import Notification


class DeliverRequest(BaseModel):
    """Deliver's input; ``retryCount`` is ``$$.State.RetryCount`` of the Deliver state."""

    notification: Notification
    executionId: str
    retryCount: int = Field(default=0, ge=0)
    retryAfterWaits: int = Field(default=0, ge=0, description="Retry-After waits already honoured in this run")
    maxRetryAfterWaits: int = Field(default=0, ge=0, description="how many the workflow honours at most")
    maxRetryAfterSeconds: int = Field(
        ge=1, description="longest single Retry-After wait honoured; the definition sets it (its one home)"
    )
