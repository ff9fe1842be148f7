"""The redrive gate: makes redriving a failed delivery useful.

AWS redrive resumes a failed run at the state that failed. If a delivery failure
ended in a plain Fail state, a redrive would re-enter that Fail state and fail
again. This gate is the state the run fails in instead: on the first pass it
re-raises the delivery error (same name, last outcome as message) so the console
shows why the run failed; when a redrive re-runs it, the live redrive count is
higher than the one captured when the failure was recorded, and it lets the
workflow reopen the notification and deliver again under the same execution.
"""

from __future__ import annotations

import json

from lambdas.shared.contracts.failure_gate import GateDecision, GateRequest
from lambdas.shared.errors import DeliveryFailedError, DeliveryPermanentError, DeliveryRetryableError, NotiflowError

_KNOWN: dict[str, type[NotiflowError]] = {
    cls.__name__: cls for cls in (DeliveryRetryableError, DeliveryPermanentError, DeliveryFailedError)
}


def last_outcome(cause: str | None) -> str:
    """The last delivery outcome as compact JSON, or the raw cause when it is not ours."""
    if not cause:
        return "no cause recorded"
    try:
        message = json.loads(cause).get("errorMessage", cause)
        outcome = json.loads(message).get("outcome")
    except (ValueError, AttributeError):
        return cause
    return json.dumps(outcome, separators=(",", ":")) if outcome is not None else message


def decide(request: GateRequest) -> GateDecision:
    """Reopen on a redrive; otherwise raise the error the run must fail with."""
    if request.redriveCount > request.failedAtRedriveCount:
        return GateDecision(redriveCount=request.redriveCount)
    error_class = _KNOWN.get(request.error.Error)
    if error_class is None:
        raise DeliveryFailedError(f"{request.error.Error}: {request.error.Cause or 'no cause recorded'}")
    raise error_class(last_outcome(request.error.Cause))
