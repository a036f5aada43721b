"""The storage interface every reader and writer of ClickHouse goes through."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any


class StorageError(RuntimeError):
    """ClickHouse refused or could not be reached; the message says which and why."""


class Storage(abc.ABC):
    """Synchronous ClickHouse access; one object is used from one thread at a time.

    Values go in and come out as Python types: str, int, float, Decimal for Decimal columns,
    timezone-aware UTC datetimes for DateTime('UTC'), lists for arrays, None for NULL. A
    DateTime value may also go in as whole epoch seconds (an int), which both backends take as
    they are: the hot paths write them so, since a datetime costs clickhouse-driver a time-zone
    conversion per value.
    SQL uses ``%(name)s`` placeholders for values.
    """

    kind: str

    @abc.abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, OPTIMIZE, ...)."""

    @abc.abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """Run a SELECT and return its rows as tuples."""

    @abc.abstractmethod
    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows (each a sequence in ``columns`` order) in one block; return the count."""

    @abc.abstractmethod
    def version(self) -> str:
        """The ClickHouse version string."""

    def close(self) -> None:  # noqa: B027 - closing is optional for backends that hold nothing
        """Release connections or the embedded engine."""

    def query_dicts(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        rows, names = self.query_with_names(sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    @abc.abstractmethod
    def query_with_names(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> tuple[list[tuple], list[str]]:
        """Rows and the column names."""


def open_storage(url: str) -> Storage:
    """A backend for ``clickhouse://user:pass@host:port/db`` or ``chdb:///path``."""
    if url.startswith("chdb://"):
        from services.storage.chdb_backend import ChdbStorage

        return ChdbStorage.from_url(url)
    if url.startswith(("clickhouse://", "clickhouses://")):
        from services.storage.server_backend import ServerStorage

        return ServerStorage.from_url(url)
    raise StorageError(
        f"FUNDWATCH_CLICKHOUSE_URL must start with clickhouse:// or chdb://, got {url.split('://')[0]!r}://"
    )
