"""Faust's Kafka transport with a short fetch wait, no acknowledgement of a message the stream
skipped at a rebalance, and no commit over messages it never handed on.

A consumer's fetch asks the broker to hold the request until data arrives or a maximum wait
passes. Kafka answers as soon as data arrives; Tansu, the embedded broker, was seen to hold
the request for much of the wait even when data arrived meanwhile (produce-to-consume p50 of
378 ms with Faust's fixed 1.5 s wait, 130 ms with 500 ms, 3 ms with 10 ms). That wait was most
of an alert's latency, so FundWatch's consumers ask for a short one. Against Kafka the cost is
an idle consumer's extra fetch requests, a few dozen a second.

Skipped messages. Faust's stream drops a message fetched before a rebalance (of an older
consumer generation, or while the flow is suspended) without handing it to the agent, and then
acknowledges it, so the next commit counts it done: a worker restarted after a kill -9 was seen
to fetch its whole backlog, have the group rebalance as the dead member expired, and stand still
with half the backlog never processed and the consumer lag at 0. A stream only takes
(``tracked``) the messages it hands on, so an acknowledgement of one it did not take is refused
here: the gap holds the committed offset back (``_new_offset`` makes sure of that for a gap of
one message too), and the seek to the committed offsets that ends
the rebalance fetches the message again, under the new generation. Processing it then is safe
(the worker recognises a message it has folded by its id), losing it is not.

Jumps in the offsets handed on. Faust takes such a jump for a hole in the log (a compacted topic,
transaction markers) and commits over it. FundWatch's acked topics are neither compacted nor
written in transactions, so their offsets have no holes: a jump means fetched messages were not
handed on. A worker restarted after a kill -9 showed it at the end of recovery, where the stream
partitions are resumed before the seek to the committed offsets: the fetch from before the seek
was still being delivered as the seek reset the read offsets, the two interleaved, and messages
of both went missing, which the recorded "hole" then committed over. Nothing is recorded here:
the commit waits at the first missing message, and ``streams.lag.StallGuard`` fetches it again.

Changelog writes acknowledged before a commit. The states a take made go to their tables'
changelogs as a commit starts (streams/app.py, CommitHook), through Faust's producer buffer; Faust
then flushes the producer and commits the offsets. Its buffer's flush gives up once 0.1 s passes
without a message sent, and a message taken off the buffer but not yet handed to the Kafka client
is in neither; on a loaded machine a commit could go ahead with states still unsent, and a worker
killed then came back with states older than its committed offsets (the kill -9 test saw an
institution's figures short of 35 repayments, and records applied a second time as late). The
producer here keeps every message given to ``send_soon`` until the broker has acknowledged it,
and its flush returns only when none is left. The states themselves now go to the Kafka client
in record batches (streams/batches.py), tracked here (``unacked``) the same way.

Registered as the ``fundwatch://`` broker scheme (entry point ``faust.transports``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers import aiokafka as driver
from prometheus_client import Counter

FETCH_MAX_WAIT_MS = 25

SKIPPED_UNACKNOWLEDGED = Counter(
    "fundwatch_messages_skipped_at_rebalance_total",
    "Messages Faust's stream skipped at a rebalance, left unacknowledged to be fetched again",
    ["topic"],
)


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it makes its fetcher; Faust passes a fixed 1500
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Any) -> bool:
        if not message.tracked and self.app.topics.acks_enabled_for(message.topic):
            # skipped by the stream, never processed: see the module docstring
            SKIPPED_UNACKNOWLEDGED.labels(message.topic).inc()
            return False
        return bool(super().ack(message))

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        return None  # no holes in these logs: see the module docstring

    def _new_offset(self, tp: Any) -> int | None:
        # Faust's own test of a gap at the head of the acknowledged offsets is off by one (it
        # compares with the committed offset as if it were the last one done, while it is the
        # next one to read), so one skipped message right after the last commit would be
        # committed over. Nothing goes past an offset that is neither acknowledged nor known
        # to be missing from the log (which, with _add_gap above, none is).
        committed = self._committed_offset[tp]
        acked = self._acked[tp]
        if (
            committed is not None
            and acked
            and min(acked) > committed
            and not self._gap[tp].overlaps(committed)
        ):
            return None
        result = super()._new_offset(tp)
        return None if result is None else int(result)


class UnackedSends:
    """The messages handed to the producer that the broker has not acknowledged yet."""

    def __init__(self) -> None:
        self.pending: set[asyncio.Future[Any]] = set()

    def track(self, sent: asyncio.Future[Any]) -> None:
        self.pending.add(sent)
        sent.add_done_callback(self.pending.discard)

    async def acknowledged(self) -> None:
        """Return once every message tracked so far (and any tracked meanwhile) is acknowledged;
        raise the error of one that failed, so that no commit goes past it."""
        while self.pending:
            done, _ = await asyncio.wait(list(self.pending))
            for sent in done:
                error = None if sent.cancelled() else sent.exception()
                if error is not None:
                    raise error


class Producer(driver.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unacked = UnackedSends()

    def send_soon(self, fut: Any) -> None:
        self.unacked.track(fut)
        super().send_soon(fut)

    async def flush(self) -> None:
        await super().flush()
        await self.unacked.acknowledged()  # what Faust's buffer flush may leave behind


class Transport(driver.Transport):
    Consumer = Consumer
    Producer = Producer
