"""Logs carry the run they belong to; traces never carry notification content (bearer tokens, payloads)."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider

from lambdas.shared import observability
from lambdas.shared.errors import InvalidNotificationError
from lambdas.shared.observability import bind_run, logger
from lambdas.validate.handler import lambda_handler as validate_handler
from tests.support import load_event


def test_concurrent_invocations_keep_their_own_ids() -> None:
    # Given two invocations in two threads of one process (as in the embedded stack)
    stream = io.StringIO()
    handler = logger.registered_handler
    original = handler.setStream(stream)
    a_bound, b_bound = threading.Event(), threading.Event()

    def first() -> None:
        bind_run("notification-a", "arn:exec:a")
        a_bound.set()
        b_bound.wait(5)
        logger.warning("from a")

    def second() -> None:
        a_bound.wait(5)
        bind_run("notification-b", "arn:exec:b")
        b_bound.set()
        logger.warning("from b")

    try:
        # When the second binds its ids while the first is still running
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    finally:
        handler.setStream(original)

    # Then each line names its own notification, run and correlation id
    lines = {line["message"]: line for line in map(json.loads, stream.getvalue().splitlines())}
    assert lines["from a"]["notificationId"] == lines["from a"]["correlation_id"] == "notification-a"
    assert lines["from a"]["executionId"] == "arn:exec:a"
    assert lines["from b"]["notificationId"] == lines["from b"]["correlation_id"] == "notification-b"
    assert lines["from b"]["executionId"] == "arn:exec:b"


class RecordingSegment:
    """A trace (sub)segment that keeps everything a tracer hands it, as the X-Ray SDK would ship it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.annotations: dict[str, object] = {}
        self.metadata: list[tuple[str, str, object]] = []
        self.exceptions: list[str] = []

    def put_annotation(self, key: str, value: object) -> None:
        self.annotations[key] = value

    def put_metadata(self, key: str, value: object, namespace: str = "default") -> None:
        self.metadata.append((namespace, key, value))

    def add_exception(self, exception: BaseException, stack: object = None, remote: bool = False) -> None:
        self.exceptions.append(f"{type(exception).__name__}: {exception}")

    def add_subsegment(self, subsegment: object) -> None:
        pass

    def remove_subsegment(self, subsegment: object) -> None:
        pass

    def close(self, end_time: int | None = None) -> None:
        pass


class RecordingProvider(BaseProvider):
    """An in-memory tracing provider (Powertools' provider API): records what would reach X-Ray.

    Like the X-Ray SDK's ``in_subsegment``, an exception leaving the block is recorded with its message.
    """

    def __init__(self) -> None:
        self.segments: list[RecordingSegment] = []
        self._open: list[RecordingSegment] = []

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: object) -> Iterator[RecordingSegment]:
        segment = RecordingSegment(name or "")
        self.segments.append(segment)
        self._open.append(segment)
        try:
            yield segment
        except BaseException as exc:
            segment.add_exception(exc)
            raise
        finally:
            self._open.pop()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: object) -> AsyncIterator[RecordingSegment]:
        with self.in_subsegment(name) as segment:
            yield segment

    def put_annotation(self, key: str, value: object) -> None:
        self._open[-1].put_annotation(key, value)

    def put_metadata(self, key: str, value: object, namespace: str = "default") -> None:
        self._open[-1].put_metadata(key, value, namespace)

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass

    def shipped(self) -> str:
        """Everything recorded, as one text (what a search of the trace could find)."""
        return json.dumps(
            [[s.name, s.annotations, s.metadata, s.exceptions] for s in self.segments], default=str, sort_keys=True
        )


@pytest.fixture
def recorder() -> Iterator[RecordingProvider]:
    """A real Powertools Tracer, tracing on, recording into memory; the process tracer is restored after."""
    provider = RecordingProvider()
    observability.use_tracer(Tracer(service="notiflow", provider=provider, disabled=False, auto_patch=False))
    yield provider
    observability.reset_tracer()
    Tracer._reset_config()


SECRET_TOKEN = "Bearer s3cr3t-token-8c1f"
SECRET_PAYLOAD = "card-4111-1111-1111-1111"


def secret_execution_input(**changes: object) -> dict[str, object]:
    body = load_event("notification_valid.json")
    body["target"]["headers"] = {"Authorization": SECRET_TOKEN}
    body["payload"] = {"card": SECRET_PAYLOAD}
    body.update(changes)
    return {"notificationId": body["notificationId"], "notification": body, "expiresAt": 1_900_000_000}


def test_a_traced_handler_records_no_notification_content(recorder, lambda_context) -> None:
    # Given Validate returns the whole notification (bearer token, payload) and tracing is on
    result = validate_handler({"input": secret_execution_input(), "executionId": "arn:exec:t1"}, lambda_context)
    assert result["notification"]["target"]["headers"]["Authorization"] == SECRET_TOKEN

    # Then the handler was traced, but nothing of the notification reached the trace
    shipped = recorder.shipped()
    assert [segment.name for segment in recorder.segments] == ["## lambda_handler"]
    assert "ColdStart" in recorder.segments[0].annotations
    assert recorder.segments[0].metadata == []
    assert "s3cr3t" not in shipped
    assert SECRET_PAYLOAD not in shipped


def test_a_traced_failure_records_the_error_name_but_not_its_message(recorder, lambda_context) -> None:
    # Given a rejection whose message quotes the notification
    bad = secret_execution_input(notificationId="x" * 200, correlationId=SECRET_PAYLOAD * 20)

    # When the handler raises
    with pytest.raises(InvalidNotificationError) as raised:
        validate_handler({"input": bad, "executionId": "arn:exec:t2"}, lambda_context)

    # Then Step Functions still gets the full message, while the trace holds only the error's name
    assert "at most 256 characters" in str(raised.value)
    (segment,) = recorder.segments
    assert segment.annotations["error"] == "InvalidNotificationError"
    assert segment.exceptions == []
    assert segment.metadata == []
    assert SECRET_PAYLOAD not in recorder.shipped()


def test_the_recorder_would_see_content_under_powertools_defaults(recorder, lambda_context) -> None:
    # Control: the same tracer with Powertools' default capture records the response and the error message
    tracer = observability.tracer()
    assert tracer is not None

    @tracer.capture_lambda_handler
    def leaky(event: dict, context: object) -> dict:
        if event.get("fail"):
            raise ValueError(f"outcome: {SECRET_PAYLOAD}")
        return {"token": SECRET_TOKEN}

    leaky({}, lambda_context)
    with pytest.raises(ValueError, match="outcome"):
        leaky({"fail": True}, lambda_context)

    shipped = recorder.shipped()
    assert "s3cr3t" in shipped
    assert SECRET_PAYLOAD in shipped


def test_tracing_off_builds_no_tracer(monkeypatch) -> None:
    # Given tracing switched off (as in the tests' environment and outside Lambda)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    observability.reset_tracer()

    # Then no Tracer (and so no X-Ray SDK) is built, and annotating is a no-op
    assert observability.tracing_enabled() is False
    assert observability.tracer() is None
    observability.annotate("category", "SUCCESS")
