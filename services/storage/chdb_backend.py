"""chDB: ClickHouse inside this process, for `fundwatch run`.

Only one process may own a chDB data directory, so everything that reads or writes storage in
the embedded stack shares this object (through AsyncStorage's single thread).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from services.storage.base import ColumnValues, Storage, StorageError, block_length
from services.storage.rowbinary import encode_rows
from services.storage.sql import literal, render

_JSON_SETTINGS = (
    " SETTINGS output_format_json_quote_decimals = 1, output_format_json_quote_64bit_integers = 0"
)


def _to_datetime(text: str) -> datetime:
    return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _converter(type_name: str) -> Callable[[Any], Any]:
    """How to turn one JSON value of a ClickHouse type into the Python value the interface promises."""
    if type_name.startswith("Nullable("):
        inner = _converter(type_name[len("Nullable(") : -1])
        return lambda v: None if v is None else inner(v)
    if type_name.startswith("LowCardinality("):
        return _converter(type_name[len("LowCardinality(") : -1])
    if type_name.startswith("Array("):
        inner = _converter(type_name[len("Array(") : -1])
        return lambda v: [inner(x) for x in v]
    if type_name.startswith("Decimal"):
        return lambda v: Decimal(str(v))
    if type_name.startswith("DateTime"):
        return _to_datetime
    if type_name == "Date":
        return date.fromisoformat
    if re.match(r"U?Int\d+$", type_name):
        return int
    if type_name.startswith("Float"):
        return float
    return lambda v: v


# Rows of at least this many bytes as JSON are inserted as RowBinary from a file: reading a file
# costs chDB 2-3 ms more than data inline, less than what a quarter of a megabyte of JSON inline
# costs it more than the same rows as RowBinary (rowbinary.py). Smaller rows are encoded once.
FILE_INSERT_BYTES = 256 * 1024

# parts smaller than this are stored packed (one file); 10 MiB covers every insert of a take
PACKED_PART_BYTES = 10 * 1024 * 1024


class ChdbStorage(Storage):
    kind = "chdb"

    def __init__(self, path: str) -> None:
        from chdb import session

        Path(path).mkdir(parents=True, exist_ok=True)
        self.path = path
        self._session = session.Session(path)
        # chDB's session is not safe across threads; AsyncStorage uses one thread, this guards the rest.
        self._lock = threading.RLock()  # re-entered by _insert_file, which writes its file and inserts as one
        # table -> column -> ClickHouse type, for the Arrow types of insert_columns and RowBinary
        self._column_types: dict[str, dict[str, str]] = {}
        self._insert_path = Path(path).resolve() / "fundwatch-inserts" / "rows.bin"

    @classmethod
    def from_url(cls, url: str) -> ChdbStorage:
        path = url[len("chdb://") :]
        if not path:
            raise StorageError(
                "chdb:// needs a path, e.g. chdb:///var/lib/fundwatch/chdb or chdb://./var/chdb"
            )
        return cls(path)

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        with self._lock:
            try:
                return self._session.query(sql, fmt)
            except Exception as error:  # chDB raises plain RuntimeError with ClickHouse's message
                raise StorageError(f"chDB: {error}") from None

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(render(sql, params))

    def query_with_names(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> tuple[list[tuple], list[str]]:
        result = self._run(render(sql, params) + _JSON_SETTINGS, "JSONCompact")
        raw = result.bytes()
        if not raw:
            return [], []
        doc = msgspec.json.decode(raw)
        meta = doc["meta"]
        converters = [_converter(col["type"]) for col in meta]
        rows = [tuple(conv(v) for conv, v in zip(converters, row, strict=True)) for row in doc["data"]]
        return rows, [col["name"] for col in meta]

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self.query_with_names(sql, params)[0]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        # msgspec writes Decimal as a quoted exact string and datetimes as RFC 3339, which
        # ClickHouse reads with best-effort parsing: no per-value conversion in Python.
        encode = msgspec.json.encode
        payload = b"\n".join(encode(row) for row in rows)
        if len(payload) >= FILE_INSERT_BYTES:
            types = self._types_of(table, columns)
            data = encode_rows(rows, types)
            if data is not None:
                self._insert_file(table, columns, types, data)
                return len(rows)
        self._run(
            f"INSERT INTO {table} ({', '.join(columns)}) SETTINGS date_time_input_format = 'best_effort' "
            "FORMAT JSONCompactEachRow\n" + payload.decode()
        )
        return len(rows)

    def _table_types(self, table: str) -> dict[str, str]:
        types = self._column_types.get(table)
        if types is None:
            types = self._column_types[table] = {
                name: type_name for name, type_name, *_ in self.query(f"DESCRIBE TABLE {table}")
            }
        return types

    def _types_of(self, table: str, columns: Sequence[str]) -> list[str]:
        """The columns' types; "" for a column the table does not have (no RowBinary writes it)."""
        types = self._table_types(table)
        return [types.get(column, "") for column in columns]

    def _insert_file(self, table: str, columns: Sequence[str], types: Sequence[str], data: bytes) -> None:
        """Rows already in RowBinary, inserted from a file (rowbinary.py: chDB takes inline data
        only as text). The file is the storage's own, written for each insert and removed after
        it; inserts run one at a time (the lock)."""
        structure = ", ".join(f"{name} {type_name}" for name, type_name in zip(columns, types, strict=True))
        names = ", ".join(columns)
        with self._lock:
            try:
                self._insert_path.parent.mkdir(parents=True, exist_ok=True)
                self._insert_path.write_bytes(data)
            except OSError as error:
                raise StorageError(f"chDB: the insert's data could not be written: {error}") from None
            try:
                self._run(
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM "
                    f"file({literal(str(self._insert_path))}, 'RowBinary', {literal(structure)})"
                )
            except StorageError:
                self._column_types.pop(table, None)  # a changed table is described again on the retry
                raise
            finally:
                self._insert_path.unlink(missing_ok=True)

    def prepare_columns(self) -> None:
        # pyarrow, and pandas, which pyarrow imports the first time it converts a list: about a
        # second of CPU on a busy machine, which the first take of records would otherwise wait for
        from services.storage.arrow import warm_up_conversions

        warm_up_conversions()

    def insert_columns(self, table: str, columns: Mapping[str, ColumnValues]) -> int:
        count = block_length(columns)
        if not count:
            return 0
        # pyarrow loads with the first columnar insert: the gateway's chDB never makes one
        from services.storage.arrow import arrow_table

        types = self._table_types(table)
        # The Python table function finds this local by its name, on the calling thread's stack.
        fundwatch_columns = arrow_table(columns, types)  # noqa: F841 - read by chDB, by name
        names = ", ".join(columns)
        try:
            self._run(f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(fundwatch_columns)")
        except StorageError:
            self._column_types.pop(table, None)  # a changed table is described again on the retry
            raise
        return count

    def tune_tables(self, database: str) -> None:
        """Small parts of every MergeTree table written as one packed file each instead of a
        file per column: an embedded process inserts a few hundred rows per table many times a
        second (the gateway's group commits, the worker's takes), and creating a part's files
        was most of an insert's cost (about 10 ms a part, 6-7 ms packed, measured in chDB
        26.9). Merges rewrite grown parts as usual. A clickhouse-server is left as its
        operators configure it (Debian's older server does not know the setting)."""
        tables = self.query(
            "SELECT name FROM system.tables WHERE database = %(db)s AND engine LIKE '%%MergeTree'"
            " AND position(create_table_query, 'min_bytes_for_full_part_storage') = 0",
            {"db": database},
        )
        for (name,) in tables:
            self.execute(
                f"ALTER TABLE {database}.{name} MODIFY SETTING "
                f"min_bytes_for_full_part_storage = {PACKED_PART_BYTES}"
            )

    def version(self) -> str:
        return str(self.query("SELECT version()")[0][0])

    def close(self) -> None:
        with self._lock:
            try:
                self._session.close()
            except Exception:  # closing twice, or after a failed start: nothing left to release
                pass
