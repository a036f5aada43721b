"""A take's rows go to ClickHouse after its alerts and while the next take runs (streams/records.py,
``_write_rows``): the next take's alerts do not wait for them, its rows do, a take is counted
processed and its messages marked done only once its rows are in, and a commit waits for rows
still on their way."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streams.records import RecordsProcessor
from tests.unit.test_detectors_common import CUSTODY, txn, world
from tests.unit.test_take_gate import ChangelogTable


class RowsSink:
    """Logs what reaches it; rows wait until the test lets them in (or fail with ``error``)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.rows_in = asyncio.Event()
        self.error: Exception | None = None

    async def emit_alerts(self, changed) -> None:
        self.log.append(f"alerts {len(changed)}")

    async def insert_blocks(self, blocks) -> None:
        [(_, columns)] = blocks
        self.log.append(f"rows {columns['take']}")
        await self.rows_in.wait()
        if self.error is not None:
            raise self.error
        self.log.append(f"rows {columns['take']} in")

    def remember(self, scope, key, state) -> None:
        pass

    def mark_done(self, msg_id, stage, parts=0) -> None:
        self.log.append(f"mark {msg_id}")


class Topic:
    async def send(self, key, value, partition) -> None:
        pass


class TakeRows:
    """What ``Columns`` gives ``_insert``: one table's columns, named by the take."""

    def __init__(self, take: int) -> None:
        self.tables = {"raw": SimpleNamespace(columns=lambda: {"take": take})}


def _take(processor: RecordsProcessor, take: int, amount: str) -> asyncio.Future[None]:
    records = [txn(CUSTODY, True, amount, f"2026-11-25 1{take}:00:00", rid=f"r-{take}")]
    message = SimpleNamespace(msg_id=f"B002/b-{take}/0", received_at=0, records=records, bank_code="B002")
    return asyncio.ensure_future(
        processor._detect([message], [(message, {CUSTODY: records})], TakeRows(take))
    )


def _processor(log: list[str]) -> tuple[RecordsProcessor, RowsSink, list[asyncio.Future[None]]]:
    ctx = world()
    sink = RowsSink(log)
    processor = RecordsProcessor(sink, ctx, ctx.references, ChangelogTable(), Topic(), partitions=4)
    tracked: list[asyncio.Future[None]] = []
    processor.track_pending = tracked.append
    return processor, sink, tracked


def test_the_next_takes_alerts_go_before_the_last_takes_rows_are_in():
    async def scenario() -> None:
        log: list[str] = []
        processor, sink, tracked = _processor(log)
        await asyncio.wait_for(_take(processor, 1, "2600000.00"), 1.0)  # done with its rows on their way
        [rows] = tracked
        assert not rows.done() and processor.messages_handled == 0
        second = _take(processor, 2, "2700000.00")
        await asyncio.sleep(0.05)
        # the second take's alerts are out; its rows wait for the first take's
        assert log == ["alerts 1", "rows 1", "alerts 1"] and not second.done()
        sink.rows_in.set()
        await asyncio.wait_for(second, 1.0)
        await asyncio.wait_for(tracked[1], 1.0)
        assert log[3:] == ["rows 1 in", "mark B002/b-1/0", "rows 2", "rows 2 in", "mark B002/b-2/0"]
        assert rows.done() and processor.messages_handled == 2

    asyncio.run(scenario())


def test_rows_that_fail_fail_the_commit_waiting_for_them_and_the_next_take():
    async def scenario() -> None:
        processor, sink, tracked = _processor([])
        await asyncio.wait_for(_take(processor, 1, "2600000.00"), 1.0)
        sink.error = RuntimeError("clickhouse gone")
        sink.rows_in.set()
        with pytest.raises(RuntimeError, match="clickhouse gone"):
            await tracked[0]  # what the commit's flush waits for, before any offset
        with pytest.raises(RuntimeError, match="clickhouse gone"):
            await asyncio.wait_for(_take(processor, 2, "2700000.00"), 1.0)
        assert processor.messages_handled == 0 and sink.log == [
            "alerts 1",
            "rows 1",
            "alerts 1",
        ]  # nothing marked

    asyncio.run(scenario())


def test_without_a_commit_to_wait_for_them_a_take_waits_for_its_own_rows():
    async def scenario() -> None:
        log: list[str] = []
        processor, sink, _ = _processor(log)
        processor.track_pending = None
        sink.rows_in.set()
        await asyncio.wait_for(_take(processor, 1, "2600000.00"), 1.0)
        assert log == ["alerts 1", "rows 1", "rows 1 in", "mark B002/b-1/0"]
        assert processor.messages_handled == 1

    asyncio.run(scenario())
