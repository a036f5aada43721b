"""Consumer lag per partition, for the worker's Faust consumer and the dispatcher's own: how many
messages sit on each assigned partition beyond what this process has read. An operator tells a
worker that falls behind (month-end peaks) from one that is merely busy by this figure growing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import mode

from streams.metrics import CONSUMER_LAG

log = logging.getLogger("fundwatch.lag")

LAG_INTERVAL_S = 5.0
POSITION_TIMEOUT_S = 2.0


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
            except Exception as error:  # a rebalance under way: the next round has the figure
                log.debug("consumer lag not read error=%s", error)
