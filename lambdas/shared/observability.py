"""Powertools Logger, Metrics and Tracer, set up once, and the one decorator stack every handler wears.

Tracing never sees notification content. Powertools' ``capture_lambda_handler`` records a
handler's return value and raised exception as trace metadata by default; validate returns the
whole notification (bearer tokens in ``target.headers``, the payload) and the deliver errors
carry the last outcome. :func:`lambda_entry` switches both captures off in code and keeps the
exception away from the tracer altogether (the X-Ray SDK would otherwise record its message
when the subsegment closes): the subsegment gets the error's class name as an annotation, and
the exception is re-raised unchanged outside it, so Step Functions still sees name and message.

The Tracer is built on the first traced invocation and only when tracing is on: ``Tracer()``
imports the X-Ray SDK (and botocore with it) even when tracing is off, which a step that never
calls AWS must not pay for. It patches only botocore (see ``TRACED_LIBRARIES``).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared import constants as powertools_env
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

from lambdas.shared.constants import METRICS_NAMESPACE, SERVICE_NAME, EnvVar

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE: str = os.environ.get(EnvVar.POWERTOOLS_SERVICE_NAME) or SERVICE_NAME
"""``notiflow``, or ``notiflow-<stage>`` as the deployment sets it: the metrics' service dimension per stage."""
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)

TRACED_LIBRARIES: tuple[str, ...] = ("botocore",)
"""What the X-Ray SDK patches: AWS calls only. Not ``patch_all`` (it imports a dozen libraries no step
uses), and not ``requests``: its patch records each target URL in the trace (webhook URLs often carry
their secret in the path) and adds an ``X-Amzn-Trace-Id`` header to every request sent to a receiver."""

H = TypeVar("H", bound=Callable[..., Any])

_tracer_lock = threading.Lock()
_tracer_built = False
_tracer: Tracer | None = None


def tracing_enabled() -> bool:
    """Whether Powertools would trace here: inside Lambda, not under SAM/Chalice local, not switched off."""
    disabled = resolve_truthy_env_var_choice(env=os.environ.get(powertools_env.TRACER_DISABLED_ENV, "false"))
    emulated = os.environ.get(powertools_env.SAM_LOCAL_ENV) or os.environ.get(powertools_env.CHALICE_LOCAL_ENV)
    return not disabled and not emulated and bool(os.environ.get(powertools_env.LAMBDA_TASK_ROOT_ENV))


def tracer() -> Tracer | None:
    """The process Tracer, built once under a lock on first use; None when tracing is off."""
    global _tracer, _tracer_built
    if _tracer_built:
        return _tracer
    with _tracer_lock:
        if not _tracer_built:
            if tracing_enabled():
                from aws_lambda_powertools import Tracer

                _tracer = Tracer(service=SERVICE, patch_modules=TRACED_LIBRARIES)
            _tracer_built = True
    return _tracer


def use_tracer(replacement: Tracer | None) -> None:
    """Replace the process Tracer (None switches tracing off); for tests with an in-memory provider."""
    global _tracer, _tracer_built
    with _tracer_lock:
        _tracer, _tracer_built = replacement, True


def reset_tracer() -> None:
    """Forget the process Tracer; the next traced invocation decides again from the environment."""
    global _tracer, _tracer_built
    with _tracer_lock:
        _tracer, _tracer_built = None, False


def annotate(key: str, value: str | bool) -> None:
    """Add a searchable annotation to the current trace subsegment (nothing when tracing is off)."""
    active = tracer()
    if active is not None:
        active.put_annotation(key, value)


@dataclass(frozen=True)
class _Raised:
    """An exception carried out of the traced region as a value, so the tracer never records its message."""

    error: Exception


def lambda_entry(handler: H) -> H:
    """The decorator stack of every handler: Lambda context in logs, metrics flushed, traced without content."""

    def shielded(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        except Exception as exc:
            annotate("error", type(exc).__name__)
            return _Raised(exc)

    @functools.wraps(handler)
    def traced(event: Any, context: Any) -> Any:
        active = tracer()
        if active is None:
            return handler(event, context)
        wrapped = active.capture_lambda_handler(shielded, capture_response=False, capture_error=False)
        result = wrapped(event, context)
        if isinstance(result, _Raised):
            raise result.error
        return result

    shielded.__name__ = handler.__name__  # names the subsegment "## lambda_handler"
    return logger.inject_lambda_context(clear_state=True)(metrics.log_metrics(traced))  # type: ignore[return-value]


def bind_run(notification_id: str | None, execution_id: str | None, **extra: object) -> None:
    """Tag every following log line of this invocation with the notification and the run.

    The notification id doubles as the correlation id, so one search finds every
    line about a notification across ingest, all attempts and redrives. The keys are
    thread-local: on AWS one invocation runs at a time, but the embedded stack runs
    several handlers at once in one process and their lines must not borrow each
    other's ids.
    """
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(
        correlation_id=notification_id, notificationId=notification_id, executionId=execution_id, **extra
    )
