"""The records agent writes an account's state to the table's changelog as JSON bytes it encodes
itself; Faust's recovery reads them with the table's json codec, so both must agree."""

from __future__ import annotations

from faust.serializers import codecs

from schemas.messages import partition_for
from streams.institutions import InstitutionProcessor
from streams.records import RecordsProcessor

STATE = {
    "flows": {"inflow_cents": 12_345_678_901, "recent": ["B001/b-1/0"], "balance_cents": None},
    "detectors": {"large_value": {"wm": 1_764_000_000, "days": {"1763913600": {"transfer_in": {"c": 1}}}}},
    "alerts": {"a1": {"digest": "ab", "status": "open", "revision": 3}},
    "note": "客户资金",
}


class FakeTable:
    def __init__(self) -> None:
        self.data: dict = {}
        self.sent: list[tuple] = []

    def send_changelog(self, partition, key, value, key_serializer=None, value_serializer=None):
        self.sent.append((partition, key, value, value_serializer))


def test_a_state_written_to_the_changelog_is_read_back_by_the_tables_codec():
    table = FakeTable()
    processor = RecordsProcessor(None, None, None, table, None, partitions=8)
    processor._write_state("ACC-1", STATE)
    [(partition, key, value, serializer)] = table.sent
    assert partition == partition_for("ACC-1", 8) and key == b"ACC-1"
    assert serializer == "raw" and isinstance(value, bytes)
    assert codecs.loads("json", value) == STATE  # what recovery puts in the table


def test_a_state_is_in_the_table_at_once_and_in_the_changelog_once_per_commit():
    table = FakeTable()
    processor = RecordsProcessor(None, None, None, table, None, partitions=8)
    processor._keep_state("ACC-1", {"n": 1})
    processor._keep_state("ACC-2", {"n": 2})
    processor._keep_state("ACC-1", {"n": 3})
    assert table.data[b"ACC-1"] == {"n": 3} and table.sent == []
    assert processor.write_states() == 2
    assert [(key, codecs.loads("json", value)) for _, key, value, _ in table.sent] == [
        (b"ACC-1", {"n": 3}),
        (b"ACC-2", {"n": 2}),
    ]
    assert processor.write_states() == 0 and len(table.sent) == 2


class FakeSink:
    def __init__(self) -> None:
        self.remembered: list[tuple[str, str]] = []

    def remember(self, scope, key, state) -> None:
        self.remembered.append((scope, key))


def test_the_commit_hook_writes_the_states_before_the_offsets_are_committed():
    """Accounts and institutions alike: a worker killed after a commit resumes both from what
    the commit's offsets imply (an institution's state once lived in memory, ~2 s behind)."""
    from streams.app import CommitHook

    accounts, institutions_table = FakeTable(), FakeTable()
    processor = RecordsProcessor(None, None, None, accounts, None, partitions=8)
    institutions = InstitutionProcessor(FakeSink(), None, institutions_table, partitions=8)
    processor._keep_state("ACC-1", {"n": 1})
    institutions._keep_state("INS-1", {"products": {}})
    assert institutions_table.data[b"INS-1"] == {"products": {}}
    assert CommitHook(processor, institutions).on_commit_initiated(consumer=None) == 2
    assert [key for _, key, _, _ in accounts.sent] == [b"ACC-1"]
    [(partition, key, value, serializer)] = institutions_table.sent
    assert partition == partition_for("INS-1", 8) and key == b"INS-1" and serializer == "raw"
    assert codecs.loads("json", value) == {"products": {}}
    assert institutions.write_states() == 0
