"""Alert updates of figures alone are held and written once (streams/figure_hold.py), never after
the states that made them (the commit hook releases them first)."""

from __future__ import annotations

import asyncio

import msgspec

from streams.app import CommitHook
from streams.figure_hold import HOLD_MAX_S, FigureHold
from streams.institutions import InstitutionProcessor
from streams.records import RecordsProcessor
from streams.sink import Sink
from streams.transport import UnackedSends
from tests.unit.test_alert_history import Storage, Topic, alert
from tests.unit.test_state_changelog import FakeSink, FakeTable
from tests.unit.test_take_gate import _consumer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _revisions(topic: Topic) -> list[tuple[int, str]]:
    events = [msgspec.json.decode(value)["data"] for value in topic.sent]
    return [(event["revision"], event["amount"]) for event in events]


def test_figure_ticks_are_held_and_the_newest_written_once():
    clock = Clock()
    hold = FigureHold(clock)
    created = ("created", alert(1, "2500000.00"))
    assert hold.to_write([created]) == [created]
    hold.written([created[1]])
    ticks = [("updated", alert(r, f"{2_500_000 + r * 10_000}.00")) for r in range(2, 6)]
    for tick in ticks:
        assert hold.to_write([tick]) == []
    assert not hold.due()
    clock.now += HOLD_MAX_S
    assert hold.due()
    assert hold.release() == [ticks[-1]]  # only the newest
    assert hold.release() == [] and not hold.due()


def test_a_change_a_desk_sees_goes_at_once_in_place_of_the_held_tick():
    hold = FigureHold(Clock())
    hold.written([alert(1, "2500000.00")])
    assert hold.to_write([("updated", alert(2, "2600000.00"))]) == []
    crossing = ("updated", alert(3, "5100000.00"))  # the amount's band changes
    assert hold.to_write([crossing]) == [crossing]
    assert hold.release() == []
    hold.written([crossing[1]])
    severer = ("updated", alert(4, "5200000.00", severity="medium"))
    assert hold.to_write([severer]) == [severer]


def test_an_alert_not_written_before_has_its_update_written():
    hold = FigureHold(Clock())
    update = ("updated", alert(7, "2500000.00"))
    assert hold.to_write([update]) == [update]  # after a restart nothing is known of it


def test_while_a_commit_writes_its_states_nothing_is_held_and_the_held_go_first():
    hold = FigureHold(Clock())
    hold.written([alert(1, "2500000.00")])
    older = ("updated", alert(2, "2600000.00"))
    assert hold.to_write([older]) == []
    hold.releasing += 1
    other = alert(3, "2700000.00")
    other.alert_id = "lv-2"
    newer = [("updated", other)]
    assert hold.to_write(newer) == [older, *newer]
    assert hold.to_write([("updated", alert(4, "2800000.00"))]) == [("updated", alert(4, "2800000.00"))]
    assert hold.held == {}


def test_a_held_tick_superseded_by_a_newer_revision_is_not_written():
    hold = FigureHold(Clock())
    hold.written([alert(1, "2500000.00")])
    hold.to_write([("updated", alert(2, "2600000.00"))])
    newest = ("updated", alert(3, "2700000.00"))
    assert hold.to_write([newest], hold=False) == [newest]


def test_the_marks_kept_are_bounded():
    hold = FigureHold(Clock(), marks_kept=2)
    for n in range(3):
        update = alert(1, "2500000.00")
        update.alert_id = f"lv-{n}"
        hold.written([update])
    first = alert(2, "2600000.00")
    first.alert_id = "lv-0"
    assert hold.to_write([("updated", first)]) == [("updated", first)]  # forgotten: written


def test_the_sink_writes_a_burst_of_ticks_as_one_revision():
    storage, topic = Storage(), Topic()
    sink = Sink(storage, topic)
    sink.hold = FigureHold(Clock())

    async def emit() -> None:
        await sink.emit_alerts([("created", alert(1, "2500000.00"))])
        for r in range(2, 30):  # one take each
            await sink.emit_alerts([("updated", alert(r, f"{2_500_000 + r * 10_000}.00"))])
        await sink.release_held()

    asyncio.run(emit())
    assert _revisions(topic) == [(1, "2500000.00"), (29, "2790000.00")]
    assert len(storage.rows["alerts"]) == 2


def test_the_commit_releases_the_held_updates_before_any_state_is_written():
    async def scenario() -> list[str]:
        steps: list[str] = []
        accounts = FakeTable()
        processor = RecordsProcessor(None, None, None, accounts, None, partitions=8)
        institutions = InstitutionProcessor(FakeSink(), None, FakeTable(), partitions=8)
        storage, topic = Storage(), Topic()
        sink = Sink(storage, topic)
        sink.hold = FigureHold(Clock())
        sent = topic.send

        async def send(key, value) -> None:
            await asyncio.sleep(0.01)  # the topic takes its time: the states must wait for it
            steps.append("alert out")
            await sent(key, value)

        topic.send = send
        await sink.emit_alerts([("created", alert(1, "2500000.00"))])
        await sink.emit_alerts([("updated", alert(2, "2600000.00"))])
        assert sink.hold.held and len(topic.sent) == 1
        processor._keep_state("ACC-1", {"n": 1})
        original = accounts.send_changelog

        def send_changelog(*args, **kwargs):
            steps.append("state written")
            return original(*args, **kwargs)

        accounts.send_changelog = send_changelog
        steps.clear()
        unacked = UnackedSends()
        assert CommitHook(processor, institutions, sink).on_commit_initiated(_consumer(unacked)) == 0
        assert sink.hold.releasing == 1 and accounts.sent == []
        await asyncio.wait_for(unacked.acknowledged(), 1.0)
        assert sink.hold.releasing == 0 and not sink.hold.held
        assert _revisions(topic)[-1] == (2, "2600000.00")
        return steps

    assert asyncio.run(scenario()) == ["alert out", "state written"]
