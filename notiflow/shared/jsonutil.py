"""The one JSON helper for values read from AWS: DynamoDB Decimals, datetimes and bytes become JSON."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` hook: Decimal -> int or float, datetime -> ISO 8601, bytes -> text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def to_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that understands what boto3 returns."""
    return json.dumps(value, default=json_default, **kwargs)


def plain(value: Any) -> Any:
    """A structure with every Decimal, datetime and bytes value turned into its JSON counterpart."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Decimal | datetime | bytes | bytearray | set | frozenset):
        return json_default(value)
    return value
