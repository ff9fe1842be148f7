"""The local meter: counts what a run on the embedded stack really did, at the seams every caller passes.

While a :class:`Meter` is open it wraps, in this process:

- ``LambdaFunction.invoke`` (moto's Lambda model): every invocation's function, wall-clock duration and
  configured memory. The Invoke API, the SQS poller and the interpreter's Lambda tasks all reach a
  function there, so nothing is missed. The duration is measured around the handler as it runs here,
  on a loaded 2-core machine, with its DynamoDB calls and its HTTP wait included (Lambda bills the
  wait too); it is billed as AWS does, rounded up to the next millisecond.
- ``DynamoHandler`` (moto's DynamoDB API layer) for GetItem, PutItem, UpdateItem and DeleteItem: the
  item before and after each write, so write units follow DynamoDB's size rules (the larger of before
  and after, indexes included, failed conditions charged), and each read's item and consistency.
  Handlers (over HTTP) and the interpreter's ``dynamodb:updateItem`` tasks (in process) both pass here.
- ``SQSBackend`` (moto's SQS model): sends (one request per 64 KB chunk), batches (one request),
  receives that returned messages, deletes and visibility changes. Empty long polls are not counted:
  an event source mapping's idle polling is a fixed cost per queue, not a cost per notification.

The moto names it touches are rows of the engine's table of moto internals (``COST_METER`` in
``notiflow/local/engine/uses.py``), checked by ``tests/local/test_engine_guard.py`` with the rest.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from moto.sqs.models import SQSBackend

from notiflow.cost.dynamodb import IndexShape, read_units, write_units
from notiflow.local.engine.patching import resolve_owner
from notiflow.local.engine.uses import COST_METER, USES

SQS_CHUNK_BYTES: Final = 64 * 1024
SEAMS: Final = tuple(
    (resolve_owner(row.owner), row.attribute, row.expect.params) for row in USES if row.why == COST_METER
)
"""(class, method, expected parameters or None) of every moto seam the meter wraps: the engine's table
rows marked COST_METER (notiflow/local/engine/uses.py), so the guard test checks them with the rest."""


@dataclass(frozen=True)
class Invocation:
    """One Lambda invocation as measured here."""

    function: str
    duration_ms: float
    memory_mb: int
    request_id: str
    records: tuple[str, ...] = ()
    """The SQS message ids of the event, when it was an SQS batch (ingest)."""

    @property
    def billed_ms(self) -> int:
        """Rounded up to the next millisecond, as Lambda bills."""
        return max(1, math.ceil(self.duration_ms))

    def platform_lines(self, max_memory_mb: int = 96) -> list[str]:
        """The START, END and REPORT lines Lambda's text log format writes for this invocation."""
        trace = f"1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"
        return [
            f"START RequestId: {self.request_id} Version: $LATEST",
            f"END RequestId: {self.request_id}",
            f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms\t"
            f"Billed Duration: {self.billed_ms} ms\tMemory Size: {self.memory_mb} MB\t"
            f"Max Memory Used: {max_memory_mb} MB\t\nXRAY TraceId: {trace}\tSegmentId: {uuid.uuid4().hex[:16]}\t"
            "Sampled: true\t",
        ]


def _message_ids(body: Any) -> tuple[str, ...]:
    """SQS message ids of an invocation's event (empty unless it is an SQS batch)."""
    try:
        event = json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError:
        return ()
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return ()
    return tuple(str(r["messageId"]) for r in records if isinstance(r, dict) and "messageId" in r)


@dataclass
class DynamoCounts:
    """Capacity the metered DynamoDB requests consumed, per table."""

    write_units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    index_write_units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    read_units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    requests: Counter[str] = field(default_factory=Counter)


