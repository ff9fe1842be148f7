"""Standard Webhooks signing: our signatures verify with the official package, and theirs with ours."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from lambdas.deliver import signing

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROTATED_SECRET = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24="

BODY = b'{"type":"order.created","orderId":"1001"}'


def test_signature_verifies_with_the_standardwebhooks_package():
    # Given a body signed with our code
    now = int(time.time())
    headers = signing.signature_headers(signing.parse_secrets(SECRET), "ntf-1", now, BODY)

    # When the official package verifies it
    payload = Webhook(SECRET).verify(BODY, headers)

    # Then it accepts the signature and returns the parsed body
    assert payload == {"type": "order.created", "orderId": "1001"}
    assert headers["webhook-signature"].startswith("v1,")


def test_standardwebhooks_signature_verifies_with_ours():
    # Given a signature made by the official package
    now = int(time.time())
    signature = Webhook(SECRET).sign("ntf-2", datetime.fromtimestamp(now, tz=UTC), BODY.decode())
    headers = {"Webhook-Id": "ntf-2", "Webhook-Timestamp": str(now), "Webhook-Signature": signature}

    # When / Then our verifier accepts it, header names in any case
    assert signing.verify(signing.parse_secrets(SECRET), headers, BODY)


def test_rotation_signs_with_every_secret_and_each_receiver_accepts():
    # Given a secret value holding the old and the new secret (newline-separated)
    keys = signing.parse_secrets(f"{SECRET}\n{ROTATED_SECRET}")
    headers = signing.signature_headers(keys, "ntf-3", int(time.time()), BODY)

    # When receivers holding only one of them verify
    # Then both accept, because two space-separated signatures were sent
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(BODY, headers)
    Webhook(ROTATED_SECRET).verify(BODY, headers)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"body": BODY + b" "}, False),
        ({"msg_id": "ntf-other"}, False),
        ({"timestamp_shift": -301}, False),
        ({"timestamp_shift": 301}, False),
        ({"secret": ROTATED_SECRET}, False),
    ],
)
def test_verify_rejects_tampering_stale_timestamps_and_wrong_secrets(change, expected):
    # Given a signature made now for ntf-4
    now = int(time.time())
    headers = signing.signature_headers(signing.parse_secrets(SECRET), "ntf-4", now, BODY)

    # When one element differs at verification time
    if "msg_id" in change:
        headers["webhook-id"] = change["msg_id"]
    verifier_keys = signing.parse_secrets(change.get("secret", SECRET))
    result = signing.verify(
        verifier_keys, headers, change.get("body", BODY), now=now - change.get("timestamp_shift", 0)
    )

    # Then only the untouched combination verifies
    assert result is expected


def test_unsigned_headers_still_identify_the_message():
    # Given no signing keys
    headers = signing.signature_headers([], "ntf-5", 1_700_000_000, BODY)

    # Then id and timestamp are sent, the signature is not
    assert headers == {"webhook-id": "ntf-5", "webhook-timestamp": "1700000000"}


@pytest.mark.parametrize("value", ["whsec_!!!not-base64!!!", "whsec_", "   "])
def test_invalid_secret_is_refused_without_echoing_it(value):
    # When a malformed secret value is parsed
    with pytest.raises(signing.InvalidSecretError) as raised:
        signing.parse_secrets(value)

    # Then the error does not repeat the value
    assert "not-base64" not in str(raised.value)


def test_verify_ignores_unknown_versions_and_garbage_entries():
    # Given a header listing an Ed25519 entry, garbage, then a valid v1 signature
    now = int(time.time())
    keys = signing.parse_secrets(SECRET)
    valid = signing.sign(keys, "ntf-6", now, BODY)
    headers = {"webhook-id": "ntf-6", "webhook-timestamp": str(now), "webhook-signature": f"v1a,abc v1,%%% {valid}"}

    # Then the valid entry is found
    assert signing.verify(keys, headers, BODY)
