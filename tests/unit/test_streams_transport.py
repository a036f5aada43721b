"""streams/transport.py: a message the stream skipped is never acknowledged."""

from __future__ import annotations

import faust
from faust.types.tuples import ConsumerMessage

from streams.transport import SKIPPED_UNACKNOWLEDGED, Consumer


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


def test_an_offset_missing_from_the_log_does_not_hold_the_commit_back():
    consumer = _consumer_with_acking_topic("fw.records")
    taken = _message("fw.records", 8)
    taken.tracked = True
    consumer.ack(taken)
    consumer._committed_offset[taken.tp] = 7
    consumer._gap[taken.tp].addi(7, 8)  # what Faust records for an offset the log skips
    assert consumer._new_offset(taken.tp) == 9


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
