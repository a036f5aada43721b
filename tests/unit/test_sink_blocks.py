"""A take's blocks (raw records, aggregates) go to ClickHouse in one call to the storage thread,
in order; after a failure the sink retries from the first block not written, never writing one
twice (streams/sink.py ``insert_blocks``, services/storage/async_storage.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.storage.async_storage import AsyncStorage
from services.storage.base import StorageError
from streams.sink import Sink


class FlakyStorage:
    """Takes blocks, failing each table named in ``fail_once`` the first time it is given."""

    def __init__(self, fail_once: set[str]) -> None:
        self.fail_once = set(fail_once)
        self.written: list[str] = []
        self.threads: set[int] = set()

    def insert_columns(self, table, columns) -> int:
        self.threads.add(threading.get_ident())
        if table in self.fail_once:
            self.fail_once.discard(table)
            raise StorageError(f"table {table} is not there yet")
        self.written.append(table)
        return len(columns["id"])

    def close(self) -> None:
        pass


def _blocks(*tables: str) -> list[tuple[str, dict[str, list[str]]]]:
    return [(table, {"id": [table, table]}) for table in tables]


def test_blocks_are_written_in_order_on_the_storage_thread():
    storage = FlakyStorage(set())
    wrapped = AsyncStorage(storage)
    try:
        counts, error = asyncio.run(wrapped.insert_blocks(_blocks("fw.a", "fw.b")))
    finally:
        wrapped.close()
    assert (counts, error) == ([2, 2], None)
    assert storage.written == ["fw.a", "fw.b"] and threading.get_ident() not in storage.threads


def test_a_failed_block_stops_the_call_and_is_retried_with_those_after_it():
    storage = FlakyStorage({"fw.b"})
    wrapped = AsyncStorage(storage)
    sink = Sink(wrapped, alerts_topic=None)
    try:
        counts, error = asyncio.run(wrapped.insert_blocks(_blocks("fw.a", "fw.b", "fw.c")))
        assert counts == [2] and isinstance(error, StorageError) and "fw.b" in str(error)
        storage.fail_once = {"fw.e"}
        asyncio.run(asyncio.wait_for(sink.insert_blocks(_blocks("fw.d", "fw.e", "fw.f")), 5.0))
    finally:
        wrapped.close()
    assert storage.written == ["fw.a", "fw.d", "fw.e", "fw.f"]  # fw.d once, though its call failed


def test_no_blocks_make_no_call_and_a_malformed_block_is_refused_before_any_is_written():
    storage = FlakyStorage(set())
    wrapped = AsyncStorage(storage)
    sink = Sink(wrapped, alerts_topic=None)
    try:
        asyncio.run(sink.insert_blocks([]))
        malformed = [("fw.a", {"id": ["x"]}), ("fw.b", {"id": ["x", "y"], "n": [1]})]
        with pytest.raises(StorageError, match="different lengths"):
            asyncio.run(sink.insert_blocks(malformed))
    finally:
        wrapped.close()
    assert storage.threads == set() and storage.written == []
