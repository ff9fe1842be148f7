"""DynamoDB attribute values (``{"S": ...}``, ``{"N": ...}``) to and from plain Python values.

Small on purpose: the record uses strings, numbers, booleans, nulls, maps and lists only, and
this keeps ``boto3`` (whose ``TypeSerializer`` does the same) out of the import of every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

AttributeValue = dict[str, Any]


def to_attribute_value(value: Any) -> AttributeValue:
    """The typed form of a JSON-like value; floats are written exactly as their shortest repr."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Mapping):
        return {"M": {str(key): to_attribute_value(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute_value(item) for item in value]}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def from_attribute_value(value: AttributeValue) -> Any:
    """The plain value of a typed attribute; numbers become int when integral, else float."""
    ((kind, data),) = value.items()
    if kind == "S":
        return data
    if kind == "N":
        return plain_number(Decimal(data))
    if kind == "BOOL":
        return bool(data)
    if kind == "NULL":
        return None
    if kind == "M":
        return {key: from_attribute_value(item) for key, item in data.items()}
    if kind == "L":
        return [from_attribute_value(item) for item in data]
    raise TypeError(f"unsupported DynamoDB attribute type {kind}")


def plain_number(number: Decimal) -> int | float:
    """A Decimal as int when integral, else float."""
    return int(number) if number == number.to_integral_value() else float(number)


def plain(value: Any) -> Any:
    """A resource-style value (Decimals, nested maps and lists) with numbers as int or float."""
    if isinstance(value, Decimal):
        return plain_number(value)
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    return value


def from_typed_item(item: Mapping[str, AttributeValue]) -> dict[str, Any]:
    """A low-level item (``GetItem`` of a client) as plain values."""
    return {name: from_attribute_value(value) for name, value in item.items()}


def item_size_bytes(item: Mapping[str, AttributeValue]) -> int:
    """DynamoDB's size of a low-level item: attribute names plus values, as the 400 KB limit counts them.

    Strings count their UTF-8 bytes, numbers about one byte per two digits plus one, booleans
    and nulls one byte, and maps and lists 3 bytes plus one per element on top of their content.
    """
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: AttributeValue) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = len(data.lstrip("-").replace(".", "").lstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(key.encode()) + _value_size(item) + 1 for key, item in data.items())
    if kind == "L":
        return 3 + sum(_value_size(item) + 1 for item in data)
    raise TypeError(f"unsupported DynamoDB attribute type {kind}")
