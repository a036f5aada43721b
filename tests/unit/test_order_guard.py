"""streams/order_guard.py: an agent processes each partition's messages in offset order; one
handed on past a message never handed on is held back and the partition fetched again from the
missing one."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from streams import order_guard
from streams.order_guard import OrderGuard

P0 = TP("fw.records", 0)
P1 = TP("fw.records", 1)


def events(tp: TP, *offsets: int) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(message=SimpleNamespace(tp=tp, offset=o), value=f"{tp.partition}:{o}".encode())
        for o in offsets
    ]


def offsets(admitted: list[SimpleNamespace]) -> list[tuple[int, int]]:
    return [(e.message.tp.partition, e.message.offset) for e in admitted]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_messages_in_order_from_the_committed_offset_are_all_taken():
    guard = OrderGuard("records", {P0: 18}.get)
    admitted, refetch = guard.admit(events(P0, 18, 19, 20))
    assert offsets(admitted) == [(0, 18), (0, 19), (0, 20)] and refetch == {}
    admitted, refetch = guard.admit(events(P0, 21))
    assert offsets(admitted) == [(0, 21)] and refetch == {}


def test_messages_past_one_never_handed_on_wait_for_it_and_come_again_in_order():
    """What a worker restarted after a kill -9 was seen to do: the message at the committed offset
    dropped at a rebalance, the ones after it handed on."""
    guard = OrderGuard("records", {P0: 18, P1: 5}.get)
    admitted, refetch = guard.admit(events(P0, 19, 20) + events(P1, 5, 6))
    assert offsets(admitted) == [(1, 5), (1, 6)]  # the other partition goes on
    assert refetch == {P0: 18}
    admitted, refetch = guard.admit(events(P0, 21, 22))  # fetched before the seek took effect
    assert admitted == [] and refetch == {}  # held back too, and asked for once
    admitted, refetch = guard.admit(events(P0, 18, 19, 20, 21, 22, 23))
    assert offsets(admitted) == [(0, o) for o in range(18, 24)] and refetch == {}


def test_a_hole_after_messages_taken_is_fetched_again_from_it():
    guard = OrderGuard("institutions", {P0: 0}.get)
    guard.admit(events(P0, 0, 1, 2))
    admitted, refetch = guard.admit(events(P0, 4, 5))
    assert admitted == [] and refetch == {P0: 3}
    admitted, _ = guard.admit(events(P0, 3, 4, 5))
    assert offsets(admitted) == [(0, 3), (0, 4), (0, 5)]


def test_messages_fetched_again_before_the_expected_offset_are_taken():
    """A stalled partition fetched again from its committed offset: the messages done already
    come again and are processed (the worker recognises them by their ids)."""
    guard = OrderGuard("records", {P0: 10}.get)
    guard.admit(events(P0, 10, 11, 12, 13))
    admitted, refetch = guard.admit(events(P0, 10, 11, 12, 13, 14))
    assert offsets(admitted) == [(0, o) for o in range(10, 15)] and refetch == {}


def test_a_partition_back_from_another_worker_starts_at_its_committed_offset():
    committed = {P0: 3}
    guard = OrderGuard("records", committed.get)
    guard.admit(events(P0, 3, 4))
    committed[P0] = 60  # another worker had it meanwhile and committed up to here
    admitted, refetch = guard.admit(events(P0, 60, 61))
    assert offsets(admitted) == [(0, 60), (0, 61)] and refetch == {}


def test_without_a_committed_offset_the_first_message_sets_the_order():
    guard = OrderGuard("records", {}.get)
    admitted, refetch = guard.admit(events(P0, 7, 8))
    assert offsets(admitted) == [(0, 7), (0, 8)] and refetch == {}
    admitted, refetch = guard.admit(events(P0, 10))
    assert admitted == [] and refetch == {P0: 9}


def test_a_missing_message_that_never_comes_is_given_up_on_after_a_while():
    clock = Clock()
    guard = OrderGuard("records", {P0: 18}.get, clock=clock)
    assert guard.admit(events(P0, 25)) == ([], {P0: 18})
    clock.now += order_guard.HOLE_WAIT_S - 1
    assert guard.admit(events(P0, 26)) == ([], {})
    clock.now += 2
    admitted, refetch = guard.admit(events(P0, 27, 28))
    assert offsets(admitted) == [(0, 27), (0, 28)] and refetch == {}
