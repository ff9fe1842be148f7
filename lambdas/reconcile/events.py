"""The one event the reconciler reads: EventBridge's "Step Functions Execution Status Change".

Its ``detail`` carries what DescribeExecution returns (dates as epoch milliseconds). Only the fields
the reconciler decides on are modelled; ``input`` is read for the notification id alone, and never
logged or stored, since it is the notification itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lambdas.shared.constants import STATUS_CHANGE_DETAIL_TYPE as DETAIL_TYPE
from lambdas.shared.constants import STATUS_CHANGE_SOURCE as SOURCE
from lambdas.shared.constants import ExecutionStatus
from lambdas.shared.models import notification_id_of_input


class NotAStatusChangeError(ValueError):
    """The event is not a Step Functions execution status change."""


class ExecutionDataDetails(BaseModel):
    """Whether the event carries the execution's input (EventBridge drops inputs above 248 KB)."""

    model_config = ConfigDict(extra="ignore")

    included: bool = True


class StatusChange(BaseModel):
    """The ``detail`` of one execution status change event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    executionArn: str
    stateMachineArn: str | None = None
    name: str | None = None
    status: ExecutionStatus
    startDate: datetime | None = None
    stopDate: datetime | None = None
    input: str | None = None
    inputDetails: ExecutionDataDetails | None = None
    error: str | None = None
    cause: str | None = None
    redriveCount: int = Field(default=0, ge=0)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> StatusChange:
        """Parse an EventBridge event; NotAStatusChangeError when it is another kind of event."""
        if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
            raise NotAStatusChangeError(f"not a {DETAIL_TYPE} event: {event.get('detail-type')!r}")
        return cls.model_validate(event.get("detail") or {})

    @property
    def redriven(self) -> bool:
        """Whether this change belongs to a redrive (the execution has been redriven at least once)."""
        return self.redriveCount > 0

    def notification_id(self) -> str | None:
        """The notification id in the execution input, when the event carries the input."""
        if not self.input or (self.inputDetails is not None and not self.inputDetails.included):
            return None
        return notification_id_of_input(self.input)
