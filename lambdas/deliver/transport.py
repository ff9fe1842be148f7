"""One HTTP delivery attempt, returned as a value: :func:`send` never raises for HTTP or network failures.

Every way an attempt can end maps to a :class:`DeliveryOutcome` with a category and a
retry verdict, so the handler only decides which named error to raise.

SSRF: the target name is resolved and vetted before the request (clear message,
DNS failures classified), and every socket the session connects is vetted again by
its peer address right after ``connect()``. The second check is what makes DNS
rebinding useless: whatever address the HTTP client finally reaches must pass the
policy, however the name resolved a moment earlier. It costs one ``getpeername()``
and relies on urllib3's private ``_new_conn`` hook (urllib3 2.x; covered by tests for
HTTP and HTTPS). The peer check reads the process settings (``get_settings()``).

The response body is read with a byte cap and a wall-clock limit of connect + read
timeout from the start of the attempt; the status line and headers are bounded only
per socket read (the read timeout), so a server dripping headers is ended by the
Lambda timeout instead.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException, RemoteDisconnected
from typing import Final
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from lambdas.deliver import signing
from lambdas.shared.clock import utc_iso
from lambdas.shared.config import Settings, get_settings
from lambdas.shared.models import Category, DeliveryOutcome, Notification
from lambdas.shared.observability import logger
from lambdas.shared.ssrf import (
    TargetBlockedError,
    TargetResolutionError,
    check_address,
    host_is_allowed,
    resolve_and_check,
)

USER_AGENT: Final = "Notiflow/0.1"
EXCERPT_CHARS: Final = 1024
MAX_RETRY_AFTER_SECONDS: Final = 86_400
RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 429})
_READ_CHUNK: Final = 16 * 1024
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class _PeerCheckMixin:
    """Refuses a freshly connected socket whose peer address the SSRF policy blocks."""

    host: str

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        if not host_is_allowed(self.host, get_settings()):
            peer = str(sock.getpeername()[0])
            reason = check_address(peer)
            if reason is not None:
                sock.close()
                raise TargetBlockedError(self.host, peer, reason)
        return sock


class _GuardedHTTPConnection(_PeerCheckMixin, urllib3.connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_PeerCheckMixin, urllib3.connection.HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """HTTPAdapter whose connections pass the SSRF peer check; no retries, the workflow owns those."""

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


def _build_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy, netrc or CA bundle from the environment: the peer check needs direct sockets
    session.headers["User-Agent"] = USER_AGENT
    adapter = GuardedAdapter(pool_connections=16, pool_maxsize=8, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


SESSION: Final = _build_session()
"""Module-level, so warm invocations reuse TCP and TLS connections."""


@dataclass(frozen=True)
class BodyRead:
    """What was read of a response body: at most the cap, and why reading stopped early."""

    data: bytes
    truncated: bool
    problem: str | None = None


def parse_retry_after(value: str | None, now: datetime | None = None) -> int | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), clamped to 0..86400."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if re.fullmatch(r"[0-9]+", text):
        seconds = int(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = math.ceil((when - (now or datetime.now(UTC))).total_seconds())
    return max(0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def read_capped(response: requests.Response, cap: int, deadline: float) -> BodyRead:
    """Read at most ``cap + 1`` bytes, stop at the monotonic ``deadline``, and always release the response.

    ``read1`` returns whatever one socket read brings, so a body dripped a byte at a
    time still meets the deadline check; each read is bounded by the read timeout.
    """
    buffer = bytearray()
    problem = None
    finished = False
    try:
        while len(buffer) <= cap:
            if time.monotonic() > deadline:
                problem = "response body still arriving at the time limit; reading stopped"
                break
            chunk = response.raw.read1(min(_READ_CHUNK, cap + 1 - len(buffer)), decode_content=True)
            if not chunk:
                finished = True
                break
            buffer += chunk
    except (urllib3.exceptions.HTTPError, HTTPException, OSError) as exc:
        problem = f"response body incomplete: {_describe_cause(exc)}"
    finally:
        if finished:
            response.raw.release_conn()
        else:
            response.close()
    truncated = len(buffer) > cap
    return BodyRead(bytes(buffer[:cap]), truncated, problem)


def build_request(notification: Notification, attempt: int, keys: list[bytes], now: float) -> tuple[bytes, dict]:
    """Body bytes and headers of one attempt; ``webhook-id`` is the notification id, stable across retries."""
    body = json.dumps(notification.payload, separators=(",", ":")).encode()
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(
        {name: value for name, value in notification.target.headers.items() if name.lower() not in _FRAMING_HEADERS}
    )
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = USER_AGENT
    headers.update(signing.signature_headers(keys, notification.notificationId, int(now), body))
    headers["X-Notiflow-Attempt"] = str(attempt)
    if notification.correlationId:
        headers["X-Correlation-Id"] = notification.correlationId
    return body, dict(headers)


def send(
    notification: Notification,
    attempt: int,
    *,
    keys: list[bytes] | None = None,
    settings: Settings | None = None,
) -> DeliveryOutcome:
    """Make one signed attempt and classify it; HTTP and network failures come back as outcomes."""
    settings = settings or get_settings()
    started_at = datetime.now(UTC)
    started = time.monotonic()
    base = {
        "timestamp": utc_iso(started_at),
        "correlationId": notification.correlationId,
        "attempt": attempt,
    }

    def failed(category: Category, retryable: bool, details: str) -> DeliveryOutcome:
        return DeliveryOutcome(
            success=False,
            retryEligible=retryable,
            category=category,
            responseTime=_elapsed_ms(started),
            errorDetails=details,
            **base,
        )

    url = notification.target.url
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        return failed(Category.CONNECTION_ERROR, False, "target URL cannot be parsed")
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in settings.allowed_schemes:
        return failed(Category.CONNECTION_ERROR, False, f"target scheme '{scheme}' is not allowed")
    if not host:
        return failed(Category.CONNECTION_ERROR, False, "target URL has no host")
    endpoint = f"{host}:{port}"
    try:
        resolve_and_check(host, port, settings)
    except TargetBlockedError as exc:
        return failed(Category.CONNECTION_ERROR, False, str(exc))
    except TargetResolutionError:
        return failed(Category.CONNECTION_ERROR, True, f"DNS resolution failed for {host}")

    body, headers = build_request(notification, attempt, keys or [], time.time())
    try:
        response = SESSION.request(
            notification.target.method.value,
            url,
            data=body,
            headers=headers,
            timeout=(settings.connect_timeout_seconds, settings.read_timeout_seconds),
            allow_redirects=False,
            stream=True,
            verify=True,
        )
    except TargetBlockedError as exc:
        return failed(Category.CONNECTION_ERROR, False, str(exc))
    except requests.exceptions.ConnectTimeout:
        return failed(
            Category.TIMEOUT, True, f"no connection to {endpoint} within {settings.connect_timeout_seconds:g} s"
        )
    except requests.exceptions.ReadTimeout:
        return failed(Category.TIMEOUT, True, f"no response from {endpoint} within {settings.read_timeout_seconds:g} s")
    except requests.exceptions.ConnectionError as exc:
        return failed(Category.CONNECTION_ERROR, True, f"{_describe_cause(exc)} ({endpoint})")
    except (requests.exceptions.RequestException, ValueError) as exc:
        # Invalid URL or header: the message may echo a header value, so only the type is shown.
        return failed(Category.CONNECTION_ERROR, False, f"request could not be sent: {type(exc).__name__}")

    received_at = datetime.now(UTC)
    deadline = started + settings.connect_timeout_seconds + settings.read_timeout_seconds
    read = read_capped(response, settings.max_response_bytes, deadline)
    return classify_response(
        response, read, settings.max_response_bytes, base, received_at=received_at, elapsed_ms=_elapsed_ms(started)
    )


def classify_response(
    response: requests.Response,
    read: BodyRead,
    cap: int,
    base: dict,
    *,
    received_at: datetime,
    elapsed_ms: int,
) -> DeliveryOutcome:
    """Category and retry verdict of an HTTP response, with the details a human needs."""
    status = response.status_code
    reason = response.reason or ""
    retry_after = parse_retry_after(response.headers.get("Retry-After"), received_at)
    if 200 <= status < 300:
        category, retryable = Category.SUCCESS, False
    elif 300 <= status < 400:
        category, retryable = Category.CLIENT_ERROR, False
    elif 400 <= status < 500:
        category, retryable = Category.CLIENT_ERROR, status in RETRYABLE_CLIENT_STATUSES
    else:
        category, retryable = Category.SERVER_ERROR, True

    notes = []
    if category is not Category.SUCCESS:
        notes.append(f"HTTP {status} {reason}".rstrip())
        if 300 <= status < 400:
            location = response.headers.get("Location")
            notes.append(f"redirect to {location[:512]} not followed" if location else "redirect not followed")
        if retry_after is not None:
            notes.append(f"Retry-After {retry_after} s")
        if read.truncated:
            notes.append(f"response body larger than {cap} bytes; read stopped at the cap")
        if read.problem:
            notes.append(read.problem)
    elif read.truncated or read.problem:
        logger.info(
            "delivered; response body not read in full",
            extra={"truncated": read.truncated, "problem": read.problem, "cap": cap},
        )
    return DeliveryOutcome(
        success=category is Category.SUCCESS,
        retryEligible=retryable,
        category=category,
        statusCode=status,
        statusText=reason or None,
        responseTime=elapsed_ms,
        errorDetails="; ".join(notes) or None,
        httpResponseReceivedAt=utc_iso(received_at),
        retryAfterSeconds=retry_after,
        responseBodyExcerpt=_excerpt(read.data, response.encoding),
        **base,
    )


def _excerpt(data: bytes, encoding: str | None) -> str | None:
    if not data:
        return None
    try:
        text = data[: EXCERPT_CHARS * 4].decode(encoding or "utf-8", errors="replace")
    except LookupError:
        text = data[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS]


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))


def _describe_cause(exc: BaseException) -> str:
    """A short, secret-free description of the innermost network error (never the URL or headers)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    causes: list[BaseException] = []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        causes.append(current)
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args]
        stack.extend(item for item in nested if isinstance(item, BaseException))
    for cause in causes:
        if isinstance(cause, socket.gaierror | urllib3.exceptions.NameResolutionError):
            return "DNS resolution failed"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(cause, RemoteDisconnected):
            return "connection closed before a complete response"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or type(cause).__name__}"
        if isinstance(cause, urllib3.exceptions.IncompleteRead | urllib3.exceptions.ProtocolError):
            return "connection closed before a complete response"
    return f"connection failed ({type(causes[-1]).__name__})"
