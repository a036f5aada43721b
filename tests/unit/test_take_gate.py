"""A take's states reach the changelog only once its alerts are out (streams/take_gate.py): a
commit that starts in between waits for them, through the producer's flush."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.serializers import codecs

from models.detectors.frozen import plain
from streams.app import CommitHook
from streams.institutions import InstitutionProcessor
from streams.records import RecordsProcessor
from streams.take_gate import TakeGate
from streams.transport import UnackedSends
from tests.unit.test_detectors_common import CUSTODY, txn, world
from tests.unit.test_state_changelog import FakeSink, FakeTable


def _consumer(unacked: UnackedSends) -> SimpleNamespace:
    return SimpleNamespace(app=SimpleNamespace(producer=SimpleNamespace(unacked=unacked)))


def test_between_takes_a_commit_writes_the_states_at_once():
    written: list[int] = []
    gate = TakeGate(lambda: written.append(1) or len(written))
    assert gate.write_or_defer() == 1
    gate.begin()
    gate.end()
    assert gate.write_or_defer() == 2


def test_a_commit_during_a_take_writes_its_states_when_the_alerts_are_out():
    async def scenario() -> list[str]:
        steps: list[str] = []
        gate = TakeGate(lambda: steps.append("states written") or 3)
        gate.begin()
        deferred = gate.write_or_defer()
        assert isinstance(deferred, asyncio.Future) and not deferred.done()
        assert gate.write_or_defer() is deferred  # a second commit waits for the same write
        steps.append("alerts out")
        gate.end()
        assert await deferred == 3
        return steps

    assert asyncio.run(scenario()) == ["alerts out", "states written"]


def test_a_take_that_fails_fails_the_commit_waiting_for_it():
    async def scenario() -> None:
        written: list[int] = []
        gate = TakeGate(lambda: written.append(1) or 1)
        gate.begin()
        deferred = gate.write_or_defer()
        gate.end(RuntimeError("clickhouse gone"))
        with pytest.raises(RuntimeError, match="clickhouse gone"):
            await deferred
        assert written == []  # the failed take's states are not written

    asyncio.run(scenario())


def test_the_commit_hook_holds_the_flush_until_a_takes_alerts_are_out():
    """The account take under way keeps its states from the changelog; the institution agent,
    between takes, writes its own at once. The flush the commit awaits before its offsets
    returns only after the account states went out."""

    async def scenario() -> None:
        accounts, institutions_table = FakeTable(), FakeTable()
        processor = RecordsProcessor(None, None, None, accounts, None, partitions=8)
        institutions = InstitutionProcessor(FakeSink(), None, institutions_table, partitions=8)
        unacked = UnackedSends()

        processor.gate.begin()  # a take has changed its state; its alerts are on their way
        processor._keep_state("ACC-1", {"n": 1})
        institutions._keep_state("INS-1", {"products": {}})
        assert CommitHook(processor, institutions).on_commit_initiated(_consumer(unacked)) == 1
        assert [key for _, key, _, _ in institutions_table.sent] == [b"INS-1"]
        assert accounts.sent == []

        flushing = asyncio.ensure_future(unacked.acknowledged())
        await asyncio.sleep(0.05)
        assert not flushing.done() and accounts.sent == []
        processor._keep_state("ACC-2", {"n": 2})  # the same take, later in it
        processor.gate.end()  # alerts out: the states written now, the flush free to end
        await asyncio.wait_for(flushing, 1.0)
        assert [(key, codecs.loads("json", value)) for _, key, value, _ in accounts.sent] == [
            (b"ACC-1", {"n": 1}),
            (b"ACC-2", {"n": 2}),
        ]

    asyncio.run(scenario())


class ChangelogTable(FakeTable):
    def get(self, key):
        return self.data.get(key)


class EmittingSink:
    """Holds a take's alerts on their way out until the test lets them go."""

    def __init__(self) -> None:
        self.emitting = asyncio.Event()
        self.release = asyncio.Event()
        self.emitted: list[tuple[str, object]] = []

    async def emit_alerts(self, changed) -> None:
        self.emitting.set()
        await self.release.wait()
        self.emitted.extend(changed)

    def remember(self, scope, key, state) -> None:
        pass

    def mark_done(self, msg_id, stage, parts=0) -> None:
        pass


def test_the_records_agent_writes_a_takes_states_only_after_its_alerts():
    """The wiring in streams/records.py: a commit that starts while a take's large-value alert is
    on its way out finds the account's new state kept from the changelog until the alert is out."""

    async def scenario() -> None:
        ctx = world()
        table, sink, unacked = ChangelogTable(), EmittingSink(), UnackedSends()
        processor = RecordsProcessor(sink, ctx, ctx.references, table, None, partitions=4)

        async def forward(*args) -> int:
            return 0

        processor._forward = forward
        records = [txn(CUSTODY, True, "2600000.00", "2026-11-25 10:00:00", rid="big-1")]
        message = SimpleNamespace(msg_id="B002/b-1/0", received_at=0, records=records, bank_code="B002")
        take = asyncio.ensure_future(processor._detect([message], [(message, {CUSTODY: records})]))
        await asyncio.wait_for(sink.emitting.wait(), 5.0)
        institutions = InstitutionProcessor(FakeSink(), None, FakeTable(), partitions=4)
        assert CommitHook(processor, institutions).on_commit_initiated(_consumer(unacked)) == 0
        flushing = asyncio.ensure_future(unacked.acknowledged())
        await asyncio.sleep(0.05)
        assert table.sent == [] and not flushing.done()  # the alert is not out: nor is the state
        sink.release.set()
        await asyncio.wait_for(take, 5.0)
        await asyncio.wait_for(flushing, 1.0)
        assert [alert.typology for _, alert in sink.emitted] == ["large_value"]
        [(_, key, value, _)] = table.sent
        assert key == CUSTODY.encode() and codecs.loads("json", value) == plain(table.data[key])

    asyncio.run(scenario())


def test_a_take_failing_inside_the_gate_fails_the_commit_and_reraises():
    async def scenario() -> None:
        gate = TakeGate(lambda: 1)
        with pytest.raises(RuntimeError, match="broker gone"), gate:
            deferred = gate.write_or_defer()
            raise RuntimeError("broker gone")
        with pytest.raises(RuntimeError, match="broker gone"):
            await deferred
        assert gate.write_or_defer() == 1  # the gate is open again for the next commit

    asyncio.run(scenario())
