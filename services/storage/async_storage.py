"""Storage for asyncio code: every call runs on one dedicated thread, in order.

ClickHouse calls block; the event loop must not. One thread per Storage keeps both backends'
single-connection rule and preserves the order of writes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from services.storage import metrics
from services.storage.base import ColumnValues, Storage, StorageError


class AsyncStorage:
    def __init__(self, storage: Storage, name: str = "storage") -> None:
        self.sync = storage
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fw-{name}")

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        await self._run(self.sync.execute, sql, params)

    async def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return await self._run(self.sync.query, sql, params)

    async def query_dicts(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return await self._run(self.sync.query_dicts, sql, params)

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        return (await self.insert_all([(table, columns, rows)]))[0]

    async def insert_all(
        self, inserts: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]
    ) -> list[int]:
        """Several inserts (table, columns, rows) in order, in one call to the storage thread: the
        event loop is not woken between them, so the second does not wait for a busy loop to
        hand it over. Raises the first insert's StorageError; the inserts before it are written."""
        return await self._run(self._insert_each, inserts)

    def _insert_each(
        self, inserts: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]
    ) -> list[int]:
        counts, error = self._each(
            [
                (table, functools.partial(self.sync.insert, table, columns, rows))
                for table, columns, rows in inserts
            ]
        )
        if error is not None:
            raise error
        return counts

    async def insert_columns(self, table: str, columns: Mapping[str, ColumnValues]) -> int:
        counts, error = await self.insert_blocks([(table, columns)])
        if error is not None:
            raise error
        return counts[0]

    async def insert_blocks(
        self, blocks: Sequence[tuple[str, Mapping[str, ColumnValues]]]
    ) -> tuple[list[int], StorageError | None]:
        """Blocks given column by column (table, columns), in order, in one call to the storage
        thread: the event loop is not woken between them. A worker's loop runs a take's detectors
        for a hundred milliseconds and more without a pause, and a block awaited one at a time
        waited that long for the loop to hand the next one over. Stops at the first block that
        fails: the counts of those written, and its error (None when every one was)."""
        return await self._run(self._insert_blocks, blocks)

    def _insert_blocks(
        self, blocks: Sequence[tuple[str, Mapping[str, ColumnValues]]]
    ) -> tuple[list[int], StorageError | None]:
        return self._each(
            [
                (table, functools.partial(self.sync.insert_columns, table, columns))
                for table, columns in blocks
            ]
        )

    def _each(self, writes: Sequence[tuple[str, Callable[[], int]]]) -> tuple[list[int], StorageError | None]:
        """Each write (table, call) in order, counted per table, until one fails: the counts of
        those written, and the failed one's error (None when every one was)."""
        counts: list[int] = []
        for table, write in writes:
            name = table.rsplit(".", 1)[-1]
            try:
                count = write()
            except StorageError as error:
                metrics.CLICKHOUSE_ERRORS.labels(name).inc()
                return counts, error
            metrics.CLICKHOUSE_ROWS.labels(name).inc(count)
            counts.append(count)
        return counts, None

    def close(self) -> None:
        """Finish the calls in flight, then release the backend."""
        self._executor.shutdown(wait=True)
        self.sync.close()
