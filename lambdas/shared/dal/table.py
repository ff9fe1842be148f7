"""What every table's access class shares: its name and the DynamoDB client it talks through."""

from __future__ import annotations

from typing import Any

from lambdas.shared import aws


class TableAccess:
    """One table through a low-level DynamoDB client: the one given (tests, tools), else the process-wide one."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        """The DynamoDB client: the one given, else the process-wide one."""
        return self._client if self._client is not None else aws.client("dynamodb")
