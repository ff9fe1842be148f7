"""Validation rules: the notification contract, the URL and header policy, the size bound.

Every problem found is reported, not just the first, so a producer fixes a bad
message in one round trip.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from lambdas.shared.config import Settings
from lambdas.shared.contracts.validate import ExecutionInput, ValidatedInput
from lambdas.shared.errors import InvalidNotificationError
from lambdas.shared.models import (
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_HEADERS,
    MAX_HEADERS_BYTES,
    MAX_NESTING_DEPTH,
    MAX_NOTIFICATION_BYTES,
    Notification,
)
from lambdas.shared.nesting import value_exceeds
from lambdas.shared.ssrf import host_problem

HOP_BY_HOP_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
RESERVED_HEADERS: Final = frozenset(
    {"host", "content-length", "content-type", "webhook-id", "webhook-timestamp", "webhook-signature"}
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_VALUE_CHARS = re.compile(r"[\r\n\x00]")


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "notification"
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}: {message}")
    return problems


def url_problems(url: str, settings: Settings) -> list[str]:
    """What is wrong with a target URL under the configured policy (empty when it is fine)."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return ["target.url: must not contain whitespace or control characters"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"target.url: not a valid URL ({exc})"]
    problems = []
    scheme = parts.scheme.lower()
    if scheme not in settings.allowed_schemes:
        allowed = ", ".join(settings.allowed_schemes)
        problems.append(f"target.url: scheme '{scheme or '(none)'}' is not allowed (allowed: {allowed})")
    if not parts.hostname:
        problems.append("target.url: host is missing")
    if parts.username is not None or parts.password is not None:
        problems.append("target.url: credentials in the URL are not allowed; use target.headers")
    if port == 0:
        problems.append("target.url: port 0 is not valid")
    if parts.hostname:
        reason = host_problem(parts.hostname, settings)
        if reason:
            problems.append(f"target.url: {reason}")
    return problems


def header_problems(headers: dict[str, str]) -> list[str]:
    """What is wrong with the target's extra headers (empty when they are fine)."""
    problems = []
    if len(headers) > MAX_HEADERS:
        problems.append(f"target.headers: {len(headers)} headers, at most {MAX_HEADERS} allowed")
    seen: set[str] = set()
    total = 0
    for name, value in headers.items():
        lowered = name.lower()
        total += len(name) + len(value) + 4
        if not _TOKEN.match(name) or len(name) > MAX_HEADER_NAME_LENGTH:
            problems.append(
                f"target.headers: '{name[:80]}' is not a valid header name (token, max {MAX_HEADER_NAME_LENGTH})"
            )
        elif lowered in HOP_BY_HOP_HEADERS:
            problems.append(f"target.headers: '{name}' is a hop-by-hop header and cannot be forwarded")
        elif lowered in RESERVED_HEADERS:
            problems.append(f"target.headers: '{name}' is set by Notiflow and cannot be overridden")
        if lowered in seen:
            problems.append(f"target.headers: '{name}' appears more than once (header names are case-insensitive)")
        seen.add(lowered)
        if _FORBIDDEN_VALUE_CHARS.search(value):
            problems.append(f"target.headers: value of '{name}' contains CR, LF or NUL")
        elif not _latin1(value):
            problems.append(f"target.headers: value of '{name}' has characters an HTTP header cannot carry")
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            problems.append(f"target.headers: value of '{name}' is longer than {MAX_HEADER_VALUE_LENGTH} characters")
    if total > MAX_HEADERS_BYTES:
        problems.append(f"target.headers: {total} bytes in all, at most {MAX_HEADERS_BYTES} allowed")
    return problems


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def validate_notification(raw: Any, settings: Settings) -> Notification:
    """Parse and check one notification; raises InvalidNotificationError listing every problem."""
    if not isinstance(raw, dict):
        raise InvalidNotificationError(f"notification must be a JSON object, got {type(raw).__name__}")
    if value_exceeds(raw, MAX_NESTING_DEPTH):
        raise InvalidNotificationError(
            f"notification nests arrays/objects more than {MAX_NESTING_DEPTH} levels deep (the limit)"
        )
    size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_NOTIFICATION_BYTES:
        raise InvalidNotificationError(
            f"notification is {size} bytes, above the {MAX_NOTIFICATION_BYTES}-byte limit (200 KiB)"
        )
    try:
        notification = Notification.model_validate(raw)
    except ValidationError as exc:
        raise InvalidNotificationError("; ".join(_pydantic_problems(exc))) from None
    problems = url_problems(notification.target.url, settings) + header_problems(notification.target.headers)
    if problems:
        raise InvalidNotificationError("; ".join(problems))
    return notification


def validate_execution_input(event_input: Any, settings: Settings) -> ValidatedInput:
    """Validate the whole execution input that ingest produced; returns the normalized state."""
    try:
        execution_input = ExecutionInput.model_validate(event_input)
    except ValidationError as exc:
        raise InvalidNotificationError("execution input: " + "; ".join(_pydantic_problems(exc))) from None
    if execution_input.parseError:
        raise InvalidNotificationError(f"message body is not a valid notification: {execution_input.parseError}")
    notification = validate_notification(execution_input.notification, settings)
    if notification.notificationId != execution_input.notificationId:
        raise InvalidNotificationError(
            "notificationId in the body does not match the execution's notificationId "
            f"('{notification.notificationId}' vs '{execution_input.notificationId}')"
        )
    return ValidatedInput(
        notificationId=notification.notificationId,
        notification=notification,
        source=execution_input.source,
        replay=execution_input.replay,
        expiresAt=execution_input.expiresAt,
        fastPathExecutionArn=execution_input.fastPathExecutionArn,
    )
