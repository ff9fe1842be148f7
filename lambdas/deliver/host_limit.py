"""Per-host back-pressure: at most a configured number of deliveries in flight to one host, across all runs.

A burst of N notifications to one receiver would otherwise become N simultaneous requests. Before
sending, the deliver step takes one of the host's slots (``lambdas.shared.dal.host_slots``); after
the attempt it gives it back. A slot expires after the longest time one attempt can take, so a
crashed invocation frees it by itself. When no slot is free the step raises ``HostBusyError`` before
sending anything: the workflow waits in its own Retry (no compute, not a delivery attempt).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared.config import Settings, host_key
from lambdas.shared.dal.host_slots import HostSlots, holder_id
from lambdas.shared.errors import HostBusyError, StorageError
from lambdas.shared.observability import logger, metrics


@contextlib.contextmanager
def host_slot(settings: Settings, host: str, execution_id: str) -> Iterator[None]:
    """Hold one of ``host``'s delivery slots for the duration of the block, or raise HostBusyError.

    No table configured, a limit of 0 for the host, or no host at all: nothing is limited.
    A throttled slot table counts as busy (the workflow waits and tries again), never as a failure.
    """
    key = host_key(host)
    limit = settings.host_limit(key)
    if not settings.host_leases_table_name or limit <= 0 or not key:
        yield
        return
    slots = HostSlots(settings.host_leases_table_name)
    holder = holder_id(execution_id)
    try:
        taken = slots.take(key, holder, limit, settings.attempt_deadline_seconds)
    except StorageError as exc:
        metrics.add_metric(name="HostBusy", unit="Count", value=1)
        raise HostBusyError(f"could not take a delivery slot for the target host ({exc})") from None
    if not taken:
        metrics.add_metric(name="HostBusy", unit="Count", value=1)
        logger.info("target host busy; not sent", extra={"targetHost": key, "limit": limit})
        raise HostBusyError(f"the target host has its limit of {limit} deliveries in flight; nothing was sent")
    try:
        yield
    finally:
        try:
            slots.release(key, holder)
        except (StorageError, ClientError, BotoCoreError) as exc:
            # The slot expires by itself after one attempt's longest duration.
            logger.warning("delivery slot not given back; it expires by itself", extra={"error": type(exc).__name__})
