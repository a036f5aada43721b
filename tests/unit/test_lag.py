"""streams/lag.py: fundwatch_consumer_lag_messages per assigned partition, read from a consumer's
highwater and position, with the series of partitions no longer held removed."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from streams.lag import LagGauge

METRIC = "fundwatch_consumer_lag_messages"
T0 = TopicPartition("fundwatch.records", 0)
T1 = TopicPartition("fundwatch.records", 1)
T2 = TopicPartition("fundwatch.records", 2)
A0 = TopicPartition("fundwatch.alerts", 0)


class FakeReader:
    """A consumer's assignment as {partition: (highwater, position)}; either may be None."""

    def __init__(self, partitions: dict[TopicPartition, tuple[int | None, int | None]]) -> None:
        self.partitions = partitions

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.partitions[tp][0]

    async def position(self, tp: TopicPartition) -> int | None:
        await asyncio.sleep(0)
        return self.partitions[tp][1]


def group() -> str:
    return f"test-lag-{uuid.uuid4().hex[:12]}"  # each test its own series


def shown(group_id: str, tp: TopicPartition) -> float | None:
    return REGISTRY.get_sample_value(
        METRIC, {"group": group_id, "topic": tp.topic, "partition": str(tp.partition)}
    )


def update(gauge: LagGauge, reader: FakeReader) -> dict[tuple[str, int], int]:
    return asyncio.run(gauge.update(reader))


def test_lag_is_highwater_minus_position_per_partition():
    g = group()
    lags = update(LagGauge(g), FakeReader({T0: (100, 40), T1: (7, 7), A0: (12, 0)}))
    assert lags == {("fundwatch.records", 0): 60, ("fundwatch.records", 1): 0, ("fundwatch.alerts", 0): 12}
    assert shown(g, T0) == 60.0
    assert shown(g, T1) == 0.0
    assert shown(g, A0) == 12.0


def test_lag_is_never_negative():
    g = group()
    # a position past the highwater: the highwater was read before the latest fetch
    assert update(LagGauge(g), FakeReader({T0: (10, 13)})) == {("fundwatch.records", 0): 0}
    assert shown(g, T0) == 0.0


def test_a_partition_without_a_highwater_or_position_has_no_figure():
    g = group()
    reader = FakeReader({T0: (None, 5), T1: (50, None), T2: (-1, 0), A0: (9, 4)})
    assert update(LagGauge(g), reader) == {("fundwatch.alerts", 0): 5}
    assert shown(g, T0) is None
    assert shown(g, T1) is None
    assert shown(g, T2) is None
    assert shown(g, A0) == 5.0


def test_the_figures_follow_the_consumer_from_round_to_round():
    g = group()
    gauge = LagGauge(g)
    update(gauge, FakeReader({T0: (100, 40)}))
    assert shown(g, T0) == 60.0
    update(gauge, FakeReader({T0: (120, 115)}))
    assert shown(g, T0) == 5.0


def test_a_partition_no_longer_assigned_loses_its_series():
    g = group()
    gauge = LagGauge(g)
    update(gauge, FakeReader({T0: (100, 40), T1: (30, 10), A0: (5, 5)}))
    assert shown(g, T1) == 20.0
    lags = update(gauge, FakeReader({T0: (100, 90)}))  # T1 and A0 went to another process
    assert lags == {("fundwatch.records", 0): 10}
    assert shown(g, T0) == 10.0
    assert shown(g, T1) is None
    assert shown(g, A0) is None
    # and it comes back when the partition does
    update(gauge, FakeReader({T0: (100, 90), T1: (31, 31)}))
    assert shown(g, T1) == 0.0


def test_a_partition_that_loses_its_highwater_drops_its_stale_figure():
    g = group()
    gauge = LagGauge(g)
    update(gauge, FakeReader({T0: (100, 40)}))
    update(gauge, FakeReader({T0: (None, 40)}))  # being reset during a rebalance
    assert shown(g, T0) is None


def test_an_empty_assignment_clears_every_series_of_the_group():
    g = group()
    gauge = LagGauge(g)
    update(gauge, FakeReader({T0: (3, 1), T1: (4, 1)}))
    assert update(gauge, FakeReader({})) == {}
    assert shown(g, T0) is None and shown(g, T1) is None


