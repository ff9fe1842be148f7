"""DynamoDB's capacity rules, applied to the items a run really wrote and read.

Item size (DynamoDB developer guide, "Item sizes and formats"): the UTF-8 bytes of every attribute
name plus its value, where a string is its UTF-8 bytes, a number about one byte per two significant
digits plus one, a binary its bytes, a boolean or null one byte, and a list or map 3 bytes plus its
elements plus one byte per element (a map's element counts its name too).

On-demand billing: a write costs one write request unit per started KB of the larger of the item
before and after (UpdateItem and PutItem alike), a delete the size of the deleted item, and a write
whose condition fails still costs the size of the item it checked (at least one unit). A strongly
consistent read costs one read request unit per started 4 KB of the item returned (one for no item),
an eventually consistent read half that. A global secondary index is written too when the write
touches an item the index holds or now holds: a put or delete of the projected item, both when the
index key changes, an update when a projected attribute changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

WRITE_UNIT_BYTES: Final = 1024
READ_UNIT_BYTES: Final = 4096

Item = Mapping[str, Mapping[str, Any]]


def _number_size(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return len(text)
    digits = value.normalize().as_tuple().digits if value != 0 else (0,)
    return math.ceil(len(digits) / 2) + 1 + (1 if value < 0 else 0)


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one typed attribute value (``{"S": "x"}``, ``{"M": {...}}``, ...)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode("utf-8"))
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return len(data if isinstance(data, bytes | bytearray) else str(data).encode("utf-8"))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode("utf-8")) for s in data)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(value_size(element) + 1 for element in data)
    if kind == "M":
        return 3 + sum(len(name.encode("utf-8")) + value_size(element) + 1 for name, element in data.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Item | None) -> int:
    """Bytes of a whole item (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(before: Item | None, after: Item | None) -> int:
    """Write request units of one PutItem, UpdateItem or DeleteItem (a failed condition: after is before)."""
    return max(1, math.ceil(max(item_size(before), item_size(after)) / WRITE_UNIT_BYTES))


def read_units(item: Item | None, *, consistent: bool) -> float:
    """Read request units of one GetItem returning ``item`` (None: nothing found, still charged)."""
    units = max(1, math.ceil(item_size(item) / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class IndexShape:
    """A global secondary index as DescribeTable shows it: its key attributes and projection."""

    name: str
    key_attributes: tuple[str, ...]
    projection: str = "ALL"
    non_key_attributes: tuple[str, ...] = ()

    @classmethod
    def from_description(cls, index: Mapping[str, Any]) -> IndexShape:
        """From one entry of DescribeTable's ``GlobalSecondaryIndexes`` (or CreateTable's)."""
        projection = index.get("Projection") or {}
        return cls(
            name=str(index["IndexName"]),
            key_attributes=tuple(str(k["AttributeName"]) for k in index["KeySchema"]),
            projection=str(projection.get("ProjectionType", "ALL")),
            non_key_attributes=tuple(projection.get("NonKeyAttributes", ())),
        )

    def holds(self, item: Item | None) -> bool:
        """Whether the index has an entry for this item (a sparse index skips items without its keys)."""
        return bool(item) and all(name in item for name in self.key_attributes)  # type: ignore[operator]

    def projected(self, item: Item, table_keys: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """The copy of the item the index stores."""
        if self.projection == "ALL":
            return dict(item)
        keep = {*table_keys, *self.key_attributes}
        if self.projection == "INCLUDE":
            keep.update(self.non_key_attributes)
        return {name: value for name, value in item.items() if name in keep}

    def write_units(self, before: Item | None, after: Item | None, table_keys: Sequence[str]) -> int:
        """Write request units the index consumes for one table write from ``before`` to ``after``."""
        had, has = self.holds(before), self.holds(after)
        old = self.projected(before, table_keys) if had and before else None
        new = self.projected(after, table_keys) if has and after else None
        if old is None and new is None:
            return 0
        if old is None or new is None:
            return write_units(None, old or new)
        if any(old.get(k) != new.get(k) for k in self.key_attributes):
            return write_units(None, old) + write_units(None, new)
        if old != new:
            return write_units(old, new)
        return 0
