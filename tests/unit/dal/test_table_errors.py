"""Every table names DynamoDB's errors the same way: the workflow retries StorageError and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from lambdas.shared.dal.host_slots import HostSlots
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.dal.table import storage_errors
from lambdas.shared.errors import StorageError


def _client_error(code: str, operation: str = "UpdateItem") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "refused"}}, operation)


class _Failing:
    """A DynamoDB client whose every call raises the given error."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, operation: str) -> Any:
        def call(**_: Any) -> dict[str, Any]:
            raise self.error

        return call


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"]
)
def test_throttling_becomes_storage_error_naming_the_code(code: str) -> None:
    with pytest.raises(StorageError, match=f"{code} on update_item"), storage_errors("update_item"):
        raise _client_error(code)


def test_an_unreachable_endpoint_becomes_storage_error() -> None:
    with pytest.raises(StorageError, match="unreachable on get_item"), storage_errors("get_item"):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")


def test_other_errors_pass_unchanged() -> None:
    with pytest.raises(ClientError) as raised, storage_errors("update_item"):
        raise _client_error("ValidationException")
    assert raised.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize("store", [NotificationStore, HostSlots])
def test_both_tables_map_throttling_on_every_call(store: type[NotificationStore] | type[HostSlots]) -> None:
    table = store("t", client=_Failing(_client_error("ThrottlingException", "GetItem")))
    with pytest.raises(StorageError, match="ThrottlingException on get_item"):
        table._call("get_item", Key={})


def test_a_refused_condition_on_the_notifications_table_is_not_a_storage_error() -> None:
    store = NotificationStore("t", client=_Failing(_client_error("ConditionalCheckFailedException")))
    with pytest.raises(Exception, match="condition failed") as raised:
        store._call("update_item", Key={})
    assert not isinstance(raised.value, StorageError)
    assert type(raised.value).__name__ == "_ConditionFailedError"
