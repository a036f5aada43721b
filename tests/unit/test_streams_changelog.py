"""A commit's states to the changelog in record batches (streams/changelog.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from streams.changelog import ChangelogWriter, batches_by_partition
from streams.transport import UnackedSends


def _builder(size: int = 1024) -> BatchBuilder:
    return BatchBuilder(size, 0)


def _records(batch: BatchBuilder) -> list[tuple[bytes, bytes]]:
    return [(record.key, record.value) for record in DefaultRecordBatch(bytes(batch._build()))]


def test_documents_go_in_order_into_batches_per_partition():
    docs = [(p, f"k{n}".encode(), bytes([65 + n]) * 300) for n, p in enumerate([0, 1, 0, 0, 1, 0, 2])]
    chains = batches_by_partition(docs, _builder)
    assert sorted(chains) == [0, 1, 2]
    for partition, chain in chains.items():
        written = [record for batch in chain for record in _records(batch)]
        assert written == [(key, value) for p, key, value in docs if p == partition]
    assert len(chains[0]) == 2  # four documents of 300 bytes in batches of 1 KiB


def test_a_document_larger_than_a_batch_has_a_batch_of_its_own():
    docs = [(0, b"small", b"s" * 10), (0, b"big", b"b" * 5000), (0, b"after", b"a" * 10)]
    [chain] = batches_by_partition(docs, _builder).values()
    assert [[key for key, _ in _records(batch)] for batch in chain] == [[b"small"], [b"big"], [b"after"]]


class FakeClient:
    """The aiokafka producer's batch interface: each batch handed over is delivered when the test
    says so."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []
        self.delivery: list[asyncio.Future[None]] = []

    def create_batch(self) -> BatchBuilder:
        return _builder(1 << 20)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[None]:
        await asyncio.sleep(0)  # the accumulator may wait for room: another writer must not pass
        self.handed.append((topic, partition, _records(batch)))
        delivered = asyncio.get_running_loop().create_future()
        self.delivery.append(delivered)
        return delivered


def _table(client: FakeClient, unacked: UnackedSends) -> SimpleNamespace:
    producer = SimpleNamespace(unacked=unacked, _ensure_producer=lambda: client)
    return SimpleNamespace(
        app=SimpleNamespace(producer=producer),
        changelog_topic=SimpleNamespace(get_topic_name=lambda: "fundwatch-account-state-changelog"),
    )


def test_commits_hand_their_batches_over_in_order_and_the_flush_waits_for_delivery():
    async def scenario() -> None:
        client, unacked = FakeClient(), UnackedSends()
        writer = ChangelogWriter(_table(client, unacked))
        writer.write([(1, b"a", b"1"), (0, b"b", b"1")])
        writer.write([(1, b"a", b"2")])
        writer.write([])
        flushing = asyncio.ensure_future(unacked.acknowledged())
        for _ in range(10):
            await asyncio.sleep(0)
        assert [(p, records) for _, p, records in client.handed] == [
            (0, [(b"b", b"1")]), (1, [(b"a", b"1")]), (1, [(b"a", b"2")])
        ]  # fmt: skip
        assert {topic for topic, _, _ in client.handed} == {"fundwatch-account-state-changelog"}
        assert not flushing.done()  # handed over, not yet acknowledged by the broker
        for delivered in client.delivery:
            delivered.set_result(None)
        await asyncio.wait_for(flushing, 1.0)

    asyncio.run(scenario())


def test_a_failed_delivery_fails_the_flush():
    async def scenario() -> None:
        client, unacked = FakeClient(), UnackedSends()
        ChangelogWriter(_table(client, unacked)).write([(0, b"a", b"1")])
        for _ in range(5):
            await asyncio.sleep(0)
        client.delivery[0].set_exception(RuntimeError("broker gone"))
        with pytest.raises(RuntimeError, match="broker gone"):
            await asyncio.wait_for(unacked.acknowledged(), 1.0)

    asyncio.run(scenario())
