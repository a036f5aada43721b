"""streams/transport.py: a message the stream skipped or never took is never committed over, and a
commit waits until the broker has acknowledged every message handed to the producer."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types.tuples import ConsumerMessage

from streams.transport import SKIPPED_UNACKNOWLEDGED, Consumer, Producer, UnackedSends


def _consumer_with_acking_topic(topic: str) -> Consumer:
    app = faust.App("fw-transport-test", broker="fundwatch://127.0.0.1:1", store="memory://")
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    app.topics._acking_topics.add(topic)  # what the conductor does for a topic a stream acks
    return consumer


def _message(topic: str, offset: int) -> ConsumerMessage:
    return ConsumerMessage(topic, 0, offset, 0.0, 0, None, b"key", b"value", None, generation_id=1)


def test_a_message_the_stream_took_is_acknowledged_and_counts_for_the_commit():
    consumer = _consumer_with_acking_topic("fw.records")
    message = _message("fw.records", 7)
    message.tracked = True
    assert consumer.ack(message) is True
    assert consumer._acked[message.tp] == [7]
    consumer._committed_offset[message.tp] = 7
    assert consumer._new_offset(message.tp) == 8


def test_messages_fetched_and_never_handed_on_hold_the_commit_at_the_first_of_them():
    consumer = _consumer_with_acking_topic("fw.records")
    tp = _message("fw.records", 0).tp
    consumer._committed_offset[tp] = 14
    for offset in (*range(14, 30), *range(31, 35)):  # 30 fetched, never handed to the stream
        message = _message("fw.records", offset)
        message.tracked = True
        assert consumer.ack(message) is True
    # the fetcher saw the handed-on offsets jump from 14 to 31 (its read offset reset under it)
    asyncio.run(consumer._add_gap(tp, 15, 31))
    assert not consumer._gap[tp]  # no hole recorded: these logs have none
    assert consumer._new_offset(tp) == 30
    consumer._committed_offset[tp] = 30
    assert consumer._new_offset(tp) is None  # not over 30
    again = _message("fw.records", 30)  # fetched again (StallGuard) and taken
    again.tracked = True
    assert consumer.ack(again) is True
    assert consumer._new_offset(tp) == 35


def test_a_message_the_stream_skipped_is_not_acknowledged_so_it_is_fetched_again():
    consumer = _consumer_with_acking_topic("fw.records")
    before = SKIPPED_UNACKNOWLEDGED.labels("fw.records")._value.get()
    skipped = _message("fw.records", 7)  # never tracked: the stream dropped it at a rebalance
    assert consumer.ack(skipped) is False
    assert consumer._acked[skipped.tp] == []
    taken = _message("fw.records", 8)
    taken.tracked = True
    assert consumer.ack(taken) is True
    # the gap at 7 holds the commit back: nothing after the skipped message counts as done
    consumer._committed_offset[skipped.tp] = 7  # the next offset to read, as Kafka commits it
    assert consumer._new_offset(skipped.tp) is None
    again = _message("fw.records", 7)  # fetched again after the rebalance's seek, and taken
    again.tracked = True
    assert consumer.ack(again) is True
    assert consumer._new_offset(skipped.tp) == 9
    assert SKIPPED_UNACKNOWLEDGED.labels("fw.records")._value.get() == before + 1


def test_a_flush_waits_for_every_message_handed_on_until_the_broker_acknowledged_it():
    async def scenario() -> list[str]:
        unacked = UnackedSends()
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        unacked.track(first)
        unacked.track(second)
        steps: list[str] = []

        async def broker() -> None:
            await asyncio.sleep(0.3)  # longer than Faust's buffer flush waits for one message
            first.set_result("acked")
            steps.append("first acked")
            await asyncio.sleep(0.05)
            late = loop.create_future()
            unacked.track(late)  # sent while the flush waits: waited for too
            second.set_result("acked")
            steps.append("second acked")
            await asyncio.sleep(0.05)
            late.set_result("acked")
            steps.append("late acked")

        acking = asyncio.ensure_future(broker())
        await unacked.acknowledged()
        steps.append("flushed")
        await acking
        assert not unacked.pending
        return steps

    assert asyncio.run(scenario()) == ["first acked", "second acked", "late acked", "flushed"]


def test_a_send_the_broker_refused_stops_the_flush_with_its_error():
    async def scenario() -> None:
        unacked = UnackedSends()
        failed = asyncio.get_running_loop().create_future()
        unacked.track(failed)
        failed.set_exception(RuntimeError("changelog write refused"))
        await unacked.acknowledged()

    with pytest.raises(RuntimeError, match="changelog write refused"):
        asyncio.run(scenario())


def test_the_workers_producer_tracks_what_it_is_given_to_send():
    async def scenario() -> None:
        app = faust.App("fw-transport-test", broker="fundwatch://127.0.0.1:1", store="memory://")
        producer = app.producer
        assert isinstance(producer, Producer)
        topic = app.topic("fw.test-changelog", value_serializer="raw")
        sent = topic.send_soon(key=b"k", value=b"v", partition=0)
        assert sent in producer.unacked.pending and not sent.done()

    asyncio.run(scenario())
