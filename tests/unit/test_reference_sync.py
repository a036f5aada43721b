"""streams/reference.py ReferenceFollower.seen_since without a broker: a fake consumer answers the
look at the topic ends, and the test plays the follow loop by advancing the applied offsets."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from streams.reference import ReferenceFollower, ReferenceView

ACCOUNTS = TopicPartition("fundwatch.ref.accounts", 0)
INSTITUTIONS = TopicPartition("fundwatch.ref.institutions", 0)
PRODUCTS = TopicPartition("fundwatch.ref.products", 0)


class FakeEnds:
    """end_offsets as aiokafka answers it, counting the looks and when each began."""

    def __init__(self, ends: dict[TopicPartition, int], delay_s: float = 0.0, error: Exception | None = None):
        self.ends = ends
        self.delay_s = delay_s
        self.error = error
        self.looks: list[float] = []

    async def end_offsets(self, partitions):
        self.looks.append(time.time())
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return {tp: self.ends[tp] for tp in partitions}


def follower(fake: FakeEnds | None, applied: dict[TopicPartition, int] | None = None) -> ReferenceFollower:
    """Made inside the running loop, as a worker makes it."""
    made = ReferenceFollower("unused:9092", ReferenceView())
    made._consumer = fake  # type: ignore[assignment]
    made._partitions_followed = list(fake.ends) if fake is not None else []
    made._applied = dict(applied or {})
    return made


def apply(made: ReferenceFollower, tp: TopicPartition, next_offset: int) -> None:
    """What the follow loop does after a batch: the next offset to apply, then progress."""
    made._applied[tp] = next_offset
    made._progress.set()


async def apply_later(made: ReferenceFollower, steps: list[tuple[float, TopicPartition, int]]) -> None:
    for delay, tp, next_offset in steps:
        await asyncio.sleep(delay)
        apply(made, tp, next_offset)


def test_true_at_once_when_already_synced_past_the_time_asked():
    async def main():
        fake = FakeEnds({ACCOUNTS: 10})
        made = follower(fake)
        made.synced_at = 1_000.0
        results = [await made.seen_since(999.0), await made.seen_since(1_000.0)]
        return results, fake.looks, made.synced_at

    results, looks, synced_at = asyncio.run(main())
    assert results == [True, True]
    assert looks == []  # no look at the topic ends
    assert synced_at == 1_000.0


def test_already_applied_ends_need_one_look_and_no_wait():
    async def main():
        fake = FakeEnds({ACCOUNTS: 10, INSTITUTIONS: 3})
        made = follower(fake, {ACCOUNTS: 10, INSTITUTIONS: 3})
        before = time.time()
        clock = time.monotonic()
        result = await made.seen_since(before, timeout_s=2.0)
        return result, time.monotonic() - clock, before, made.synced_at, fake.looks

    result, elapsed, before, synced_at, looks = asyncio.run(main())
    assert result is True
    assert elapsed < 0.5
    assert len(looks) == 1
    assert before <= synced_at <= looks[0]


def test_an_empty_partition_counts_as_reached():
    async def main():
        fake = FakeEnds({ACCOUNTS: 4, PRODUCTS: 0})
        made = follower(fake, {ACCOUNTS: 4})  # nothing ever applied on the empty one
        return await made.seen_since(time.time(), timeout_s=0.5)

    assert asyncio.run(main()) is True


def test_waits_until_every_partition_reaches_its_end_then_dates_the_sync_from_the_look():
    async def main():
        fake = FakeEnds({ACCOUNTS: 10, INSTITUTIONS: 5})
        made = follower(fake, {ACCOUNTS: 7, INSTITUTIONS: 5})
        asked = time.time()
        waiting = asyncio.create_task(made.seen_since(asked, timeout_s=2.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        apply(made, ACCOUNTS, 9)  # progress, but not yet the end
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert made.synced_at == 0.0
        applied_at = time.time()
        apply(made, ACCOUNTS, 10)
        result = await asyncio.wait_for(waiting, 1.0)
        return result, asked, applied_at, made.synced_at, fake.looks

    result, asked, applied_at, synced_at, looks = asyncio.run(main())
    assert result is True
    assert len(looks) == 1
    # the time the look began, not the time the data arrived: only what was published before
    # the look is known to be applied
    assert asked <= synced_at <= looks[0] < applied_at


def test_false_after_the_timeout_when_the_data_never_arrives():
    async def main():
        fake = FakeEnds({ACCOUNTS: 10})
        made = follower(fake, {ACCOUNTS: 2})
        later = asyncio.create_task(apply_later(made, [(0.05, ACCOUNTS, 5), (0.05, ACCOUNTS, 9)]))
        clock = time.monotonic()
        result = await made.seen_since(time.time(), timeout_s=0.3)
        elapsed = time.monotonic() - clock
        await later
        return result, elapsed, made.synced_at

    result, elapsed, synced_at = asyncio.run(main())
    assert result is False
    assert 0.3 <= elapsed < 1.5
    assert synced_at == 0.0  # nothing is claimed


def test_concurrent_callers_share_one_look_at_the_ends():
    async def main():
        fake = FakeEnds({ACCOUNTS: 10, INSTITUTIONS: 4}, delay_s=0.05)
        made = follower(fake, {ACCOUNTS: 0, INSTITUTIONS: 0})
        asked = time.time()  # every message was received before the first look began
        later = asyncio.create_task(apply_later(made, [(0.1, ACCOUNTS, 10), (0.05, INSTITUTIONS, 4)]))
        results = await asyncio.gather(*(made.seen_since(asked, timeout_s=2.0) for _ in range(5)))
        await later
        return results, fake.looks

    results, looks = asyncio.run(main())
    assert results == [True] * 5
    assert len(looks) == 1


def test_a_caller_asking_past_the_last_look_gets_a_look_of_its_own():
    async def main():
        fake = FakeEnds({ACCOUNTS: 3})
        made = follower(fake, {ACCOUNTS: 3})
        assert await made.seen_since(time.time(), timeout_s=0.5)
        first_synced = made.synced_at
        await asyncio.sleep(0.01)
        # something may have been published between that look and now: it cannot be taken as read
        assert await made.seen_since(time.time(), timeout_s=0.5)
        return first_synced, made.synced_at, fake.looks

    first_synced, synced_at, looks = asyncio.run(main())
    assert len(looks) == 2
    assert synced_at > first_synced


def test_false_when_the_ends_cannot_be_read():
    async def main():
        fake = FakeEnds({ACCOUNTS: 3}, error=KafkaConnectionError())
        made = follower(fake, {ACCOUNTS: 3})
        return await made.seen_since(time.time(), timeout_s=0.5), made.synced_at

    assert asyncio.run(main()) == (False, 0.0)


def test_false_before_the_follower_has_a_consumer():
    async def main():
        made = follower(None)
        return await made.seen_since(time.time(), timeout_s=0.5)

    assert asyncio.run(main()) is False
