"""One HTTP delivery attempt, returned as a value: :func:`send` never raises for HTTP or network failures.

Every way an attempt can end maps to a :class:`DeliveryOutcome` (see ``classify.py``), so the
handler only decides which named error to raise.

SSRF: the session's adapter resolves the target once per attempt, checks every address
against the policy (``lambdas/shared/ssrf.py``) and connects to those vetted addresses
only: the connection never resolves the name again, so DNS rebinding (a public answer for
the check, a private one for the connection) has nothing to exploit, and no socket to a
blocked address is ever opened. The name still travels in the Host header and in TLS SNI,
and the certificate is verified against it. Vetted addresses are part of the connection
pool's key, so a kept-alive connection is reused only for an address vetted again.

The response body is read with a byte cap and a wall-clock limit of connect + read
timeout from the start of the attempt; the status line and headers are bounded only
per socket read (the read timeout), so a server dripping headers is ended by the
Lambda timeout instead.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import socket
import ssl
import time
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from http.client import HTTPException, RemoteDisconnected
from typing import Any, Final, cast
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import PoolKey, _default_key_normalizer

from lambdas.deliver import signing
from lambdas.deliver.classify import AttemptStart, BodyRead, classify_response
from lambdas.shared.clock import utc_iso
from lambdas.shared.config import Settings, get_settings
from lambdas.shared.models import Category, DeliveryOutcome, Notification
from lambdas.shared.observability import logger
from lambdas.shared.ssrf import TargetBlockedError, TargetResolutionError, resolve_and_check

USER_AGENT: Final = "Notiflow/0.1"
_READ_CHUNK: Final = 16 * 1024
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

_policy: ContextVar[Settings | None] = ContextVar("notiflow_ssrf_policy", default=None)
"""The settings the current attempt is vetted under (``send`` sets them; else the process settings)."""

_PINNED_POOL_KEY = cast("type[PoolKey]", namedtuple("_PinnedPoolKey", [*PoolKey._fields, "key_vetted_addresses"]))
"""urllib3's pool key plus the vetted addresses: a pooled connection is reused only for the addresses it opened to."""


def _connect(
    address: str,
    port: int,
    timeout: Any,
    source_address: tuple[str, int] | None,
    socket_options: Any,
) -> socket.socket:
    """Open a TCP connection to one vetted IP address; nothing is resolved here."""
    text, _, scope = address.partition("%")
    ip = ipaddress.ip_address(text)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    target: tuple[Any, ...] = (text, port)
    if ip.version == 6:
        target = (text, port, 0, int(scope) if scope.isdigit() else socket.if_nametoindex(scope) if scope else 0)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        for level, option, value in socket_options or ():
            sock.setsockopt(level, option, value)
        if timeout is None or isinstance(timeout, int | float):
            sock.settimeout(timeout)
        if source_address:
            sock.bind(source_address)
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedConnectionMixin:
    """A urllib3 connection that connects to the addresses vetted for its host, and nowhere else."""

    host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any

    def __init__(self, *args: Any, vetted_addresses: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vetted_addresses = vetted_addresses

    def _new_conn(self) -> socket.socket:
        if not self.vetted_addresses:
            raise TargetBlockedError(self.host, None, "not vetted (no address was checked)")
        error: OSError | None = None
        for address in self.vetted_addresses:
            try:
                return _connect(address, self.port, self.timeout, self.source_address, self.socket_options)
            except OSError as exc:
                error = exc
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error  # type: ignore[arg-type]


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class VettedAdapter(HTTPAdapter):
    """HTTPAdapter that vets the target once per request and pins the connection to the vetted addresses.

    No retries (the workflow owns those) and no proxies (a proxy would do its own resolution).
    """

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}
        self.poolmanager.key_fn_by_scheme = {
            scheme: functools.partial(_default_key_normalizer, _PINNED_POOL_KEY) for scheme in ("http", "https")
        }

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: dict[str, str] | None = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        if any(proxies.values() if proxies else ()):
            raise TargetBlockedError(urlsplit(request.url or "").hostname or "", None, "behind a proxy (not allowed)")
        try:
            host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        except ValueError as exc:
            raise requests.exceptions.InvalidURL(exc, request=request) from exc
        port = host_params.get("port") or _DEFAULT_PORTS.get(host_params["scheme"], 0)
        addresses = resolve_and_check(host_params["host"], port, _policy.get() or get_settings())
        pool_kwargs["vetted_addresses"] = tuple(addresses)
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)


def _build_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy, netrc or CA bundle from the environment
    session.headers["User-Agent"] = USER_AGENT
    adapter = VettedAdapter(pool_connections=16, pool_maxsize=8, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


SESSION: Final = _build_session()
"""Module-level, so warm invocations reuse TCP and TLS connections (requests sessions are safe to share here:
one adapter, no cookies kept between attempts that matter, pools are thread-safe)."""


@contextmanager
def vetted_under(settings: Settings) -> Iterator[None]:
    """Vet the requests made in this block (this thread or task) under ``settings``."""
    token = _policy.set(settings)
    try:
        yield
    finally:
        _policy.reset(token)


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
    """Body bytes and headers of one attempt.

    ``webhook-id`` is the notification id in its header form (stable across attempts and
    redrives, and exactly what is signed); ``X-Correlation-Id`` uses the same form.
    """
    body = json.dumps(notification.payload, separators=(",", ":")).encode()
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(
        {name: value for name, value in notification.target.headers.items() if name.lower() not in _FRAMING_HEADERS}
    )
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = USER_AGENT
    headers.update(signing.signature_headers(keys, signing.webhook_id(notification.notificationId), int(now), body))
    headers["X-Notiflow-Attempt"] = str(attempt)
    if notification.correlationId:
        headers["X-Correlation-Id"] = signing.header_form(notification.correlationId)
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
    started = time.monotonic()
    start = AttemptStart(timestamp=utc_iso(), attempt=attempt, correlationId=notification.correlationId)

    def failed(category: Category, retryable: bool, details: str) -> DeliveryOutcome:
        return start.failed(category, retryable, details, _elapsed_ms(started))

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

    body, headers = build_request(notification, attempt, keys or [], time.time())
    try:
        with vetted_under(settings):
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
    except TargetResolutionError:
        return failed(Category.CONNECTION_ERROR, True, f"DNS resolution failed for {host}")
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
    outcome = classify_response(
        start,
        status=response.status_code,
        reason=response.reason or "",
        headers=response.headers,
        read=read,
        encoding=response.encoding,
        cap=settings.max_response_bytes,
        received_at=received_at,
        elapsed_ms=_elapsed_ms(started),
    )
    if outcome.success and (read.truncated or read.problem):
        logger.info(
            "delivered; response body not read in full",
            extra={"truncated": read.truncated, "problem": read.problem, "cap": settings.max_response_bytes},
        )
    return outcome


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
