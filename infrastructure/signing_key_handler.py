"""CloudFormation custom resource: put a fresh Standard Webhooks key into the signing secret on create.

Secrets Manager can only generate passwords, not ``whsec_`` + base64 of random bytes, and a key made at
synth time would sit in the template. This file is deployed as inline code, so it uses only the
standard library and boto3 from the runtime.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from typing import Any

import boto3

KEY_BYTES = 32
KEY_PREFIX = "whsec_"


def generate_signing_key() -> str:
    """A Standard Webhooks secret: ``whsec_`` followed by base64 of 32 random bytes."""
    return KEY_PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def handler(event: dict[str, Any], context: Any) -> None:
    """Create (or point at a new secret): write a key. Update of anything else and Delete: keep the key."""
    secret_id = event["ResourceProperties"]["SecretId"]
    previous = event.get("OldResourceProperties", {}).get("SecretId")
    status, reason = "SUCCESS", "signing key unchanged"
    try:
        if event["RequestType"] == "Create" or (event["RequestType"] == "Update" and previous != secret_id):
            boto3.client("secretsmanager").put_secret_value(SecretId=secret_id, SecretString=generate_signing_key())
            reason = "signing key written"
    except Exception as exc:
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
    respond(event, status, reason, physical_id=secret_id, log_stream=getattr(context, "log_stream_name", ""))


def respond(event: dict[str, Any], status: str, reason: str, *, physical_id: str, log_stream: str) -> None:
    """Answer CloudFormation on the pre-signed response URL (the key itself is never in the answer)."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": f"{reason} (log stream {log_stream})" if log_stream else reason,
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": {},
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is CloudFormation's pre-signed S3 URL
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answer.read()
