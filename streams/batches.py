"""Messages to a topic in record batches through the Kafka client, not one send each.

A commit writes every state changed since the last one (streams/app.py, CommitHook): a
province's worker writes about a thousand documents at a time. Through Faust's table API each
was a message of its own on Faust's producer buffer, handed one by one through Faust's and the
Kafka client's send path on the worker's one thread; the buffer passed its hundred messages and
the stream stood until it drained (Faust's "producer buffer full"). A take's alert revisions
went the same way, one awaited send each: with a week of state, about 1,500 in a 60,000-record
backlog at 0.4 ms each. Here they go into record batches per partition, built by the Kafka
client's batch builder, and are handed to the client in order.

They are the messages a send of each would be: the key and value, on the partition named (a
state's changelog partition) or the one the client's default partitioner gives the key (an
alert's, so every revision of an alert stays on one partition as before). A sender hands its
batches over one call at a time (a FIFO lock), so a partition's newer message never goes before
an older one. Each call's delivery is tracked with the producer's unacknowledged sends
(streams/transport.py), so a commit's flush waits for it before it commits any offset, and
fails if it fails. The in-memory table store keeps no persisted offsets, which is all Faust's
changelog send callback records, so recovery reads these writes as it read Faust's.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from aiokafka.partitioner import DefaultPartitioner

from streams import metrics

# A message to write: its partition, key and value.
Document = tuple[int, bytes, bytes]

_encode_state = msgspec.json.Encoder().encode


def state_document(partition: int, key: str, state: Any) -> Document:
    """An account's or institution's state as its changelog message, counted in
    fundwatch_state_bytes_written_total. JSON bytes encoded here, which the table's json codec
    reads back on recovery: Faust's own encoder is the standard library's with a Python-level
    hook, and a busy account's state is tens to hundreds of kilobytes."""
    doc = _encode_state(state)
    metrics.STATE_BYTES.labels("changelog").inc(len(doc))
    return partition, key.encode("utf-8"), doc


def batches_by_partition(documents: Iterable[Document], new_batch: Any) -> dict[int, list[Any]]:
    """The documents appended, in order, to batches from ``new_batch()`` (one partition's in as
    few as fit the batch size; a document larger than that has a batch of its own)."""
    chains: dict[int, list[Any]] = {}
    for partition, key, value in documents:
        chain = chains.get(partition)
        if chain is None:
            chain = chains[partition] = [new_batch()]
        if chain[-1].append(timestamp=None, key=key, value=value) is None:
            chain.append(new_batch())  # an empty batch takes any one record
            if chain[-1].append(timestamp=None, key=key, value=value) is None:
                raise RuntimeError(f"a record of {len(value)} bytes refused by an empty batch")
    return chains


def send_each(table: Any, documents: list[Document]) -> None:
    """The documents through the table's own changelog writes, one message each."""
    for partition, key, value in documents:
        table.send_changelog(partition, key, value, value_serializer="raw")


@functools.lru_cache(maxsize=1 << 16)
def keyed_partition(key: bytes, partitions: tuple[int, ...]) -> int:
    """The partition the Kafka client's default partitioner gives ``key`` (a murmur2 hash in pure
    Python, so remembered: an alert's revisions come again and again)."""
    return int(DefaultPartitioner()(key, list(partitions), list(partitions)))


class BatchSender:
    """Writes to one topic through a Faust app's Kafka producer (streams/transport.py)."""

    def __init__(self, app: Any, topic: Callable[[], str]) -> None:
        self.app = app
        self.topic = topic  # its name, asked for at the first write (a table's changelog topic)
        self._handing_over = asyncio.Lock()

    def write(self, documents: list[Document]) -> None:
        """Documents handed over in the background, in order after every earlier call's; a
        flush of the producer waits for their delivery."""
        if documents:
            self.app.producer.unacked.track(asyncio.ensure_future(self._deliver(documents)))

    async def send_keyed(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Messages on the partitions the client's default partitioner gives their keys; returns
        once they are handed over (as an awaited send does), their delivery tracked."""
        if not messages:
            return
        client = self.app.producer._ensure_producer()  # the aiokafka producer it wraps
        topic = self.topic()
        # in the order the client lists them, as its own partitioning does
        partitions = tuple(await client.partitions_for(topic))
        documents = [(keyed_partition(key, partitions), key, value) for key, value in messages]
        delivered = await self._hand_over(client, topic, documents)
        self.app.producer.unacked.track(asyncio.ensure_future(asyncio.gather(*delivered)))

    async def _deliver(self, documents: list[Document]) -> None:
        client = self.app.producer._ensure_producer()
        await asyncio.gather(*await self._hand_over(client, self.topic(), documents))

    async def _hand_over(
        self, client: Any, topic: str, documents: list[Document]
    ) -> list[asyncio.Future[Any]]:
        chains = batches_by_partition(documents, client.create_batch)
        async with self._handing_over:
            return [
                await client.send_batch(batch, topic, partition=partition)
                for partition, chain in sorted(chains.items())
                for batch in chain
            ]
