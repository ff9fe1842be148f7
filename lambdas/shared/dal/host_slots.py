"""The host-leases table: per-host slots that bound deliveries in flight to one receiver, across all runs.

One item per target host: ``holders`` maps a holder (one run's delivery) to the epoch millisecond at
which its slot expires, so a crashed attempt never holds a slot for longer than one attempt can last.

Cost on the happy path is one conditional write to take a slot and one write to give it back:

- take: ``SET holders.#me = :until`` if the map has fewer than ``limit`` entries (or already holds
  this holder: a retried invocation takes its own slot again);
- give back: ``REMOVE holders.#me``.

Only when a host looks full does a taker look at the map the refusal returned: expired holders are
removed and this holder added in one write, conditional on the map being exactly as seen, so two
takers can never both squeeze into the last slot. The first take for a host creates its map.
Items expire by TTL a day after their last take, so hosts no longer delivered to leave no trace.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas.shared.constants import HOST_LEASES_PARTITION_KEY, TABLE_TTL_ATTRIBUTE
from lambdas.shared.dal.codec import AttributeValue, from_attribute_value
from lambdas.shared.dal.table import CONDITION_FAILED, TableAccess, error_code

ITEM_TTL_SECONDS: Final = 24 * 3600
TAKE_TRIES: Final = 4
"""Conditional writes one take may spend when others change the map under it; then the host counts as busy."""
_NAMES: Final = {"#holders": "holders", "#ttl": TABLE_TTL_ATTRIBUTE}


def holder_id(execution_id: str) -> str:
    """A short, stable map key for one run's delivery (a run delivers one attempt at a time)."""
    return hashlib.sha256(execution_id.encode("utf-8")).hexdigest()[:20]


class HostSlots(TableAccess):
    """Access to one host-leases table through a low-level DynamoDB client (the shared one by default)."""

    def take(self, host: str, holder: str, limit: int, lease_seconds: float, now: float | None = None) -> bool:
        """Take one of ``host``'s ``limit`` slots for ``holder`` until ``lease_seconds`` from now; False when full.

        Raises StorageError when DynamoDB throttles or cannot be reached.
        """
        now_ms = int((time.time() if now is None else now) * 1000)
        until = {"N": str(now_ms + int(lease_seconds * 1000))}
        ttl = {"N": str(now_ms // 1000 + int(lease_seconds) + ITEM_TTL_SECONDS)}
        for _ in range(TAKE_TRIES):
            seen = self._write(
                host,
                "SET #holders.#me = :until, #ttl = :ttl",
                "attribute_exists(#holders) AND (size(#holders) < :limit OR attribute_exists(#holders.#me))",
                {**_NAMES, "#me": holder},
                {":until": until, ":ttl": ttl, ":limit": {"N": str(limit)}},
            )
            if seen is None:
                return True
            holders = seen.get("holders")
            if holders is None:
                created = self._write(
                    host,
                    "SET #holders = :mine, #ttl = :ttl",
                    "attribute_not_exists(#holders)",
                    dict(_NAMES),
                    {":mine": {"M": {holder: until}}, ":ttl": ttl},
                )
                if created is None:
                    return True
                continue
            current = {key: int(from_attribute_value(value)) for key, value in holders["M"].items()}
            expired = sorted(key for key, expiry in current.items() if expiry <= now_ms)
            if len(current) - len(expired) >= limit:
                return False
            names = {**_NAMES, "#me": holder}
            values: dict[str, AttributeValue] = {":until": until, ":ttl": ttl, ":seen": {"N": str(len(current))}}
            checks = ["size(#holders) = :seen"]
            removals = []
            for index, key in enumerate(expired):
                names[f"#x{index}"] = key
                values[f":x{index}"] = {"N": str(current[key])}
                checks.append(f"#holders.#x{index} = :x{index}")
                removals.append(f"#holders.#x{index}")
            update = "SET #holders.#me = :until, #ttl = :ttl"
            if removals:
                update += " REMOVE " + ", ".join(removals)
            if self._write(host, update, " AND ".join(checks), names, values) is None:
                return True
        return False

    def release(self, host: str, holder: str) -> None:
        """Give ``holder``'s slot on ``host`` back (nothing when it holds none). Raises StorageError on throttling."""
        self._write(
            host,
            "REMOVE #holders.#me",
            "attribute_exists(#holders)",
            {"#holders": "holders", "#me": holder},
            None,
        )

    def holders(self, host: str) -> dict[str, int]:
        """Holder -> expiry (epoch ms) of ``host``'s slots, expired ones included (for tests and operators)."""
        item = self._call("get_item", Key=_key(host), ConsistentRead=True).get("Item") or {}
        holders = item.get("holders")
        return {key: int(from_attribute_value(value)) for key, value in holders["M"].items()} if holders else {}

    def _write(
        self,
        host: str,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, AttributeValue] | None,
    ) -> dict[str, AttributeValue] | None:
        """One conditional UpdateItem; None when it applied, else the item as it was (empty when absent)."""
        request: dict[str, Any] = {
            "Key": _key(host),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self._call("update_item", **request)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return dict(exc.response.get("Item") or {})
            raise
        return None


def _key(host: str) -> dict[str, AttributeValue]:
    return {HOST_LEASES_PARTITION_KEY: {"S": host}}
