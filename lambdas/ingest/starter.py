"""Turning SQS messages into executions: naming, the execution input, and the start calls.

The execution name is the first layer of deduplication in the Standard workflow: Step Functions
keeps names unique per state machine for 90 days, so a re-sent notification cannot start a second
run. The fast path's Express runs carry the same name (a hand-over starts the Standard run under
it), but Express does not deduplicate by name: there the DynamoDB claim is the only exact layer.

In ``fast-path`` mode ingest runs the Express workflow synchronously and acknowledges a message
only when the run's outcome is durable (:func:`run_fast_path`); anything else leaves the message on
the queue, so SQS delivers it again after the visibility timeout, and a new run takes over the
crashed run's claim once its lease has expired.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas.shared.constants import REPLAY_ATTRIBUTE, FastPathOutcome
from lambdas.shared.errors import InvalidNotificationError
from lambdas.shared.models import MAX_ID_LENGTH, MAX_NESTING_DEPTH, MAX_NOTIFICATION_BYTES
from lambdas.shared.nesting import text_exceeds

MAX_NAME_LENGTH: Final = 80
RAW_BODY_EXCERPT: Final = 1024
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def _digest(text: str, length: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def execution_name(notification_id: str, replay_of: str | None = None) -> str:
    """Deterministic execution name for a notification id, within the 80-character name rules.

    Ids made only of letters, digits, '-' and '_' and short enough are used as they
    are (easy to find in the console); anything else keeps a readable prefix plus a
    hash of the full id, so distinct ids never share a name. A replay gets its own
    name derived from the replaying message's id, so SQS redelivery of the same
    replay message still deduplicates.
    """
    if replay_of is not None:
        base = execution_name(notification_id)[:50].rstrip("-_")
        return f"{base}-replay-{_digest(replay_of, 12)}"
    if len(notification_id) <= MAX_NAME_LENGTH and not _UNSAFE_NAME_CHARS.search(notification_id):
        return notification_id
    prefix = _UNSAFE_NAME_CHARS.sub("-", notification_id)[: MAX_NAME_LENGTH - 17].strip("-_") or "n"
    return f"{prefix}-{_digest(notification_id)}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        names = [name for name, _ in pairs]
        duplicate = next(name for index, name in enumerate(names) if name in names[:index])
        raise ValueError(f"member name {json.dumps(duplicate)[:80]} appears more than once")
    return result


def parse_body(body: str) -> Any:
    """Parse a message body as I-JSON (RFC 7493): what every later parser reads the same way.

    Python's parser accepts more than JSON, and each extra is a way for one message to mean two
    things: ``NaN``/``Infinity`` (no JSON value; Step Functions refuses such input, pydantic turns
    it into null), a duplicated member name (this parser keeps the last, others the first, so a
    producer-side check and the delivery could see different targets), and an escaped lone UTF-16
    surrogate (not a character: encoding it to UTF-8 fails later, in the middle of a run). All three
    raise ValueError here, so the message is rejected with the reason instead.
    """
    value = json.loads(body, parse_constant=_no_constant, object_pairs_hook=_unique_names)
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone UTF-16 surrogate, which is not a character") from None
    return value


@dataclass(frozen=True)
class StartRequest:
    """One StartExecution call derived from one SQS record."""

    name: str
    input: dict[str, Any]


def _is_replay(record: dict[str, Any]) -> bool:
    attribute = (record.get("messageAttributes") or {}).get(REPLAY_ATTRIBUTE) or {}
    return str(attribute.get("stringValue", "")).lower() == "true"


def build_start_request(
    record: dict[str, Any], queue_arn: str | None, ttl_days: int, now: float | None = None
) -> StartRequest:
    """Map an SQS record to an execution; a body that is not a notification still gets a run.

    Bad input must never vanish: when the body is not JSON, too large, nested too deeply,
    or has no usable notificationId, the run is keyed by the SQS message id and the Validate
    state rejects it with the reason, visible in the console and in the table. Such a run's
    input carries only the reason and a short excerpt (a string), never the body's structure,
    so nothing downstream (Step Functions included) has to parse a hostile shape.
    """
    message_id = str(record.get("messageId", ""))
    body = record.get("body") or ""
    now = time.time() if now is None else now
    notification: Any = None
    parse_error: str | None = None
    size = len(body.encode("utf-8"))
    if size > MAX_NOTIFICATION_BYTES:
        parse_error = f"message body is {size} bytes, above the {MAX_NOTIFICATION_BYTES}-byte limit (200 KiB)"
    elif text_exceeds(body, MAX_NESTING_DEPTH):
        parse_error = f"body nests arrays/objects more than {MAX_NESTING_DEPTH} levels deep (the limit)"
    else:
        try:
            notification = parse_body(body)
        except (ValueError, RecursionError) as exc:
            parse_error = f"body is not valid JSON ({exc})"
    candidate = notification.get("notificationId") if isinstance(notification, dict) else None
    notification_id = f"sqs-{message_id}"
    if isinstance(candidate, str) and 0 < len(candidate) <= MAX_ID_LENGTH and candidate.isprintable():
        notification_id = candidate
    replay = _is_replay(record)
    execution_input = {
        "notificationId": notification_id,
        "notification": notification if parse_error is None else None,
        "rawBody": body[:RAW_BODY_EXCERPT] if parse_error else None,
        "parseError": parse_error,
        "source": {
            "sqsMessageId": message_id,
            "queueArn": queue_arn,
            "sentTimestamp": (record.get("attributes") or {}).get("SentTimestamp"),
        },
        "replay": replay,
        "expiresAt": int(now + ttl_days * 86400),
        "fastPathExecutionArn": None,
    }
    return StartRequest(name=execution_name(notification_id, message_id if replay else None), input=execution_input)


def start(sfn_client: Any, state_machine_arn: str, request: StartRequest) -> tuple[str, bool]:
    """Start the execution; returns (execution ARN or name, started). An existing name counts as done."""
    try:
        response = sfn_client.start_execution(
            stateMachineArn=state_machine_arn,
            name=request.name,
            input=json.dumps(request.input, separators=(",", ":")),
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            return request.name, False
        raise
    return response["executionArn"], True


class FastPathNotDoneError(RuntimeError):
    """The Express run did not reach a durable outcome; the message stays on the queue for another run."""


@dataclass(frozen=True)
class FastPathResult:
    """How one synchronous Express run ended, as ingest judges it."""

    execution_arn: str
    status: str
    outcome: str | None
    error: str | None = None

    @property
    def durable(self) -> bool:
        """Whether the message can be acknowledged: delivered, handed over, rejected or owned by another run."""
        if self.status == "SUCCEEDED":
            return self.outcome in {o.value for o in FastPathOutcome if o.durable}
        return self.status == "FAILED" and self.error == InvalidNotificationError.__name__


def run_fast_path(sfn_client: Any, state_machine_arn: str, request: StartRequest) -> FastPathResult:
    """StartSyncExecution of the Express workflow; the result says whether its outcome is durable.

    A rejected notification ends the Express run FAILED with ``InvalidNotificationError`` after
    its REJECTED record is written (as the Standard run does), so that counts as durable; every
    other failure, a time-out, or a stale write does not.
    """
    response = sfn_client.start_sync_execution(
        stateMachineArn=state_machine_arn,
        name=request.name,
        input=json.dumps(request.input, separators=(",", ":")),
    )
    outcome: str | None = None
    if response.get("status") == "SUCCEEDED":
        try:
            parsed = json.loads(response.get("output") or "{}")
        except ValueError:
            parsed = {}
        outcome = parsed.get("outcome") if isinstance(parsed, dict) else None
    return FastPathResult(
        execution_arn=str(response.get("executionArn", request.name)),
        status=str(response.get("status")),
        outcome=outcome,
        error=response.get("error"),
    )
