"""Standard Webhooks signatures (HMAC-SHA256, ``v1,<base64>``), for senders and receivers.

Receivers verify with any Standard Webhooks library; during a secret rotation every
configured secret signs, so receivers holding either the old or the new one accept.

``webhook-id`` is the notification id in its header form (:func:`header_form`): ids made of
printable ASCII are sent as they are; any other id (an emoji, an accented letter, a ``%``) is
sent percent-encoded as UTF-8, because an HTTP header cannot carry it reliably. The signed
content is ``{webhook-id}.{timestamp}.{body}`` with the id exactly as sent, so receivers
verify what they see, and the id stays the same across attempts and redrives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import quote

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format prefix, not a secret
SIGNATURE_VERSION: Final = "v1"
DEFAULT_TOLERANCE_SECONDS: Final = 300
HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"


_HEADER_SAFE: Final = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "%")


def header_form(text: str) -> str:
    """``text`` as an HTTP header value: unchanged when it is printable ASCII without ``%``, else percent-encoded.

    The mapping is one-to-one: an encoded form always contains ``%`` and an unchanged one never
    does, so two distinct ids can never share a ``webhook-id``.
    """
    if all(char in _HEADER_SAFE for char in text):
        return text
    return quote(text, safe=_HEADER_SAFE)


def webhook_id(notification_id: str) -> str:
    """The ``webhook-id`` of a notification (what is sent and what is signed)."""
    return header_form(notification_id)


class InvalidSecretError(ValueError):
    """A configured secret is not ``whsec_`` followed by non-empty base64; its value is never shown."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key of one ``whsec_<base64>`` secret (missing base64 padding is tolerated)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecretError("signing secret is not valid base64 after the whsec_ prefix") from exc
    if not key:
        raise InvalidSecretError("signing secret is empty")
    return key


def parse_secrets(value: str) -> list[bytes]:
    """Keys of a secret value holding one or more secrets separated by spaces or newlines."""
    keys = [decode_secret(part) for part in value.split()]
    if not keys:
        raise InvalidSecretError("signing secret value holds no secret")
    return keys


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<sig>`` per key, space-separated."""
    return " ".join(
        f"{SIGNATURE_VERSION},{base64.b64encode(_digest(key, msg_id, timestamp, body)).decode()}" for key in keys
    )


def signature_headers(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; without keys the request is identified but unsigned."""
    headers = {HEADER_ID: msg_id, HEADER_TIMESTAMP: str(timestamp)}
    if keys:
        headers[HEADER_SIGNATURE] = sign(keys, msg_id, timestamp, body)
    return headers


def verify(
    keys: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``headers`` carry a valid, fresh signature of ``body`` by any of ``keys``."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(HEADER_ID)
    stamp = lowered.get(HEADER_TIMESTAMP, "")
    signatures = lowered.get(HEADER_SIGNATURE, "")
    if not (msg_id and stamp.isdigit() and signatures):
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = [_digest(key, msg_id, timestamp, body) for key in keys]
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if any(hmac.compare_digest(given, digest) for digest in expected):
            return True
    return False
