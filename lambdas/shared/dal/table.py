"""What every table's access class shares: its name, its DynamoDB client, and how its errors are named.

The workflow retries ``StorageError`` (throttling, an unreachable endpoint) and treats anything else
as a defect, so every call on every table maps DynamoDB's errors the same way, here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared import aws
from lambdas.shared.errors import StorageError

THROTTLING_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
"""DynamoDB error codes that mean "try again later": raised as StorageError."""
CONDITION_FAILED: Final = "ConditionalCheckFailedException"


def error_code(exc: ClientError) -> str:
    """The DynamoDB error code of a failed call ('' when the response carries none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def storage_errors(operation: str) -> Iterator[None]:
    """Throttling and an unreachable endpoint become StorageError; every other error passes unchanged."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in THROTTLING_CODES:
            raise StorageError(f"DynamoDB {code} on {operation}") from exc
        raise
    except BotoCoreError as exc:
        raise StorageError(f"DynamoDB unreachable on {operation} ({type(exc).__name__})") from exc


class TableAccess:
    """One table through a low-level DynamoDB client: the one given (tests, tools), else the process-wide one."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        """The DynamoDB client: the one given, else the process-wide one."""
        return self._client if self._client is not None else aws.client("dynamodb")

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call on this table, its errors named by :func:`storage_errors`."""
        with storage_errors(operation):
            response: dict[str, Any] = getattr(self.client, operation)(TableName=self.table_name, **kwargs)
        return response
