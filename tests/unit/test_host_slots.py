"""Per-host delivery slots against moto's DynamoDB: a bounded number in flight, expiring, never oversubscribed."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest

from lambdas.shared.config import parse_settings
from lambdas.shared.constants import HOST_LEASES_PARTITION_KEY, EnvVar
from lambdas.shared.dal.host_slots import ITEM_TTL_SECONDS, HostSlots, holder_id

TABLE = "notiflow-test-host-leases"
HOST = "hooks.example.com"
NOW = 1_800_000_000.0


@pytest.fixture
def slots(moto_aws: None) -> HostSlots:
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": HOST_LEASES_PARTITION_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": HOST_LEASES_PARTITION_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return HostSlots(TABLE)


def test_slots_up_to_the_limit_then_busy_until_one_is_given_back(slots: HostSlots) -> None:
    # Given a limit of 2 / When three holders ask / Then the third is refused
    assert slots.take(HOST, "a", limit=2, lease_seconds=30, now=NOW)
    assert slots.take(HOST, "b", limit=2, lease_seconds=30, now=NOW)
    assert not slots.take(HOST, "c", limit=2, lease_seconds=30, now=NOW)
    # When one gives its slot back / Then the third gets it
    slots.release(HOST, "a")
    assert slots.take(HOST, "c", limit=2, lease_seconds=30, now=NOW)
    assert sorted(slots.holders(HOST)) == ["b", "c"]


def test_other_hosts_have_their_own_slots(slots: HostSlots) -> None:
    assert slots.take(HOST, "a", limit=1, lease_seconds=30, now=NOW)
    assert slots.take("other.example.com", "a", limit=1, lease_seconds=30, now=NOW)
    assert not slots.take(HOST, "b", limit=1, lease_seconds=30, now=NOW)


def test_a_retried_invocation_takes_its_own_slot_again(slots: HostSlots) -> None:
    assert slots.take(HOST, "a", limit=1, lease_seconds=30, now=NOW)
    assert slots.take(HOST, "a", limit=1, lease_seconds=30, now=NOW + 1)
    assert slots.holders(HOST) == {"a": int((NOW + 31) * 1000)}


def test_a_crashed_holder_frees_its_slot_when_it_expires(slots: HostSlots, moto_aws: None) -> None:
    # Given a full host whose oldest holder crashed (its slot expires at NOW + 30 s)
    assert slots.take(HOST, "crashed", limit=2, lease_seconds=30, now=NOW)
    assert slots.take(HOST, "live", limit=2, lease_seconds=300, now=NOW)

    # When a new holder asks before and after the crashed holder's expiry
    assert not slots.take(HOST, "new", limit=2, lease_seconds=30, now=NOW + 29)
    assert slots.take(HOST, "new", limit=2, lease_seconds=30, now=NOW + 31)

    # Then the expired slot was reclaimed in the same write, the live one kept
    assert sorted(slots.holders(HOST)) == ["live", "new"]
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key={HOST_LEASES_PARTITION_KEY: {"S": HOST}})["Item"]
    assert int(item["expiresAt"]["N"]) == int(NOW + 31) + 30 + ITEM_TTL_SECONDS


def test_giving_back_a_slot_never_held_is_harmless(slots: HostSlots) -> None:
    slots.release("never-seen.example.com", "a")
    assert slots.take(HOST, "a", limit=1, lease_seconds=30, now=NOW)
    slots.release(HOST, "b")
    assert slots.holders(HOST) == {"a": int((NOW + 30) * 1000)}


def test_concurrent_takers_never_oversubscribe_a_host(slots: HostSlots, atomic_dynamodb: None) -> None:
    # Given 12 holders asking for one of 3 slots at the same moment, two of the held ones expired
    assert slots.take(HOST, "stale-1", limit=3, lease_seconds=1, now=NOW - 60)
    assert slots.take(HOST, "stale-2", limit=3, lease_seconds=1, now=NOW - 60)
    contenders = 12
    barrier = threading.Barrier(contenders)
    won: list[str] = []
    crashed: list[BaseException] = []
    lock = threading.Lock()

    def contend(index: int) -> None:
        barrier.wait()
        try:
            taken = slots.take(HOST, f"h{index}", limit=3, lease_seconds=30, now=NOW)
        except BaseException as exc:
            crashed.append(exc)
            raise
        if taken:
            with lock:
                won.append(f"h{index}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then at most 3 got a slot, and the live holders in the map are exactly the winners
    assert crashed == []
    assert 1 <= len(won) <= 3
    holders = slots.holders(HOST)
    assert len(holders) <= 3
    assert {holder for holder in holders if not holder.startswith("stale")} == set(won)


def test_holder_ids_are_short_stable_and_distinct() -> None:
    assert holder_id("arn:x:1") == holder_id("arn:x:1")
    assert holder_id("arn:x:1") != holder_id("arn:x:2")
    assert len(holder_id("arn:" + "x" * 500)) == 20


def test_per_host_limits_come_from_the_environment(moto_aws: None) -> None:
    settings = parse_settings(
        {EnvVar.HOST_MAX_IN_FLIGHT: "4", EnvVar.HOST_LIMITS: "Hooks.Example.com.=2, slow.example.net=0"}
    )
    assert settings.host_limit("hooks.example.com") == 2
    assert settings.host_limit("HOOKS.example.com.") == 2
    assert settings.host_limit("slow.example.net") == 0
    assert settings.host_limit("anything.else") == 4
    assert parse_settings({}).host_limit("anything") == 10


@pytest.mark.parametrize("value", ["hooks.example.com", "=3", "a=-1", "a=x"])
def test_bad_host_limits_fail_the_cold_start_naming_the_variable(value: str, moto_aws: None) -> Any:
    from lambdas.shared.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=EnvVar.HOST_LIMITS):
        parse_settings({EnvVar.HOST_LIMITS: value})
