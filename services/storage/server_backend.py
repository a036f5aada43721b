"""A ClickHouse server through clickhouse-driver (native protocol), the production backend."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlparse

from services.storage.base import ColumnValues, Scaled, Storage, StorageError, block_length


def _aware(value: Any) -> Any:
    # clickhouse-driver hands back naive datetimes for DateTime('UTC'); make the zone explicit
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, list):
        return [_aware(v) for v in value]
    return value


def _driver_column(values: ColumnValues) -> Sequence[Any]:
    """A column as clickhouse-driver takes it: a list or tuple, Decimals for a Decimal column.

    The driver reads every value of a Decimal column as ``Decimal(str(value))`` and scales it
    itself (0.2.11, decimalcolumn.py), so an integer would be taken as whole units, not cents:
    Scaled integers go to it as Decimals, made here on the storage thread."""
    if isinstance(values, Scaled):
        unit = Decimal(10) ** values.scale
        return [None if value is None else Decimal(value) / unit for value in values.values]
    return values if isinstance(values, list | tuple) else list(values)


class ServerStorage(Storage):
    kind = "clickhouse"

    def __init__(
        self, host: str, port: int, user: str, password: str, database: str, secure: bool = False
    ) -> None:
        from clickhouse_driver import Client

        self.database = database
        self._client = Client(
            host=host,
            port=port,
            user=user,
            password=password,
            secure=secure,
            connect_timeout=5,
            send_receive_timeout=120,
            settings={"use_numpy": False},
        )
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> ServerStorage:
        parts = urlparse(url)
        secure = parts.scheme == "clickhouses"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (9440 if secure else 9000),
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=(parts.path or "/").lstrip("/") or "fundwatch",
            secure=secure,
        )

    def _call(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        from clickhouse_driver import errors

        with self._lock:
            try:
                return self._client.execute(sql, params, **kwargs)
            except (errors.Error, OSError, EOFError) as error:
                raise StorageError(f"ClickHouse server: {error}") from None

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._call(sql, dict(params) if params else None)

    def query_with_names(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> tuple[list[tuple], list[str]]:
        rows, columns = self._call(sql, dict(params) if params else None, with_column_types=True)
        names = [name for name, _ in columns]
        return [tuple(_aware(v) for v in row) for row in rows], names

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self.query_with_names(sql, params)[0]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        self._call(f"INSERT INTO {table} ({', '.join(columns)}) VALUES", list(rows))
        return len(rows)

    def insert_columns(self, table: str, columns: Mapping[str, ColumnValues]) -> int:
        count = block_length(columns)
        if not count:
            return 0
        data = [_driver_column(values) for values in columns.values()]
        # The driver copies each column into its blocks, so the caller's lists stay as they were
        # for a retry.
        self._call(f"INSERT INTO {table} ({', '.join(columns)}) VALUES", data, columnar=True)
        return count

    def version(self) -> str:
        return str(self.query("SELECT version()")[0][0])

    def close(self) -> None:
        with self._lock:
            self._client.disconnect()
