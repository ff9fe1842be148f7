"""Ids a header cannot carry as they are: sent percent-encoded, stable, and verifiable by a real receiver."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from standardwebhooks import Webhook

from lambdas.deliver import signing
from lambdas.deliver.handler import lambda_handler
from lambdas.shared.errors import DeliveryRetryableError
from notiflow.demo.receiver import Step


@pytest.mark.parametrize(
    ("notification_id", "header_id"),
    [
        ("\U0001f4e6-order-1", "%F0%9F%93%A6-order-1"),
        ("caf\u00e9-42", "caf%C3%A9-42"),
        ("100%-done", "100%25-done"),
        ("invoice 77/paid?", "invoice 77/paid?"),
    ],
)
def test_ids_are_sent_in_a_stable_verifiable_header_form(
    aws, receiver, load_event, lambda_context, secret, notification_id, header_id
):
    # Given a notification whose id (and correlation id) a header cannot carry as is
    event = load_event("order_created", receiver.base_url)
    event["notification"]["notificationId"] = notification_id
    event["notification"]["correlationId"] = f"corr \u2615 {notification_id}"
    aws.claim(notification_id, event["executionId"])
    receiver.script("/webhooks/orders", [Step(503), Step(200)])

    # When the first attempt fails and the retry succeeds
    with pytest.raises(DeliveryRetryableError):
        lambda_handler(event, lambda_context)
    result = lambda_handler({**event, "retryCount": 1}, lambda_context)

    # Then both requests carried the same webhook-id, the header form of the id, decodable back to it
    assert result["outcome"]["success"] is True
    first, second = receiver.requests_for("/webhooks/orders")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == header_id
    assert unquote(header_id) == notification_id
    assert unquote(second.headers["x-correlation-id"]) == f"corr \u2615 {notification_id}"

    # And the signature covers exactly that id: our receiver and the Standard Webhooks library both verify it
    assert first.signature_valid is True
    assert second.signature_valid is True
    assert Webhook(secret).verify(second.body, second.headers) == event["notification"]["payload"]

    # And the record is still keyed by the id as the producer sent it
    assert aws.record(notification_id)["attempts"] == 2


def test_header_form_is_one_to_one():
    ids = ["a%41", "aA", "a%2541", "\u00e9", "%C3%A9", "%25C3%25A9", "100%", "100%25"]
    forms = [signing.webhook_id(value) for value in ids]
    assert len(set(forms)) == len(ids)
    assert all(form.isascii() and form.isprintable() for form in forms)
