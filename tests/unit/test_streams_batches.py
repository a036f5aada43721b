"""A commit's states and a take's alert revisions in record batches (streams/batches.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from streams.batches import BatchSender, batches_by_partition, keyed_partition
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

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3, 4, 5, 6, 7}

    def create_batch(self) -> BatchBuilder:
        return _builder(1 << 20)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[None]:
        await asyncio.sleep(0)  # the accumulator may wait for room: another writer must not pass
        self.handed.append((topic, partition, _records(batch)))
        delivered = asyncio.get_running_loop().create_future()
        self.delivery.append(delivered)
        return delivered


def _sender(
    client: FakeClient, unacked: UnackedSends, topic: str = "fundwatch-account-state-changelog"
) -> BatchSender:
    producer = SimpleNamespace(unacked=unacked, _ensure_producer=lambda: client)
    return BatchSender(SimpleNamespace(producer=producer), lambda: topic)


def test_commits_hand_their_batches_over_in_order_and_the_flush_waits_for_delivery():
    async def scenario() -> None:
        client, unacked = FakeClient(), UnackedSends()
        writer = _sender(client, unacked)
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
        _sender(client, unacked).write([(0, b"a", b"1")])
        for _ in range(5):
            await asyncio.sleep(0)
        client.delivery[0].set_exception(RuntimeError("broker gone"))
        with pytest.raises(RuntimeError, match="broker gone"):
            await asyncio.wait_for(unacked.acknowledged(), 1.0)

    asyncio.run(scenario())


def test_keyed_messages_go_where_the_clients_partitioner_puts_their_keys_each_alerts_in_order():
    """An alert's revisions stay on the partition a send of each would have put them on, in the
    order written; the call returns once they are handed over, and the flush waits for delivery."""

    async def scenario() -> None:
        client, unacked = FakeClient(), UnackedSends()
        sender = _sender(client, unacked, "fw.alerts")
        keys = [f"A-{n}".encode() for n in range(12)]
        await sender.send_keyed([(key, b"rev1") for key in keys])
        await sender.send_keyed([(keys[3], b"rev2"), (keys[3], b"rev3")])
        placed = {key: partition for _, partition, records in client.handed for key, _ in records}
        partitions = list({0, 1, 2, 3, 4, 5, 6, 7})
        assert placed == {key: DefaultPartitioner()(key, partitions, partitions) for key in keys}
        assert len(set(placed.values())) > 1
        revisions = [value for _, _, records in client.handed for key, value in records if key == keys[3]]
        assert revisions == [b"rev1", b"rev2", b"rev3"]
        assert {topic for topic, _, _ in client.handed} == {"fw.alerts"}
        flushing = asyncio.ensure_future(unacked.acknowledged())
        await asyncio.sleep(0.01)
        assert not flushing.done()
        for delivered in client.delivery:
            delivered.set_result(None)
        await asyncio.wait_for(flushing, 1.0)
        assert keyed_partition(keys[0], tuple(partitions)) == placed[keys[0]]

    asyncio.run(scenario())
