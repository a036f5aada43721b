"""Snapshots of account and institution states: the newest state of each key, written once it has
waited SNAPSHOT_INTERVAL_S, oldest first, in slices of a bounded size; everything on a flush."""

from __future__ import annotations

import asyncio

import msgspec

from streams import sink as sink_module
from streams.sink import SNAPSHOT_INTERVAL_S, SNAPSHOT_SLICE_BYTES, SNAPSHOT_SLICE_S, Sink


class FakeStorage:
    """Records the inserts a Sink makes."""

    def __init__(self) -> None:
        self.inserts: list[tuple[str, tuple[str, ...], list[list]]] = []

    async def insert(self, table, columns, rows) -> None:
        self.inserts.append((table, tuple(columns), [list(r) for r in rows]))

    def written(self) -> list[tuple[str, str, dict]]:
        return [
            (table.rsplit(".", 1)[1], row[0], msgspec.json.decode(row[1]))
            for table, _, rows in self.inserts
            for row in rows
            if table.endswith("_state")
        ]

    def marks(self) -> list[tuple[str, str, int]]:
        return [
            (row[0], row[1], row[2])
            for table, _, rows in self.inserts
            if table.endswith(".outbox_done")
            for row in rows
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[Sink, FakeStorage, Clock]:
    storage, clock = FakeStorage(), Clock()
    return Sink(storage, alerts_topic=None, clock=clock), storage, clock


def run(coro):
    return asyncio.run(coro)


def test_a_state_waits_the_interval_and_its_newest_version_is_written():
    sink, storage, clock = make()
    sink.remember("account", "A1", {"n": 1})
    clock.now += SNAPSHOT_INTERVAL_S / 2
    sink.remember("account", "A1", {"n": 2})
    run(sink.maybe_flush())
    assert storage.written() == []  # first changed only half an interval ago
    clock.now += SNAPSHOT_INTERVAL_S / 2
    run(sink.maybe_flush())
    assert storage.written() == [("account_state", "A1", {"n": 2})]
    clock.now += SNAPSHOT_INTERVAL_S
    run(sink.maybe_flush())
    assert len(storage.written()) == 1  # nothing changed since


def test_waiting_states_go_oldest_first_in_bounded_slices():
    sink, storage, clock = make()
    big = "x" * (SNAPSHOT_SLICE_BYTES // 3)
    for number in range(7):
        sink.remember("account", f"A{number}", {"pad": big})
        clock.now += 0.01
    sink.remember("institution", "I1", {"small": True})
    clock.now += SNAPSHOT_INTERVAL_S
    run(sink.maybe_flush())
    first = [key for _, key, _ in storage.written()]
    assert first == ["A0", "A1", "A2"]  # the slice stops once past its size
    run(sink.maybe_flush())
    assert len(storage.written()) == 3  # the next slice waits SNAPSHOT_SLICE_S
    clock.now += SNAPSHOT_SLICE_S
    run(sink.maybe_flush())
    clock.now += SNAPSHOT_SLICE_S
    run(sink.maybe_flush())
    assert [key for _, key, _ in storage.written()] == ["A0", "A1", "A2", "A3", "A4", "A5", "A6", "I1"]
    assert storage.written()[-1][0] == "institution_state"
    # a slice is at most one state past the budget
    sizes = [sum(len(row[1]) for row in rows) for _, _, rows in storage.inserts]
    assert max(sizes) < SNAPSHOT_SLICE_BYTES + len(big) + 100


def test_a_flush_writes_everything_changed_at_once():
    sink, storage, clock = make()
    sink.remember("account", "A1", {"n": 1})
    sink.remember("institution", "I1", {"n": 2})
    run(sink.flush_snapshots())
    assert sorted(storage.written()) == [
        ("account_state", "A1", {"n": 1}),
        ("institution_state", "I1", {"n": 2}),
    ]
    assert sink_module.metrics.SNAPSHOTS_PENDING._value.get() == 0
    run(sink.flush_snapshots())
    assert len(storage.written()) == 2


def test_the_state_held_is_the_size_of_each_last_snapshot():
    sink, storage, clock = make()
    held = sink_module.metrics.STATE_HELD_BYTES
    sink.remember("institution", "I1", {"n": 1})
    sink.remember("institution", "I2", {"n": 22})
    sink.remember("account", "A1", {"n": 4444})
    run(sink.flush_snapshots())
    assert held.labels("institution")._value.get() == len(b'{"n":1}') + len(b'{"n":22}')
    assert held.labels("account")._value.get() == len(b'{"n":4444}')
    sink.remember("institution", "I1", {"n": 333})  # replaces I1's size, does not add to it
    sink.remember("account", "A1", {})
    run(sink.flush_snapshots())
    assert held.labels("institution")._value.get() == len(b'{"n":333}') + len(b'{"n":22}')
    assert held.labels("account")._value.get() == len(b"{}")
    sink.forget_sizes()
    assert held.labels("institution")._value.get() == 0 and held.labels("account")._value.get() == 0


def test_a_message_is_marked_done_only_once_every_state_changed_before_it_is_written():
    """The outbox's done marks (what the gateway need not publish again after a restart) trail
    the snapshots: a mark goes out once no state changed before it is still waiting."""
    sink, storage, clock = make()
    sink.remember("account", "A1", {"n": 1})
    clock.now += 0.01
    sink.mark_done("B001/b-1/0", "records", 2)
    clock.now += 0.01
    sink.remember("institution", "I1", {"n": 1})
    clock.now += 0.01
    sink.mark_done("B001/b-1/0", "i3")
    clock.now += SNAPSHOT_SLICE_S
    run(sink.maybe_flush())
    assert storage.marks() == []  # A1 has not waited its interval yet
    clock.now = 1000.0 + SNAPSHOT_INTERVAL_S + 0.015  # A1 is due, I1 not yet
    run(sink.maybe_flush())
    assert [key for _, key, _ in storage.written()] == ["A1"]
    assert storage.marks() == [("B001/b-1/0", "records", 2)]
    clock.now += SNAPSHOT_INTERVAL_S
    run(sink.maybe_flush())
    assert storage.marks() == [("B001/b-1/0", "records", 2), ("B001/b-1/0", "i3", 0)]


def test_marks_with_nothing_waiting_go_out_on_the_next_slice_and_on_a_flush():
    sink, storage, clock = make()
    sink.mark_done("B001/b-1/0", "records", 0)
    clock.now += SNAPSHOT_SLICE_S
    run(sink.maybe_flush())
    assert storage.marks() == [("B001/b-1/0", "records", 0)]
    sink.remember("account", "A1", {"n": 1})
    sink.mark_done("B001/b-2/0", "records", 0)
    run(sink.flush_snapshots())
    assert storage.marks()[-1] == ("B001/b-2/0", "records", 0)
