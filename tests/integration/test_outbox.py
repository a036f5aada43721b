"""The outbox on both backends: what the gateway publishes again at start is exactly the
accepted messages the workers have not marked done (services/gateway/outbox.py)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from schemas.ddl import DATABASE
from services.gateway.outbox import OUTBOX_COLUMNS, Outbox, OutboxMessage, outbox_rows
from services.kafka_io import PublishError
from services.storage.async_storage import AsyncStorage

pytestmark = pytest.mark.integration


class FakePublisher:
    """Stands in for the broker: remembers what was sent, or refuses while ``down``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bytes, bytes]] = []
        self.down = False

    async def send_all(self, messages) -> None:
        messages = list(messages)
        if self.down:
            raise PublishError("broker away")
        self.sent.extend(messages)


def _done(storage, rows) -> None:
    storage.insert(
        f"{DATABASE}.outbox_done", ("msg_id", "stage", "parts", "done_at"),
        [[msg_id, stage, parts, int(time.time())] for msg_id, stage, parts in rows],
    )  # fmt: skip


def test_start_up_publishes_what_was_accepted_and_not_done(storage):
    # the storage fixture is shared: the outbox may hold other tests' messages; look at ours only
    run = uuid.uuid4().hex
    ids = [f"B001/{run}/{n}" for n in range(5)]
    messages = [OutboxMessage(msg_id, n, f'["{msg_id}","客户"]'.encode()) for n, msg_id in enumerate(ids)]
    storage.insert(f"{DATABASE}.outbox", OUTBOX_COLUMNS, outbox_rows(messages, int(time.time())))
    _done(storage, [
        (ids[0], "records", 0),                                            # done: no institution part
        (ids[1], "records", 2), (ids[1], "i3", 0), (ids[1], "i5", 0),      # done: both parts
        (ids[2], "records", 2), (ids[2], "i3", 0), (ids[2], "i3", 0),      # one part, marked twice
        (ids[3], "i1", 0),                                                 # records stage not marked
    ])  # fmt: skip
    publisher = FakePublisher()
    # the records topic has 4 partitions now: the message stored for partition 4 goes to one that exists
    outbox = Outbox(AsyncStorage(storage), publisher, partitions=4)
    try:
        asyncio.run(outbox.replay())
    finally:
        # the storage is the session's: a gateway of a later test must not publish these again
        _done(storage, [(msg_id, "records", 0) for msg_id in ids])
    ours = {key.decode(): (topic, partition, value) for topic, partition, key, value in publisher.sent
            if key.decode().startswith(f"B001/{run}/")}  # fmt: skip
    assert sorted(ours) == [ids[2], ids[3], ids[4]]
    assert ours[ids[3]] == ("fw.records", 3, f'["{ids[3]}","客户"]'.encode())
    assert ours[ids[4]] == ("fw.records", 0, f'["{ids[4]}","客户"]'.encode())


def test_a_publish_that_fails_after_the_write_is_retried_until_the_broker_takes_it():
    async def scenario() -> list:
        publisher = FakePublisher()
        publisher.down = True
        outbox = Outbox(storage=None, publisher=publisher)  # type: ignore[arg-type]
        message = OutboxMessage("B001/b/0", 0, b"[]")
        assert await outbox.publish([message]) is False
        assert outbox.pending == 1
        await asyncio.sleep(0.1)
        publisher.down = False
        for _ in range(50):
            if not outbox.pending:
                break
            await asyncio.sleep(0.1)
        await outbox.close()
        return publisher.sent

    assert [key for _, _, key, _ in asyncio.run(scenario())] == [b"B001/b/0"]
