"""A take's records for the institution agent (streams/forwards.py): one message per partition
per take, each part named by the records message it came from, and the institution agent
skipping and marking parts by that name (streams/institutions.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import msgspec

from models.institution_detection import institution_records
from schemas.messages import (
    InstitutionMessage,
    InstitutionPart,
    decode_institution_message,
    encode_institution_message,
    partition_for,
)
from streams import forwards
from streams.forwards import take_forwards
from streams.institutions import InstitutionProcessor
from tests.unit.test_detectors_common import AM_CUSTODY, CUSTODY, INVESTOR, OWN, RESERVE, txn, world

PARTITIONS = 4


def _message(
    msg_id: str, records: list, bank: str = "B002", received_at: int = 1_800_000_000
) -> SimpleNamespace:
    return SimpleNamespace(msg_id=msg_id, received_at=received_at, records=records, bank_code=bank)


def _take() -> list[SimpleNamespace]:
    return [
        _message("B002/b-1/0", [txn(CUSTODY, True, "100.00", "2026-11-25 10:00:00", rid="r1"),
                                txn(RESERVE, True, "7.00", "2026-11-25 10:00:01", rid="r2"),
                                txn(INVESTOR, False, "100.00", "2026-11-25 10:00:00", rid="r3")]),
        _message("B003/b-9/2", [txn(OWN, False, "50.00", "2026-11-25 10:01:00", rid="r4", bank="B003")],
                 bank="B003", received_at=1_800_000_005),
        _message("B002/b-2/0", [txn(INVESTOR, True, "1.00", "2026-11-25 10:02:00", rid="r5")]),
        _message("B002/b-3/1", [txn(AM_CUSTODY, True, "9.00", "2026-11-25 10:03:00", rid="r6"),
                                txn(CUSTODY, False, "3.00", "2026-11-25 10:03:01", rid="r7")]),
    ]  # fmt: skip


def test_a_take_goes_as_one_message_per_partition_with_each_part_named_by_its_records_message():
    ctx, take = world(), _take()
    sent, spread = take_forwards(ctx, take, PARTITIONS)
    # what one message per records message and partition carried before, in the same order
    expected: dict[int, list[tuple[str, str, list[str]]]] = {}
    for message in take:
        for institution_id, records in sorted(institution_records(ctx, message.records).items()):
            expected.setdefault(partition_for(institution_id, PARTITIONS), []).append(
                (f"{message.msg_id}/i", institution_id, [r.record_id for r in records])
            )
    assert [forward.partition for forward in sent] == sorted(expected)
    assert len(sent) < sum(len(parts) for parts in expected.values())  # fewer messages than parts
    for forward in sent:
        message = decode_institution_message(forward.value)
        got = [
            (part.msg_id, part.institution_id, [r.record_id for r in part.records]) for part in message.parts
        ]
        assert got == expected[forward.partition]
        assert message.msg_id == forward.msg_id == got[0][0]
        assert {r.bank_code for part in message.parts for r in part.records} <= {"B002", "B003"}
    # each records message's parts: the partitions its records went to (none for the investor's)
    assert spread == [
        len({partition_for(i, PARTITIONS) for i in institution_records(ctx, m.records)}) for m in take
    ]
    assert spread[2] == 0


def test_records_are_stamped_with_the_bank_that_pushed_them():
    ctx = world()
    message = _message(
        "B009/b-1/0", [txn(CUSTODY, True, "100.00", "2026-11-25 10:00:00", rid="r1")], bank="B009"
    )
    [forward], _ = take_forwards(ctx, [message], PARTITIONS)
    [part] = decode_institution_message(forward.value).parts
    assert [record.bank_code for record in part.records] == ["B009"]


def test_a_forward_over_the_size_limit_is_split_in_order(monkeypatch):
    ctx = world()
    take = [_message(f"B002/b-{n}/0", [txn(CUSTODY, True, "1.00", "2026-11-25 10:00:00", rid=f"r{n}")])
            for n in range(9)]  # fmt: skip
    [whole], _ = take_forwards(ctx, take, PARTITIONS)
    monkeypatch.setattr(forwards, "FORWARD_MAX_BYTES", len(whole.value) // 3)
    pieces, _ = take_forwards(ctx, take, PARTITIONS)
    assert len(pieces) > 1 and all(len(piece.value) <= len(whole.value) // 3 for piece in pieces)
    ids = [part.msg_id for piece in pieces for part in decode_institution_message(piece.value).parts]
    assert ids == [f"B002/b-{n}/0/i" for n in range(9)]
    assert all(piece.msg_id == decode_institution_message(piece.value).msg_id for piece in pieces)


def test_a_message_of_the_former_shape_still_decodes_with_its_own_id():
    old = msgspec.json.encode(["B002/b-1/0/i", 1_800_000_000, [["INS1", []]]])
    message = decode_institution_message(old)
    assert message.parts[0].msg_id == "" and message.msg_id == "B002/b-1/0/i"


class NoSnapshots:
    async def query(self, sql: str, params: dict) -> list:
        return []


class MarkingSink:
    def __init__(self) -> None:
        self.marks: list[tuple[str, str]] = []
        self.storage = NoSnapshots()

    def mark_done(self, msg_id: str, stage: str, parts: int = 0) -> None:
        self.marks.append((msg_id, stage))

    async def emit_alerts(self, changed) -> None:
        pass

    def remember(self, scope, key, state) -> None:
        pass


class HeldTable:
    def __init__(self) -> None:
        self.data: dict[bytes, object] = {}

    def get(self, key: bytes) -> object:
        return self.data.get(key)


def test_the_institution_agent_skips_and_marks_each_part_by_its_records_message():
    """A records message redelivered in another take (so in another forward) is recognised by its
    part's id; each records message's part is marked handled once per partition."""
    ctx, take = world(), _take()
    sink = MarkingSink()
    agent = InstitutionProcessor(sink, ctx, HeldTable(), PARTITIONS)
    first, _ = take_forwards(ctx, take, PARTITIONS)
    asyncio.run(agent.handle_many([forward.value for forward in first]))
    states = {key: agent.table.data[key] for key in agent.table.data}
    marked = sorted(sink.marks)
    assert marked == sorted(
        {
            (m.msg_id, f"i{partition_for(i, PARTITIONS)}")
            for m in take
            for i in institution_records(ctx, m.records)
        }
    )
    # two of the take's records messages again, taken with others this time
    again, _ = take_forwards(ctx, [take[3], take[0]], PARTITIONS)
    asyncio.run(agent.handle_many([forward.value for forward in again]))
    assert {key: agent.table.data[key] for key in agent.table.data} == states  # nothing applied twice


def test_an_old_shape_message_is_skipped_by_the_id_it_was_folded_under():
    """A part folded from a message of the former shape (one records message, its id on the
    message) is recognised when the same records come again in a take's forward."""
    ctx = world()
    records = [txn(CUSTODY, True, "100.00", "2026-11-25 10:00:00", rid="r1")]
    message = _message("B002/b-1/0", records)
    [(institution_id, part)] = institution_records(ctx, records).items()
    stamped = [msgspec.structs.replace(record, bank_code="B002") for record in part]
    old = InstitutionMessage(
        msg_id="B002/b-1/0/i",
        received_at=0,
        parts=[InstitutionPart(institution_id=institution_id, records=stamped)],
    )
    agent = InstitutionProcessor(MarkingSink(), ctx, HeldTable(), PARTITIONS)
    asyncio.run(agent.handle_many([encode_institution_message(old)]))
    state = agent.table.data[institution_id.encode()]
    [forward], _ = take_forwards(ctx, [message], PARTITIONS)
    asyncio.run(agent.handle_many([forward.value]))
    assert agent.table.data[institution_id.encode()] is state
