"""The gateway's one-pass record reader (services/gateway/reader.py) against the strict decoder it
stands in for: for any record-like input, both accept the same message record or refuse it with
the same words, naming the same field."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.records import RecordDecoder
from schemas.validation import explain
from services.gateway.reader import RecordReader, to_message_record
from tests.unit.test_decoders_properties import BALANCES, BOUNDED, FIELDS, SCALARS, TRANSACTIONS, _spellings

READER = RecordReader()
STRICT = RecordDecoder()

TXN = {
    "kind": "transaction", "record_id": "R-1", "account_id": "A-1", "direction": "credit",
    "amount": "12.50", "booked_at": "2026-11-25T09:30:00+08:00", "counterparty_account": "C-1",
    "counterparty_bank": "B002", "channel": "HVPS", "balance_after": "-3.00",
}  # fmt: skip
BAL = {
    "kind": "balance", "record_id": "R-2", "account_id": "A-1", "as_of": "2026-11-25T00:00:00Z",
    "balance": "100.00", "customer_liabilities": "90.00",
}  # fmt: skip


def outcome(read, raw: bytes) -> object:
    """The message record, or the (field, message) the bank would be told."""
    try:
        return read(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        failure = explain(error)
        return (failure.field, failure.message)


def strictly(raw: bytes) -> object:
    return to_message_record(STRICT.decode(raw))


def assert_agree(raw: bytes) -> object:
    fast = outcome(READER.read, raw)
    assert fast == outcome(strictly, raw)
    assert outcome(READER.read, msgspec.Raw(raw)) == fast  # as the batch envelope hands it over
    return fast


# Values at the edges of what the one-pass checks decide themselves, and of what they hand back.
EDGES = {
    "amount": ["0", "0.0", "0.00", "00", "0.01", "1,5", "1.5,", "1\n", "-1", "1e3", "", " 1", 5],
    "balance_after": ["0", "-0", "-0.00", "1,0", "-", None, "12.345"],
    "balance": ["0", "-0", "-12.50", "1,0", "+1"],
    "customer_liabilities": ["0", "-0", "-0.00", "-0.01", "-1", "1", None, "x"],
    "currency": ["CNY", "cny", "CNY\n", "US,D", "USD", "", None],
    "booked_at": ["2026-11-25T09:30:00+08:00", "2026-11-25t09:30:00z", "2026-11-25 09:30:00.123456789Z",
                  "2026-02-30T00:00:00Z", "2000-01-01T05:00:00+08:00", "2000-01-01T00:00:00Z",
                  "2100-12-31T23:59:59-12:00", "2026-11-25T09:30:00", "2026-11-25T09:30:00+08:00\n",
                  "2026-11-25T09:30:00,5Z"],
    "as_of": ["2026-11-25T00:00:00Z", "1999-12-31T23:59:59Z", "2026-13-01T00:00:00Z"],
    "record_id": ["a b", " ", "   ", "\u202eR", "R\x00", "R\n", "x" * 128, "x" * 129, "", "R,1", "红"],
    "account_id": ["A 1", "\u200e", "\x7f"],
    "counterparty_bank": [" B", "B\t"],
    "instruction_id": ["", " ", "I 1", None],
    "product_id": ["\u2066P", None],
    "direction": ["credit", "debit", "Credit", ""],
    "channel": ["HVPS", "hvps", "OTHER", "SWIFT"],
    "counterparty_name": ["x" * 256, "x" * 257, "名 称", None],
    "purpose": ["p" * 2001, "", None],
}  # fmt: skip


@pytest.mark.parametrize("base", [TXN, BAL], ids=["transaction", "balance"])
@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in EDGES.items() for v in values])
def test_edge_values_are_read_as_the_strict_decoder_reads_them(base, field, value):
    assert_agree(json.dumps({**base, field: value}).encode())


@pytest.mark.parametrize("base", [TXN, BAL], ids=["transaction", "balance"])
def test_a_plain_record_is_read_by_the_one_pass(base):
    assert not isinstance(assert_agree(json.dumps(base).encode()), tuple)


def test_a_key_given_twice_is_refused_by_name():
    raw = json.dumps(TXN).encode()[:-1] + b', "amount": "1000000.00"}'
    assert outcome(READER.read, raw) == ("amount", "must be given only once")


@BOUNDED
@given(st.dictionaries(FIELDS, SCALARS, min_size=1, max_size=14), st.data())
def test_record_like_objects_are_read_as_the_strict_decoder_reads_them(fields, data):
    assert_agree(json.dumps(fields, ensure_ascii=data.draw(st.booleans())).encode())


@BOUNDED
@given(st.one_of(TRANSACTIONS, BALANCES), st.data())
def test_valid_records_however_written_are_read_as_the_strict_decoder_reads_them(record, data):
    assert not isinstance(assert_agree(_spellings(record, data)), tuple)
