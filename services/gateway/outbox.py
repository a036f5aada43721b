"""The outbox: a 202 is a promise (CONTRACT.md §2, DESIGN.md "A 202 is a promise").

Every records message of an accepted batch is written to ClickHouse (``outbox``) in the same
write as the batch's record keys and answer, before the bank hears 202. Only then is it published.
The embedded broker keeps nothing on disk, so a message that was only on its topic died with the
process; now it is in the outbox, and at start the gateway publishes again every message that
the workers have not marked done (``outbox_done``: the records stage and each institution part,
marked once the states they changed are snapshotted; streams/sink.py). With a real Kafka the
topic is a durable copy too and start-up finds (almost) nothing to do; a message published twice
is harmless, since raw records, aggregates and states are all keyed by what they came from.

A publish that fails after the write is not the bank's problem any more: the batch is durable,
the answer is 202, and the message is published again in the background until the broker takes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from schemas.ddl import DATABASE
from schemas.messages import RECORDS_TOPIC
from services.kafka_io import Publisher, PublishError
from services.storage.async_storage import AsyncStorage
from services.storage.base import StorageError

log = logging.getLogger("fundwatch.gateway")

OUTBOX_COLUMNS = ("msg_id", "partition", "payload", "received_at")
REPLAY_CHUNK = 500  # messages read and published at a time at start
RETRY_FIRST_S = 0.5
RETRY_MOST_S = 30.0

# A message is done when its records stage is marked and as many institution parts as that stage
# sent on are marked too. uniqExact: a mark written twice (a replay) counts once.
_UNDONE = f"""
    SELECT msg_id, partition, received_at FROM {DATABASE}.outbox FINAL
    WHERE msg_id NOT IN (
        SELECT msg_id FROM {DATABASE}.outbox_done
        GROUP BY msg_id
        HAVING uniqExactIf(stage, stage = 'records') = 1
           AND uniqExactIf(stage, stage != 'records') >= maxIf(parts, stage = 'records')
    )
    ORDER BY received_at, msg_id"""


class OutboxMessage:
    """One records message: its id, the partition it goes to, and its bytes as published."""

    __slots__ = ("msg_id", "partition", "payload")

    def __init__(self, msg_id: str, partition: int, payload: bytes) -> None:
        self.msg_id = msg_id
        self.partition = partition
        self.payload = payload

    def publishable(self) -> tuple[str, int, bytes, bytes]:
        return (RECORDS_TOPIC, self.partition, self.msg_id.encode("utf-8"), self.payload)


def outbox_rows(messages: Sequence[OutboxMessage], received_at: int) -> list[list[object]]:
    """The outbox rows of one batch's messages (the payload is JSON: UTF-8 text)."""
    return [[m.msg_id, m.partition, m.payload.decode("utf-8"), received_at] for m in messages]


class Outbox:
    def __init__(self, storage: AsyncStorage, publisher: Publisher, partitions: int = 0) -> None:
        self.storage = storage
        self.publisher = publisher
        self.partitions = partitions  # of the records topic now; 0 when unknown
        self._pending: list[OutboxMessage] = []
        self._retrying: asyncio.Task[None] | None = None

    async def publish(self, messages: Sequence[OutboxMessage]) -> bool:
        """Publish messages already in the outbox; on failure keep them for the retry loop.
        Returns whether they went out now."""
        if not messages:
            return True
        try:
            await self.publisher.send_all(m.publishable() for m in messages)
            return True
        except PublishError as error:
            log.warning("outbox publish deferred messages=%d error=%s", len(messages), error)
            self._pending.extend(messages)
            if self._retrying is None or self._retrying.done():
                self._retrying = asyncio.create_task(self._retry())
            return False

    @property
    def pending(self) -> int:
        """Messages accepted and durable but not yet on the broker."""
        return len(self._pending)

    async def _retry(self) -> None:
        delay = RETRY_FIRST_S
        while self._pending:
            await asyncio.sleep(delay)
            taken, self._pending = self._pending, []
            try:
                await self.publisher.send_all(m.publishable() for m in taken)
                log.info("outbox published deferred messages=%d", len(taken))
                delay = RETRY_FIRST_S
            except PublishError as error:
                self._pending = taken + self._pending
                delay = min(delay * 2, RETRY_MOST_S)
                log.warning("outbox publish failed again messages=%d retry_in_s=%.1f error=%s",
                            len(taken), delay, error)  # fmt: skip

    async def replay(self) -> int:
        """At start: publish again every outbox message the workers have not marked done.
        Returns how many were published."""
        undone = await self.storage.query(_UNDONE)
        total = 0
        for start in range(0, len(undone), REPLAY_CHUNK):
            chunk = undone[start : start + REPLAY_CHUNK]
            payloads = dict(
                await self.storage.query(
                    f"SELECT msg_id, any(payload) FROM {DATABASE}.outbox WHERE msg_id IN %(ids)s GROUP BY msg_id",
                    {"ids": tuple(msg_id for msg_id, _, _ in chunk)},
                )
            )
            messages = [
                OutboxMessage(msg_id, self._partition(msg_id, int(partition)), payloads[msg_id].encode("utf-8"))
                for msg_id, partition, _ in chunk
            ]
            await self.publisher.send_all(m.publishable() for m in messages)
            total += len(messages)
        if total:
            log.info("outbox replayed messages=%d (accepted earlier, not yet marked done)", total)
        return total

    def _partition(self, msg_id: str, stored: int) -> int:
        """The partition to publish a stored message to. A message accepted when the records
        topic had more partitions than now (FUNDWATCH_PARTITIONS lowered) would be refused by
        the broker and stop the start; it goes to a partition that exists, and the operator is
        told that its accounts' order across the change is not kept."""
        if not self.partitions or stored < self.partitions:
            return stored
        log.warning("outbox message for a partition that no longer exists msg=%s partition=%d partitions=%d",
                    msg_id, stored, self.partitions)  # fmt: skip
        return stored % self.partitions

    async def close(self) -> None:
        if self._retrying is not None and not self._retrying.done():
            self._retrying.cancel()
            try:
                await self._retrying
            except (asyncio.CancelledError, StorageError, PublishError):
                pass
