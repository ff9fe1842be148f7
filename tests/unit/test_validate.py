"""Validate: a table of good and bad messages, each bad one with the exact reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lambdas.shared.config import Settings, parse_settings
from lambdas.shared.errors import InvalidNotificationError
from lambdas.validate.handler import lambda_handler
from lambdas.validate.rules import validate_execution_input, validate_notification
from tests.support import load_event

PRODUCTION = Settings()
LOCAL = parse_settings({"NOTIFLOW_ALLOWED_SCHEMES": "http,https", "NOTIFLOW_ALLOW_LOOPBACK_TARGETS": "true"})


def notification(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(load_event("notification_valid.json"))
    for dotted, value in changes.items():
        node = body
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        if value is ...:
            node.pop(leaf)
        else:
            node[leaf] = value
    return body


GOOD = [
    pytest.param(notification(), id="full"),
    pytest.param(notification(eventType=..., correlationId=..., metadata=...), id="optional-fields-absent"),
    pytest.param(notification(payload=None), id="null-payload"),
    pytest.param(notification(payload=[1, "two", {"three": 3}]), id="array-payload"),
    pytest.param(notification(payload="plain string"), id="string-payload"),
    pytest.param(notification(target={"url": "https://x.example/hook"}), id="url-only-target"),
    pytest.param(notification(target__method="PUT"), id="put"),
    pytest.param(notification(target__url="https://example.com:8443/a?b=c#frag"), id="port-query-fragment"),
    pytest.param(notification(notificationId="a" * 128), id="id-max-length"),
]

BAD = [
    pytest.param(notification(notificationId=...), "notificationId: Field required", id="missing-id"),
    pytest.param(notification(notificationId=""), "notificationId: String should have at least 1", id="empty-id"),
    pytest.param(notification(notificationId="a" * 129), "at most 128 characters", id="long-id"),
    pytest.param(notification(notificationId=" padded"), "without leading or trailing spaces", id="padded-id"),
    pytest.param(notification(notificationId=42), "notificationId: Input should be a valid string", id="numeric-id"),
    pytest.param(notification(target=...), "target: Field required", id="missing-target"),
    pytest.param(notification(payload=...), "payload: Field required", id="missing-payload"),
    pytest.param(notification(targt={}), "targt: unknown field", id="typo-field"),
    pytest.param(notification(target__method="GET"), "target.method: Input should be 'POST' or 'PUT'", id="get"),
    pytest.param(notification(target__url="ftp://example.com/x"), "scheme 'ftp' is not allowed", id="ftp"),
    pytest.param(notification(target__url="http://example.com/x"), "scheme 'http' is not allowed", id="http-in-prod"),
    pytest.param(notification(target__url="https:///nohost"), "host is missing", id="no-host"),
    pytest.param(notification(target__url="example.com/x"), "scheme '(none)' is not allowed", id="no-scheme"),
    pytest.param(notification(target__url="https://user:pw@example.com/x"), "credentials in the URL", id="credentials"),
    pytest.param(notification(target__url="https://example.com/a b"), "whitespace or control", id="space-in-url"),
    pytest.param(notification(target__url="https://example.com:99999/"), "not a valid URL", id="bad-port"),
    pytest.param(notification(target__url="https://127.0.0.1/x"), "127.0.0.1", id="loopback-literal"),
    pytest.param(notification(target__url="https://169.254.169.254/latest"), "169.254.169.254", id="metadata"),
    pytest.param(notification(target__url="https://10.1.2.3/x"), "10.1.2.3", id="private-literal"),
    pytest.param(notification(target__url="https://localhost/x"), "'localhost' is a loopback name", id="localhost"),
    pytest.param(
        notification(target__url="https://LOCALHOST./hook"), "'localhost' is a loopback name", id="localhost-dot"
    ),
    pytest.param(
        notification(target__url="https://metadata.google.internal/computeMetadata/v1/"),
        "'metadata.google.internal' is a cloud metadata name",
        id="metadata-name",
    ),
    pytest.param(notification(target__url="https://0x7f.1/x"), "127.0.0.1 is loopback", id="hex-loopback"),
    pytest.param(notification(target__url="https://[::ffff:127.0.0.1]/x"), "loopback", id="mapped-loopback"),
    pytest.param(notification(target__url="https://billing.internal/x"), "an internal name", id="internal-name"),
    pytest.param(
        notification(target__headers={"X-Note": "\U0001f4e6 parcel"}),
        "characters an HTTP header cannot carry",
        id="emoji-header",
    ),
    pytest.param(
        notification(target__headers={"X-Evil": "a\r\nInjected: 1"}), "contains CR, LF or NUL", id="crlf-value"
    ),
    pytest.param(notification(target__headers={"Bad Name": "x"}), "not a valid header name", id="space-in-name"),
    pytest.param(notification(target__headers={"Connection": "close"}), "hop-by-hop", id="hop-by-hop"),
    pytest.param(notification(target__headers={"Transfer-Encoding": "chunked"}), "hop-by-hop", id="te"),
    pytest.param(notification(target__headers={"Host": "other"}), "set by Notiflow", id="host-header"),
    pytest.param(notification(target__headers={"webhook-signature": "v1,x"}), "set by Notiflow", id="sig-header"),
    pytest.param(
        notification(target__headers={f"X-H{i}": "v" for i in range(21)}), "21 headers, at most 20", id="too-many"
    ),
    pytest.param(notification(target__headers={"X-Big": "v" * 1025}), "longer than 1024", id="long-value"),
    pytest.param(notification(target__headers={"X-A": "1", "x-a": "2"}), "more than once", id="duplicate-header"),
    pytest.param(notification(metadata={"blob": "x" * 5000}), "metadata: Value error", id="big-metadata"),
    pytest.param(notification(payload={"blob": "x" * 210_000}), "above the 204800-byte limit", id="too-large"),
    pytest.param(["not", "an", "object"], "must be a JSON object, got list", id="array-body"),
]


@pytest.mark.parametrize("body", GOOD)
def test_good_notifications_pass(body: dict[str, Any]) -> None:
    # Given a notification that follows the contract / When validated / Then it is normalized
    result = validate_notification(body, PRODUCTION)
    assert result.notificationId == body["notificationId"]
    assert result.target.method.value in ("POST", "PUT")


@pytest.mark.parametrize(("body", "expected"), BAD)
def test_bad_notifications_say_exactly_what_is_wrong(body: Any, expected: str) -> None:
    # Given a message that breaks the contract / When validated / Then the error names the problem
    with pytest.raises(InvalidNotificationError) as caught:
        validate_notification(body, PRODUCTION)
    assert expected in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    body = notification(target__url="ftp://user:pw@example.com", target__headers={"Connection": "x"})
    with pytest.raises(InvalidNotificationError) as caught:
        validate_notification(body, PRODUCTION)
    message = str(caught.value)
    assert "scheme 'ftp'" in message
    assert "credentials" in message
    assert "hop-by-hop" in message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost:8080/hook", "http://[::1]:8080/h"])
def test_local_policy_allows_http_and_loopback(url: str) -> None:
    assert validate_notification(notification(target__url=url), LOCAL).target.url == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/hook", "10.0.0.1 is private"),
        ("http://169.254.169.254/latest", "169.254.169.254 is a cloud metadata endpoint"),
        ("http://metadata.google.internal/", "cloud metadata name"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0:8080/hook", "unspecified"),
    ],
)
def test_local_policy_still_refuses_every_other_private_target(url: str, reason: str) -> None:
    with pytest.raises(InvalidNotificationError, match=reason):
        validate_notification(notification(target__url=url), LOCAL)


@pytest.mark.parametrize("notification_id", ["\U0001f4e6-order-1", "caf\u00e9-42", "100%-done"])
def test_ids_a_header_cannot_carry_as_they_are_are_still_valid(notification_id: str) -> None:
    # They are sent in their percent-encoded header form (see tests/unit/deliver/test_deliver_ids.py)
    body = notification(notificationId=notification_id, correlationId=notification_id)
    assert validate_notification(body, PRODUCTION).notificationId == notification_id


def execution_input(**overrides: Any) -> dict[str, Any]:
    body = load_event("notification_valid.json")
    base = {
        "notificationId": body["notificationId"],
        "notification": body,
        "rawBody": None,
        "parseError": None,
        "source": {"sqsMessageId": "m-1"},
        "replay": False,
        "expiresAt": 1_900_000_000,
    }
    base.update(overrides)
    return base


def test_execution_input_is_normalized_with_defaults() -> None:
    raw = execution_input()
    raw["notification"]["target"].pop("method")
    result = validate_execution_input(raw, PRODUCTION).model_dump(mode="json")
    assert result["notification"]["target"]["method"] == "POST"
    assert result["expiresAt"] == 1_900_000_000
    assert result["source"] == {"sqsMessageId": "m-1"}


def test_unparseable_body_is_rejected_with_the_parse_error() -> None:
    raw = execution_input(notificationId="sqs-m-1", notification=None, rawBody="{oops", parseError="body is not JSON")
    with pytest.raises(InvalidNotificationError, match="not a valid notification: body is not JSON"):
        validate_execution_input(raw, PRODUCTION)


def test_mismatched_ids_are_rejected() -> None:
    with pytest.raises(InvalidNotificationError, match="does not match"):
        validate_execution_input(execution_input(notificationId="other"), PRODUCTION)


def test_handler_returns_state_and_raises_named_error(lambda_context: Any) -> None:
    # Given the Validate state's payload shape / When the handler runs / Then it returns the new state
    ok = lambda_handler({"input": execution_input(), "executionId": "arn:exec:1"}, lambda_context)
    assert ok["notificationId"] == "order-1042-shipped"
    # And a broken payload (not even a dict) surfaces as the named error, not a crash
    with pytest.raises(InvalidNotificationError):
        lambda_handler({"input": "garbage", "executionId": "arn:exec:2"}, lambda_context)
    with pytest.raises(InvalidNotificationError):
        lambda_handler("garbage", lambda_context)  # type: ignore[arg-type]
