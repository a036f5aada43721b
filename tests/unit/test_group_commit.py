"""services/gateway/group_commit.py: concurrent batches share ClickHouse writes, and each is
answered only after its own rows are written (its messages, then one row holding its answer,
digest and record keys)."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.group_commit import GroupCommit
from services.storage.base import StorageError


class SlowStorage:
    """insert() and insert_all() as AsyncStorage has them, taking a while, failing on cue."""

    def __init__(self, fail_rounds: int = 0) -> None:
        self.inserts: list[tuple[str, list]] = []
        self.fail_rounds = fail_rounds

    async def insert(self, table, columns, rows):
        await asyncio.sleep(0.01)
        if self.fail_rounds:
            if table.endswith("batches"):
                self.fail_rounds -= 1
            raise StorageError("ClickHouse is away")
        self.inserts.append((table.rsplit(".", 1)[-1], list(rows)))
        return len(rows)

    async def insert_all(self, inserts):
        return [await self.insert(*insert) for insert in inserts]


def test_batches_arriving_together_share_one_write_per_table_and_all_wait_for_it():
    async def main():
        storage = SlowStorage()
        commits = GroupCommit(storage)
        order = []

        async def batch(n: int) -> None:
            await commits.write_batch(
                [[f"B001/b{n}/{p}", p, "[]", 0] for p in range(2)],
                "B001", f"b{n}", [f"r{n}-{i}" for i in range(3)], "{}", None, 0,
            )  # fmt: skip
            order.append((n, len(storage.inserts)))

        await asyncio.gather(*(batch(n) for n in range(6)))
        return storage, commits, order

    storage, commits, order = asyncio.run(main())
    # all six were waiting before the first write began: one round, one insert per table
    assert commits.writes == 1
    # the messages first: keys without them would make a re-send a duplicate of nothing
    assert [(table, len(rows)) for table, rows in storage.inserts] == [("outbox", 12), ("batches", 6)]
    # each batch's row holds its answer and its three keys
    assert [len(row[4]) for row in storage.inserts[1][1]] == [3] * 6
    # nobody was answered before its own rows were in
    assert all(written == 2 for _, written in order)


def test_batches_arriving_during_a_write_go_in_the_next_one():
    async def main():
        storage = SlowStorage()
        commits = GroupCommit(storage)
        first = asyncio.ensure_future(commits.write_batch([], "B001", "b0", ["a"], "{}", None, 0))
        await asyncio.sleep(0.005)  # the first write is under way
        later = [asyncio.ensure_future(commits.write_batch([], "B001", f"b{n}", [f"r{n}"], "{}", None, 0))
                 for n in range(1, 5)]  # fmt: skip
        await asyncio.gather(first, *later)
        return storage, commits

    storage, commits = asyncio.run(main())
    assert commits.writes == 2
    assert [len(rows) for _, rows in storage.inserts] == [1, 4]


def test_a_failed_write_refuses_every_batch_of_its_round_and_the_next_round_goes_through():
    async def main():
        storage = SlowStorage(fail_rounds=1)
        commits = GroupCommit(storage)
        first = asyncio.ensure_future(commits.write_batch([], "B001", "b1", ["a"], "{}", None, 0))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(commits.write_batch([], "B001", "b2", [], "{}", None, 0))
        results = await asyncio.gather(first, second, return_exceptions=True)
        third = await commits.write_batch([], "B001", "b3", ["c"], "{}", None, 0)
        return results, third, storage

    results, third, storage = asyncio.run(main())
    assert isinstance(results[0], StorageError)
    assert results[1] is None or isinstance(results[1], StorageError)
    assert third is None and storage.inserts[-1][0] == "batches"


def test_a_caller_that_goes_away_does_not_cancel_the_write_others_wait_for():
    async def main():
        storage = SlowStorage()
        commits = GroupCommit(storage)
        leaving = asyncio.ensure_future(commits.write_batch([], "B001", "b1", ["x"], "{}", None, 0))
        staying = asyncio.ensure_future(commits.write_batch([], "B002", "b2", ["y"], "{}", None, 0))
        await asyncio.sleep(0)
        leaving.cancel()
        await staying
        await asyncio.sleep(0.05)
        return storage

    storage = asyncio.run(main())
    written = {key for table, rows in storage.inserts if table == "batches" for row in rows for key in row[4]}
    assert written == {"x", "y"}


@pytest.mark.parametrize("keys", [[], ["k"]])
def test_a_lone_batch_waits_for_nobody(keys):
    async def main():
        storage = SlowStorage()
        commits = GroupCommit(storage)
        await asyncio.wait_for(commits.write_batch([], "B001", "b", keys, "{}", None, 0), 1.0)
        return storage, commits

    storage, commits = asyncio.run(main())
    assert commits.writes == 1
    assert [table for table, _ in storage.inserts] == ["batches"]
    assert storage.inserts[0][1][0][4] == keys


def test_digests_are_written_in_the_same_row_as_the_answers():
    async def main():
        storage = SlowStorage()
        commits = GroupCommit(storage)
        await asyncio.gather(
            commits.write_batch([], "B001", "b1", ["a"], "{}", "d1", 0),
            commits.write_batch([], "B001", "b2", [], "{}", "d2", 0),
            commits.write_batch([], "B001", "b3", [], "{}", None, 0),  # a writer that keeps no digest
        )
        return storage, commits

    storage, commits = asyncio.run(main())
    assert commits.writes == 1
    assert [table for table, _ in storage.inserts] == ["batches"]
    assert [(row[1], row[3]) for row in storage.inserts[0][1]] == [("b1", "d1"), ("b2", "d2"), ("b3", "")]


def test_a_failed_write_of_the_batch_row_refuses_the_batch_and_stores_nothing_of_it():
    class NoDigests(SlowStorage):
        async def insert(self, table, columns, rows):
            if table.endswith("batches"):
                raise StorageError("ClickHouse is away")
            return await super().insert(table, columns, rows)

    async def main():
        storage = NoDigests()
        commits = GroupCommit(storage)
        with pytest.raises(StorageError):
            await commits.write_batch([], "B001", "b1", [], "{}", "d1", 0)
        return storage

    assert [table for table, _ in asyncio.run(main()).inserts] == []

