"""The storage interface every reader and writer of ClickHouse goes through."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class StorageError(RuntimeError):
    """ClickHouse refused or could not be reached; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Scaled:
    """A Decimal column's values as integers in units of 10**-scale (whole cents for a scale of
    2), None for NULL.

    Money is held as integer cents everywhere before storage; a Decimal object per value cost the
    worker about 0.3 µs to make, and chDB takes the integers as they are (services/storage/arrow.py).
    """

    values: Sequence[int | None]
    scale: int

    def __len__(self) -> int:
        return len(self.values)


# One column of an insert_columns call: its values in row order, or a Decimal column as Scaled.
ColumnValues = Sequence[Any] | Scaled


def block_length(columns: Mapping[str, ColumnValues]) -> int:
    """The rows in a block of columns, which must all be as long."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise StorageError(f"columns of different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


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
    def insert_columns(self, table: str, columns: Mapping[str, ColumnValues]) -> int:
        """Insert one block given column by column (name -> values, every column as long as the
        others); return the count. The values are those ``insert`` takes, plus Scaled for
        Decimal columns; an Enum column takes its names."""

    @abc.abstractmethod
    def version(self) -> str:
        """The ClickHouse version string."""

    def tune_tables(self, database: str) -> None:  # noqa: B027 - most backends need nothing
        """Backend-specific settings of the migrated tables of ``database`` (run after every
        migration, so tables created later get them too)."""

    def prepare_columns(self) -> None:  # noqa: B027 - most backends need nothing
        """Load now what ``insert_columns`` needs on its first call, for a process that will make
        columnar inserts (a worker), so that its first take does not wait for it."""

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