def test_groups_keep_their_own_series():
    worker, dispatcher = group(), group()
    first, second = LagGauge(worker), LagGauge(dispatcher)
    update(first, FakeReader({T0: (10, 2)}))
    update(second, FakeReader({T0: (10, 7)}))
    update(first, FakeReader({}))
    assert shown(worker, T0) is None
    assert shown(dispatcher, T0) == 3.0


class FakeFaustConsumer:
    """What StallGuard reads of Faust's consumer: committed offsets, positions, messages in flight
    (taken and unacknowledged, or acknowledged and not committed), the flow, and the seek."""

    def __init__(self, committed: dict, positions: dict) -> None:
        self._committed_offset = dict(committed)
        self.positions = dict(positions)
        self._unacked_messages: set = set()
        self._acked: dict = {}
        self.seeks = 0
        self.partition_seeks: list = []
        self.flow_active = True
        self.app = type(
            "App", (), {"flow_control": type("Flow", (), {"is_active": lambda _: self.flow_active})()}
        )()

    def assignment(self) -> set:
        return set(self.positions)

    async def position(self, tp):
        return self.positions[tp]

    async def seek(self, tp, offset: int) -> None:
        self.partition_seeks.append((tp, offset))
        self.positions[tp] = offset

    async def perform_seek(self) -> None:
        self.seeks += 1
        self.positions = {tp: self._committed_offset.get(tp, p) for tp, p in self.positions.items()}


def _check(guard, consumer, at: float) -> bool:
    return asyncio.run(guard.check(consumer, at))


def test_fetched_messages_nobody_took_are_reported_after_the_stall_time_and_fetched_again():
    from streams.lag import StallGuard

    consumer = FakeFaustConsumer({T0: 40, T1: 12}, {T0: 55, T1: 12})
    guard = StallGuard("g", after_s=30)
    before = (
        REGISTRY.get_sample_value("fundwatch_consumer_stalls_total", {"group": "g", "topic": T0.topic}) or 0
    )
    assert _check(guard, consumer, 0.0) == [] and _check(guard, consumer, 29.0) == []
    assert consumer.partition_seeks == []
    assert _check(guard, consumer, 30.0) == [T0]
    # the message at the committed offset is in no agent's hands: fetched again from there
    assert consumer.partition_seeks == [(T0, 40)]
    after = REGISTRY.get_sample_value("fundwatch_consumer_stalls_total", {"group": "g", "topic": T0.topic})
    assert after == before + 1
    assert _check(guard, consumer, 60.0) == []  # position back at the commit: nothing stalled
    consumer.positions[T0] = 55  # fetched again, and again not handed on
    assert _check(guard, consumer, 61.0) == [] and _check(guard, consumer, 90.0) == []
    assert _check(guard, consumer, 91.0) == [T0] and consumer.partition_seeks[-1] == (T0, 40)
    consumer._committed_offset[T0] = 55  # it moved on
    assert _check(guard, consumer, 130.0) == []


class _Taken:
    def __init__(self, tp, offset: int) -> None:
        self.tp, self.offset = tp, offset


def test_a_message_taken_and_never_acknowledged_is_a_stall():
    from streams.lag import StallGuard

    consumer = FakeFaustConsumer({T0: 30}, {T0: 35})
    consumer._unacked_messages.add(_Taken(T0, 30))
    consumer._acked[T0] = [31, 32, 33, 34]  # done after it: the commit waits on 30
    guard = StallGuard("g", after_s=30)
    assert _check(guard, consumer, 0.0) == [] and _check(guard, consumer, 20.0) == []
    assert _check(guard, consumer, 31.0) == [T0]
    # an agent still holds it (a slow insert, say): reported, not fetched again behind it
    assert consumer.partition_seeks == []
    assert _check(guard, consumer, 90.0) == []  # once per stall


def test_no_stall_while_takes_move_commits_move_or_the_flow_is_stopped():
    from streams.lag import StallGuard

    consumer = FakeFaustConsumer({T0: 40}, {T0: 55})
    guard = StallGuard("g", after_s=30)
    for at, offset in ((0.0, 40), (20.0, 41), (40.0, 42), (60.0, 43)):
        consumer._unacked_messages = {_Taken(T0, offset)}  # a slow agent, still taking
        assert _check(guard, consumer, at) == []
    consumer._unacked_messages = set()
    consumer._committed_offset[T0] = 45  # the commit moved: the clock starts again
    assert _check(guard, consumer, 61.0) == [] and _check(guard, consumer, 80.0) == []
    consumer.flow_active = False  # a rebalance under way
    assert _check(guard, consumer, 200.0) == []