class Meter:
    """Counts Lambda invocations, DynamoDB capacity and SQS requests while open (one at a time per process)."""

    _active: Meter | None = None
    _active_lock = threading.Lock()

    def __init__(self) -> None:
        self.invocations: list[Invocation] = []
        self.dynamodb = DynamoCounts()
        self.sqs: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._nesting = threading.local()
        self._saved: list[tuple[type, str, Any]] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Meter:
        with Meter._active_lock:
            if Meter._active is not None:
                raise RuntimeError("a Meter is already open in this process")
            Meter._active = self
        wrappers: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
            "invoke": self._wrap_invoke,
            "get_item": self._wrap_get,
            "put_item": self._wrap_write,
            "update_item": self._wrap_write,
            "delete_item": self._wrap_write,
        }
        for owner, name, _ in SEAMS:
            original = owner.__dict__[name]
            wrap = self._wrap_sqs if owner is SQSBackend else wrappers[name]
            self._saved.append((owner, name, original))
            setattr(owner, name, wrap(original))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()
        with Meter._active_lock:
            Meter._active = None

    def reset(self) -> None:
        """Forget everything counted so far (e.g. after warming up)."""
        with self._lock:
            self.invocations.clear()
            self.dynamodb = DynamoCounts()
            self.sqs.clear()

    # -- Lambda ----------------------------------------------------------------------------------

    def _wrap_invoke(self, original: Callable[..., Any]) -> Callable[..., Any]:
        meter = self

        @functools.wraps(original)
        def invoke(function: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(function, *args, **kwargs)
            finally:
                elapsed = (time.perf_counter() - started) * 1000
                call = Invocation(
                    str(function.function_name),
                    elapsed,
                    int(function.memory_size or 128),
                    str(uuid.uuid4()),
                    _message_ids(args[0] if args else kwargs.get("body")),
                )
                with meter._lock:
                    meter.invocations.append(call)

        return invoke

    # -- DynamoDB --------------------------------------------------------------------------------

    @staticmethod
    def _item(handler: Any, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            found = handler.dynamodb_backend.get_item(table_name, key)
        except Exception:
            return None
        return found.to_json()["Attributes"] if found is not None else None

    @staticmethod
    def _shape(handler: Any, table_name: str) -> tuple[list[str], list[IndexShape]]:
        table = handler.dynamodb_backend.get_table(table_name)
        keys = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
        indexes = [
            IndexShape.from_description({"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection})
            for i in table.global_indexes
        ]
        return keys, indexes

    def _key_of(self, handler: Any, body: dict[str, Any]) -> dict[str, Any]:
        if "Key" in body:
            return dict(body["Key"])
        keys, _ = self._shape(handler, body["TableName"])
        return {name: body["Item"][name] for name in keys if name in body.get("Item", {})}

    def _wrap_write(self, original: Callable[..., Any]) -> Callable[..., Any]:
        meter = self

        @functools.wraps(original)
        def write(handler: Any, *args: Any, **kwargs: Any) -> Any:
            body = handler.body
            table_name = body["TableName"]
            key = meter._key_of(handler, body)
            before = meter._item(handler, table_name, key)
            try:
                result = original(handler, *args, **kwargs)
            except Exception as exc:
                # A failed condition leaves the item as it was and is charged all the same; a request
                # refused as invalid is not.
                if "ConditionalCheckFailed" in type(exc).__name__:
                    meter._charge_write(handler, table_name, original.__name__, before, before)
                raise
            meter._charge_write(handler, table_name, original.__name__, before, meter._item(handler, table_name, key))
            return result

        return write

    def _charge_write(
        self, handler: Any, table_name: str, operation: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        keys, indexes = self._shape(handler, table_name)
        index_units = sum(index.write_units(before, after, keys) for index in indexes)
        with self._lock:
            self.dynamodb.write_units[table_name] += write_units(before, after)
            self.dynamodb.index_write_units[table_name] += index_units
            self.dynamodb.requests[f"{table_name}:{operation}"] += 1

    def _wrap_get(self, original: Callable[..., Any]) -> Callable[..., Any]:
        meter = self

        @functools.wraps(original)
        def get(handler: Any, *args: Any, **kwargs: Any) -> Any:
            body = handler.body
            result = original(handler, *args, **kwargs)
            item = meter._item(handler, body["TableName"], dict(body["Key"]))
            with meter._lock:
                meter.dynamodb.read_units[body["TableName"]] += read_units(
                    item, consistent=bool(body.get("ConsistentRead"))
                )
                meter.dynamodb.requests[f"{body['TableName']}:get_item"] += 1
            return result

        return get

    # -- SQS -------------------------------------------------------------------------------------

    @contextmanager
    def _outermost(self) -> Iterator[bool]:
        depth = getattr(self._nesting, "depth", 0)
        self._nesting.depth = depth + 1
        try:
            yield depth == 0
        finally:
            self._nesting.depth = depth

    def _wrap_sqs(self, original: Callable[..., Any]) -> Callable[..., Any]:
        meter = self
        name = original.__name__

        @functools.wraps(original)
        def call(backend: Any, *args: Any, **kwargs: Any) -> Any:
            with meter._outermost() as outermost:
                result = original(backend, *args, **kwargs)
            if not outermost:
                return result
            if name == "receive_message":
                requests = 1 if result else 0
            elif name == "send_message":
                body = kwargs.get("message_body", args[1] if len(args) > 1 else "")
                requests = max(1, math.ceil(len(str(body).encode("utf-8")) / SQS_CHUNK_BYTES))
            elif name == "send_message_batch":
                entries = kwargs.get("entries", args[1] if len(args) > 1 else {})
                size = sum(len(str(e.get("MessageBody", "")).encode("utf-8")) for e in entries.values())
                requests = max(1, math.ceil(size / SQS_CHUNK_BYTES))
            else:
                requests = 1
            if requests:
                with meter._lock:
                    meter.sqs[name] += requests
            return result

        return call
