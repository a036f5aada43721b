"""Consumer lag per partition, for the worker's Faust consumer and the dispatcher's own: how many
messages sit on each assigned partition beyond what this process has read. An operator tells a
worker that falls behind (month-end peaks) from one that is merely busy by this figure growing.

The same round watches the worker's consumer for a stall the lag cannot show: messages fetched
(the position past them, lag 0) that no agent finished, so the committed offset stands still
below the position. A worker restarted after a kill -9 was seen to end its recovery like that,
with messages fetched and never handed to the agents (streams/transport.py); StallGuard reports
it and fetches the partition again from the committed offset."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import mode

from streams.metrics import CONSUMER_LAG, CONSUMER_STALLS

log = logging.getLogger("fundwatch.lag")

LAG_INTERVAL_S = 5.0
POSITION_TIMEOUT_S = 2.0
STALL_AFTER_S = 15.0  # committed offsets standing still this long, with nothing in flight


class PartitionReader(Protocol):
    """What both aiokafka's consumer and Faust's consumer offer for this."""

    def assignment(self) -> Iterable[Any]: ...

    def highwater(self, tp: Any) -> int | None: ...

    async def position(self, tp: Any) -> int | None: ...


class LagGauge:
    """Sets ``fundwatch_consumer_lag_messages`` for one consumer group's assigned partitions and
    drops the series of partitions that went to another process, so a sum over processes counts
    each partition once."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._shown: set[tuple[str, int]] = set()

    async def update(self, consumer: PartitionReader) -> dict[tuple[str, int], int]:
        lags: dict[tuple[str, int], int] = {}
        for tp in list(consumer.assignment()):
            high = consumer.highwater(tp)
            # bounded: during a rebalance the position of a partition being reset can wait long
            position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_S)
            if high is None or position is None or high < 0:
                continue  # nothing fetched yet on this partition: no figure rather than a wrong one
            lags[(tp.topic, tp.partition)] = max(0, high - position)
        for topic, partition in self._shown - set(lags):
            CONSUMER_LAG.remove(self.group, topic, str(partition))
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(self.group, topic, str(partition)).set(lag)
        self._shown = set(lags)
        return lags


class StallGuard:
    """Finds a Faust consumer whose committed offset on a partition stood still below its position
    for ``after_s`` while the flow was active and the messages taken but not acknowledged stayed
    the same ones: the commit waits for ever on a message no agent will finish. Logged once per
    stall and counted (``fundwatch_consumer_stalls_total``).

    When the message at the committed offset is not in flight, it was fetched and never handed
    on (the recovery race in streams/transport.py): the partition is fetched again from the
    committed offset, and the messages after it, done already, come again too, which the worker
    recognises by their ids. A message in flight is left alone: an agent still holds it (a slow
    ClickHouse), and fetching again would only queue copies behind it."""

    def __init__(self, group: str, after_s: float = STALL_AFTER_S) -> None:
        self.group = group
        self.after_s = after_s
        # tp -> (committed offset, the messages in flight then, first seen at, reported)
        self._since: dict[Any, tuple[int, frozenset, float, bool]] = {}

    async def check(self, consumer: Any, now: float) -> list[Any]:
        """The partitions newly seen stalled."""
        if not consumer.app.flow_control.is_active():
            self._since.clear()
            return []
        in_flight = frozenset((m.tp, m.offset) for m in list(consumer._unacked_messages))
        stalled = []
        for tp in list(consumer.assignment()):
            committed = consumer._committed_offset.get(tp)
            position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_S)
            if committed is None or position is None or position <= committed:
                self._since.pop(tp, None)
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != committed or seen[1] != in_flight:
                self._since[tp] = (committed, in_flight, now, False)
            elif not seen[3] and now - seen[2] >= self.after_s:
                self._since[tp] = (*seen[:3], True)
                stalled.append(tp)
                log.warning(
                    "consumer stalled: committed offset standing still below the position with "
                    "nothing moving group=%s topic=%s partition=%d committed=%d position=%d "
                    "in_flight=%d stalled_s=%.0f",
                    self.group, tp.topic, tp.partition, committed, position, len(in_flight), now - seen[2],
                )  # fmt: skip
                CONSUMER_STALLS.labels(self.group, tp.topic).inc()
                if (tp, committed) not in in_flight:
                    await self._fetch_again(consumer, tp, committed)
                    # a fetch that failed again is a stall of its own, after after_s more
                    self._since[tp] = (committed, in_flight, now, False)
        return stalled

    async def _fetch_again(self, consumer: Any, tp: Any, committed: int) -> None:
        log.warning(
            "fetching a stalled partition again from its committed offset group=%s topic=%s "
            "partition=%d offset=%d", self.group, tp.topic, tp.partition, committed,
        )  # fmt: skip
        await consumer.seek(tp, committed)


class LagService(mode.Service):
    """Updates a LagGauge every few seconds from a consumer that may not exist yet."""

    def __init__(
        self,
        group: str,
        consumer: Callable[[], PartitionReader | None],
        interval_s: float = LAG_INTERVAL_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gauge = LagGauge(group)
        self.guard = StallGuard(group)
        self.consumer = consumer
        self.interval_s = interval_s

    @mode.Service.task
    async def _update(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval_s)
            reader = self.consumer()
            if reader is None:
                continue
            try:
                await self.gauge.update(reader)
                if hasattr(reader, "perform_seek"):  # Faust's consumer: the worker's agents
                    await self.guard.check(reader, asyncio.get_running_loop().time())
            except Exception as error:  # a rebalance under way: the next round has the figure
                log.debug("consumer lag not read error=%s", error)
