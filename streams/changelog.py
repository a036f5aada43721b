"""A commit's state documents to a table's changelog in record batches, not one message each.

A commit writes every state changed since the last one (streams/app.py, CommitHook): a
province's worker writes about a thousand documents at a time. Through Faust's table API each
is a message of its own on Faust's producer buffer, handed one by one through Faust's and the
Kafka client's send path on the worker's one thread; the buffer passes its hundred messages and
the stream stands until it drains (Faust's "producer buffer full"). Here a commit's documents
go into record batches per changelog partition, built by the Kafka client's batch builder, and
are handed to the client in that order.

They are the messages Faust's own writes would be (the key, the JSON document, on the table's
changelog partition), so recovery reads them as before; the in-memory store keeps no persisted
offsets, which is all Faust's send callback records. Order: the batches of one writer are handed
over by one task at a time (a FIFO lock), so a partition's newer state never goes before an
older one. Each hand-over is tracked with the producer's unacknowledged sends
(streams/transport.py), so a commit's flush waits for its batches before it commits any offset,
and fails if one fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

# A changed state to write: its changelog partition, key and encoded document.
Document = tuple[int, bytes, bytes]


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
                raise RuntimeError(f"changelog record of {len(value)} bytes refused by an empty batch")
    return chains


def send_each(table: Any, documents: list[Document]) -> None:
    """The documents through the table's own changelog writes, one message each."""
    for partition, key, value in documents:
        table.send_changelog(partition, key, value, value_serializer="raw")


class ChangelogWriter:
    """Writes documents to one Faust table's changelog through the app's Kafka producer."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._handing_over = asyncio.Lock()

    def write(self, documents: list[Document]) -> None:
        if not documents:
            return
        producer = self.table.app.producer  # streams/transport.py Producer
        client = producer._ensure_producer()  # the aiokafka producer it wraps
        chains = batches_by_partition(documents, client.create_batch)
        topic = self.table.changelog_topic.get_topic_name()
        producer.unacked.track(asyncio.ensure_future(self._hand_over(client, topic, chains)))

    async def _hand_over(self, client: Any, topic: str, chains: dict[int, list[Any]]) -> None:
        async with self._handing_over:
            delivered = [
                await client.send_batch(batch, topic, partition=partition)
                for partition, chain in sorted(chains.items())
                for batch in chain
            ]
        await asyncio.gather(*delivered)
