"""schemas/messages.py: the records-topic message encoding and partitioning."""

from __future__ import annotations

import zlib

import msgspec
import pytest

from schemas.messages import (
    BalanceRecord,
    RecordBatchMessage,
    TxnRecord,
    decode_batch,
    encode_batch,
    partition_for,
)


def _txn(**changes: object) -> TxnRecord:
    fields = dict(
        record_id="R-1",
        account_id="6222020000000001",
        credit=True,
        amount_cents=1234567,
        booked_at=1795570200,
        counterparty_account="6222020000000099",
        counterparty_bank="B002",
        channel="HVPS",
        currency="CNY",
        counterparty_name="某某公司",
        instruction_id=None,
        purpose="还款",
        product_id="P-1",
        balance_after_cents=-1250,
    )
    fields.update(changes)
    return TxnRecord(**fields)


def _bal(**changes: object) -> BalanceRecord:
    fields = dict(
        record_id="R-2",
        account_id="6222020000000001",
        as_of=1795597200,
        balance_cents=-500,
        customer_liabilities_cents=100000,
        currency="CNY",
    )
    fields.update(changes)
    return BalanceRecord(**fields)


def _message(records) -> RecordBatchMessage:
    return RecordBatchMessage("B001/batch-1/2", "B001", "batch-1", 1795600000, records)


def test_round_trip_with_both_record_types():
    message = _message([_txn(), _bal(), _txn(record_id="R-3", credit=False, balance_after_cents=None)])
    decoded = decode_batch(encode_batch(message))
    assert decoded == message
    assert isinstance(decoded.records[0], TxnRecord)
    assert isinstance(decoded.records[1], BalanceRecord)
    assert decoded.records[2].credit is False
    assert decoded.records[2].balance_after_cents is None


def test_round_trip_keeps_exact_large_cents():
    big = 999999999999999999
    decoded = decode_batch(encode_batch(_message([_txn(amount_cents=big), _bal(balance_cents=-big)])))
    assert decoded.records[0].amount_cents == big
    assert decoded.records[1].balance_cents == -big


def test_round_trip_empty_records():
    assert decode_batch(encode_batch(_message([]))).records == []


def test_encoding_is_array_like_with_tags():
    raw = msgspec.json.decode(encode_batch(_message([_txn(), _bal()])))
    assert isinstance(raw, list)
    assert raw[:4] == ["B001/batch-1/2", "B001", "batch-1", 1795600000]
    assert raw[4][0][0] == "t"
    assert raw[4][1][0] == "b"
    assert raw[4][0][1] == "R-1"


def test_decode_rejects_unknown_tag():
    raw = b'["m", "B001", "b", 1, [["x", "R-1"]]]'
    with pytest.raises(msgspec.ValidationError):
        decode_batch(raw)


def test_decode_rejects_wrong_types():
    raw = msgspec.json.encode(["m", "B001", "b", "not-a-time", []])
    with pytest.raises(msgspec.ValidationError):
        decode_batch(raw)


def test_unicode_survives():
    decoded = decode_batch(encode_batch(_message([_txn(counterparty_name="长春市某某投资管理有限公司")])))
    assert decoded.records[0].counterparty_name == "长春市某某投资管理有限公司"


# --- partitioning --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account_id", "partitions", "expected"),
    [
        # computed once with zlib.crc32(account_id.encode("utf-8")) % partitions; a change here
        # would move accounts, and their state, to other partitions
        ("6222020000000001", 4, 0),  # crc32 4149103520
        ("ACC-001", 4, 2),  # crc32 287596370
        ("托管账户-1", 4, 1),  # crc32 1416440369
        ("ACC-001", 16, 2),
        ("6222020000000001", 7, 4149103520 % 7),
        ("", 4, 0),
    ],
)
def test_partition_for_is_stable(account_id, partitions, expected):
    assert partition_for(account_id, partitions) == expected


def test_partition_for_matches_crc32_literal_values():
    # guards the constants above against an edit to both sides
    assert zlib.crc32(b"ACC-001") == 287596370
    assert partition_for("ACC-001", 1000) == 287596370 % 1000 == 370


def test_partition_for_is_in_range():
    for partitions in (1, 2, 3, 4, 16, 1024):
        for n in range(300):
            assert 0 <= partition_for(f"acct-{n}", partitions) < partitions


def test_partition_for_one_partition_is_always_zero():
    assert {partition_for(f"a{n}", 1) for n in range(50)} == {0}


def test_partition_for_spreads_accounts():
    used = {partition_for(f"6222020000{n:06d}", 4) for n in range(200)}
    assert used == {0, 1, 2, 3}
