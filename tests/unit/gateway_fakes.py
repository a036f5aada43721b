"""A ClickHouse and a broker as the gateway sees them, in memory, for the gateway's unit tests.

The storage keeps inserted rows per table and answers the few queries the intake and the
reference service make, with ReplacingMergeTree's rule (the last row of a key wins); it can be
told to fail, and counts the queries made of each table.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from services.storage.base import StorageError

# table -> the columns that key a row (ReplacingMergeTree's ORDER BY)
KEYS = {
    "ref_accounts": ("account_id",),
    "ref_institutions": ("institution_id",),
    "batch_answers": ("bank_code", "batch_id"),
    "batch_digests": ("bank_code", "batch_id"),
    "batches": ("bank_code", "batch_id"),
    "ingest_keys": ("bank_code", "record_id"),
}
_SELECT = re.compile(r"SELECT\s+(?:DISTINCT\s+)?(.+?)\s+FROM\s+\w+\.(\w+)", re.S)


class FakeStorage:
    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.queried: Counter[str] = Counter()
        self.fail_inserts = False
        self.fail_queries = False

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The table as FINAL reads it."""
        key = KEYS.get(table)
        if key is None:
            return list(self.tables[table])
        latest: dict[tuple, dict[str, Any]] = {}
        for row in self.tables[table]:
            latest[tuple(row[c] for c in key)] = row
        return list(latest.values())

    def put(self, table: str, **row: Any) -> None:
        """A row written by someone else (another gateway, an earlier version)."""
        self.tables[table].append(row)

    async def insert(self, table: str, columns, rows) -> int:
        if self.fail_inserts:
            raise StorageError("ClickHouse is away")
        name = table.rsplit(".", 1)[-1]
        self.tables[name].extend(dict(zip(columns, row, strict=True)) for row in rows)
        return len(rows)

    async def insert_all(self, inserts) -> list[int]:
        return [await self.insert(*insert) for insert in inserts]

    async def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        if self.fail_queries:
            raise StorageError("ClickHouse is away")
        match = _SELECT.search(sql)
        assert match, sql
        columns = [c.strip() for c in match.group(1).split(",")]
        table = match.group(2)
        self.queried[table] += 1
        rows = self.rows(table)
        if params and "ids" in params:
            key = KEYS[table][0]
            rows = [row for row in rows if row[key] in params["ids"]]
        return [tuple(row[c] for c in columns) for row in rows]


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    async def send_all(self, messages) -> None:
        self.sent.extend(messages)
