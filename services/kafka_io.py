"""Kafka at the gateway's edge: topic creation and the producer of record sub-batches and
reference data."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.actions import ALERT_ACTIONS_TOPIC, SUPPRESSIONS_TOPIC
from schemas.messages import ALERTS_TOPIC, INSTITUTION_TOPIC, RECORDS_TOPIC
from schemas.reference import REFERENCE_KINDS

log = logging.getLogger("fundwatch.kafka")

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# What one partition's producer batch may hold. aiokafka makes a send wait until the partition's
# open batch has gone to the broker once that batch is full, and its default (16 KiB) is less than
# one records message or one busy account's state: every send then waited a round trip for the
# one before it (a live worker's take spent 22 ms handing its institution messages over).
PRODUCER_BATCH_BYTES = 1024 * 1024


class PublishError(RuntimeError):
    """The broker did not take a message; nothing of the batch was answered as accepted."""


def topic_plan(partitions: int) -> list[NewTopic]:
    topics = [
        NewTopic(RECORDS_TOPIC, num_partitions=partitions, replication_factor=1),
        NewTopic(INSTITUTION_TOPIC, num_partitions=partitions, replication_factor=1),
        NewTopic(ALERTS_TOPIC, num_partitions=partitions, replication_factor=1),
    ]
    # Compacted: the newest value per id is what every worker must hold, forever (alert cases
    # and suppressions too: streams/alert_state.py).
    for name in [kind.topic for kind in REFERENCE_KINDS.values()] + [ALERT_ACTIONS_TOPIC, SUPPRESSIONS_TOPIC]:
        topics.append(
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"},
            )
        )
    return topics


async def ensure_topics(bootstrap: str, partitions: int, attempts: int = 30) -> None:
    """Create the topics FundWatch writes to, if they are missing; wait for the broker to come up."""
    for attempt in range(1, attempts + 1):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topic_plan(partitions) if t.name not in existing]
            if missing:
                try:
                    await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass
                log.info("topics created names=%s", ",".join(t.name for t in missing))
            return
        except KafkaError as error:
            if attempt == attempts:
                raise PublishError(f"Kafka at {bootstrap} did not answer: {error}") from None
            await asyncio.sleep(min(0.2 * attempt, 2.0))
        finally:
            await admin.close()


class Publisher:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        # Messages the broker acknowledged, per topic: lets the embedded stack drain on shutdown.
        self.acknowledged: dict[str, int] = {}

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=2,
            max_request_size=MAX_MESSAGE_BYTES,
            max_batch_size=PRODUCER_BATCH_BYTES,
            request_timeout_ms=30_000,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def send_all(self, messages: Iterable[tuple[str, int | None, bytes, bytes]]) -> None:
        """Send (topic, partition, key, value) messages and wait until the broker has all of them."""
        if self._producer is None:
            raise PublishError("the Kafka producer is not started")
        try:
            sent = [
                (topic, await self._producer.send(topic, value=value, key=key, partition=partition))
                for topic, partition, key, value in messages
            ]
            await asyncio.gather(*(future for _, future in sent))
        except KafkaError as error:
            raise PublishError(f"Kafka refused a message: {error}") from None
        for topic, _ in sent:
            self.acknowledged[topic] = self.acknowledged.get(topic, 0) + 1

    async def ping(self) -> bool:
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.partitions_for(RECORDS_TOPIC), timeout=2.0)
            return True
        except (KafkaError, TimeoutError):
            return False
