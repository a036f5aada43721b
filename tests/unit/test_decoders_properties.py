"""Properties of the record decoders (schemas/records.py, schemas/validation.py), whatever comes in:
any bytes, and any JSON-like value, either decode to a valid record or raise ValidationFailure
naming a field (or the body), never another exception; records that follow the rules decode to
themselves, and a key given twice is refused whatever its spelling.

Bounded (a few hundred examples each, no deadline, no example database) so it runs in seconds.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas.fields import _ID_PATTERN, EARLIEST_EPOCH, epoch_seconds
from schemas.records import Balance, Batch, Record, RecordDecoder, Transaction
from schemas.validation import ValidationFailure, decode, explain

BOUNDED = settings(
    max_examples=int(os.environ.get("FW_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    database=None,  # nothing written under the working tree
    suppress_health_check=[HealthCheck.too_slow],
)
DECODER = RecordDecoder()


def decoded_or_named(data: bytes, type_) -> object:
    """decode() either gives a value of ``type_`` or a ValidationFailure in words; nothing else."""
    try:
        return decode(data, type_)
    except ValidationFailure as failure:
        assert failure.message and "Expected `" not in failure.message
        assert failure.field is None or failure.field
        return failure


def record_decoded_or_named(raw: bytes) -> object:
    """RecordDecoder, as the intake calls it: a record, or a msgspec error explain() words."""
    try:
        record = DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        failure = explain(error)
        assert isinstance(failure, ValidationFailure) and failure.message
        return failure
    assert isinstance(record, Transaction | Balance)
    return record


# --- any bytes -------------------------------------------------------------------------------------


@BOUNDED
@given(st.binary(max_size=600))
def test_any_bytes_decode_or_are_refused_in_words(data):
    for type_ in (Record, Batch, list[msgspec.Raw]):
        decoded_or_named(data, type_)
    record_decoded_or_named(data)


NASTY = st.sampled_from(
    [
        b"[",
        b"{",
        b'"',
        b"\\",
        b"\x00",
        b"\xff",
        b"\xc3\x28",
        b"\xed\xa0\x80",
        b"\\ud800",
        b":",
        b",",
        b"null",
        b"1e999",
    ]
)


@BOUNDED
@given(st.lists(st.one_of(NASTY, st.binary(max_size=8)), max_size=60), st.integers(0, 3000))
def test_json_like_bytes_and_deep_nesting_decode_or_are_refused_in_words(parts, depth):
    data = b"[" * depth + b"".join(parts)
    for type_ in (Record, Batch):
        decoded_or_named(data, type_)
    record_decoded_or_named(data)


# --- any JSON-like value -------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["transaction", "balance", "debit", "credit", "HVPS", "CNY", "1.00", "0", "-1.00",
                     "2026-11-25T09:30:00+08:00", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z", " ", "\u202e"]),
)  # fmt: skip
FIELDS = st.sampled_from(
    ["kind", "record_id", "account_id", "direction", "amount", "booked_at", "counterparty_account",
     "counterparty_bank", "channel", "currency", "counterparty_name", "instruction_id", "purpose",
     "product_id", "balance_after", "as_of", "balance", "customer_liabilities", "batch_id", "bank_code",
     "records", "other"]
)  # fmt: skip
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(FIELDS | st.text(max_size=8), inner, max_size=12)
    ),
    max_leaves=40,
)


@BOUNDED
@given(JSONISH)
def test_any_json_value_decodes_or_is_refused_naming_a_field(value):
    data = json.dumps(value).encode()
    for type_ in (Record, Batch):
        result = decoded_or_named(data, type_)
        if isinstance(value, dict) and isinstance(result, ValidationFailure):
            assert result.field  # an object is refused by one of its fields, named
    record_decoded_or_named(data)


@BOUNDED
@given(st.dictionaries(FIELDS, SCALARS, min_size=1, max_size=14), st.data())
def test_record_like_objects_decode_or_name_a_field_and_the_decoders_agree(fields, data):
    raw = json.dumps(fields, ensure_ascii=data.draw(st.booleans())).encode()
    plain = decoded_or_named(raw, Record)
    checked = record_decoded_or_named(raw)
    if isinstance(plain, ValidationFailure):
        assert isinstance(checked, ValidationFailure) and checked.field == plain.field
    else:
        assert checked == plain  # a key given once each: the duplicate check changes nothing


# --- valid records ---------------------------------------------------------------------------------------

IDS = st.from_regex(_ID_PATTERN, fullmatch=True).filter(lambda s: 1 <= len(s) <= 128)
AMOUNTS = st.from_regex(r"(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?", fullmatch=True).filter(
    lambda a: a.lstrip("0.") != ""
)
SIGNED = st.from_regex(r"-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?", fullmatch=True)
TIMES = st.datetimes(
    min_value=datetime(2000, 1, 2),
    max_value=datetime(2100, 12, 30),
).map(lambda d: d.replace(microsecond=0).isoformat() + "+08:00")
OPTIONAL_TEXT = st.none() | st.text(max_size=60)

TRANSACTIONS = st.builds(
    Transaction,
    record_id=IDS, account_id=IDS, direction=st.sampled_from(["debit", "credit"]), amount=AMOUNTS,
    booked_at=TIMES, counterparty_account=IDS, counterparty_bank=IDS,
    channel=st.sampled_from(["HVPS", "BEPS", "IBPS", "INTERNAL", "UNIONPAY", "NETSUNION", "CASH", "OTHER"]),
    currency=st.sampled_from(["CNY", "USD"]), counterparty_name=st.none() | st.text(max_size=40),
    instruction_id=st.none() | IDS, purpose=OPTIONAL_TEXT, product_id=st.none() | IDS, balance_after=st.none() | SIGNED,
)  # fmt: skip
BALANCES = st.builds(
    Balance, record_id=IDS, account_id=IDS, as_of=TIMES, balance=SIGNED,
    customer_liabilities=st.none() | SIGNED.filter(lambda s: not s.startswith("-")), currency=st.just("CNY"),
)  # fmt: skip


def _spellings(record: Transaction | Balance, data) -> bytes:
    """The record as some bank's system might write it: defaults given or left out, nulls given or
    left out, ASCII escapes or UTF-8, compact or spaced."""
    doc = msgspec.to_builtins(record)
    kind = "transaction" if isinstance(record, Transaction) else "balance"
    doc = {"kind": kind, **doc}
    if doc.get("currency") == "CNY" and data.draw(st.booleans()):
        del doc["currency"]
    if not data.draw(st.booleans()):
        doc = {k: v for k, v in doc.items() if v is not None}
    keys = data.draw(st.permutations(list(doc)))
    ordered = {k: doc[k] for k in keys}
    return json.dumps(
        ordered,
        ensure_ascii=data.draw(st.booleans()),
        separators=data.draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")])),
    ).encode()


@BOUNDED
@given(st.one_of(TRANSACTIONS, BALANCES), st.data())
def test_valid_records_round_trip_through_both_decoders(record, data):
    raw = _spellings(record, data)
    assert decode(raw, Record) == record
    assert DECODER.decode(raw) == record
    assert DECODER.decode(msgspec.Raw(raw)) == record  # as the batch envelope hands them over


@BOUNDED
@given(st.one_of(TRANSACTIONS, BALANCES), st.data())
def test_a_key_given_twice_is_refused_naming_it_however_written(record, data):
    raw = _spellings(record, data)
    doc = json.loads(raw)
    key = data.draw(st.sampled_from(sorted(doc)))
    value = data.draw(st.sampled_from([doc[key], None, "x", "1.00"]))
    spelled = (
        json.dumps(key) if data.draw(st.booleans()) else '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"'
    )
    repeated = raw[:-1] + f", {spelled}: {json.dumps(value)}}}".encode()
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)) as info:
        DECODER.decode(repeated)
    failure = explain(info.value)
    # the repeat itself, or the value it brought (msgspec judges each value as it reads it)
    assert failure.field is not None
    if failure.message == "must be given only once":
        assert failure.field == key


@BOUNDED
@given(st.one_of(TRANSACTIONS, BALANCES))
def test_a_batch_of_valid_records_decodes_to_them(record):
    raw = json.dumps(
        {
            "kind": "transaction" if isinstance(record, Transaction) else "balance",
            **msgspec.to_builtins(record),
        }
    )
    body = f'{{"batch_id": "B-1", "bank_code": "B001", "records": [{raw}, {raw}]}}'.encode()
    batch = decode(body, Batch)
    assert [DECODER.decode(r) for r in batch.records] == [record, record]


@BOUNDED
@given(st.integers(-(2**33), 2**33))
def test_no_record_time_before_2000_or_after_2100_is_taken(seconds):
    when = datetime.fromtimestamp(seconds, UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assume(re.fullmatch(r"\d{4}-.*", text))
    result = decoded_or_named(
        json.dumps(
            {"kind": "balance", "record_id": "R", "account_id": "A", "as_of": text, "balance": "0"}
        ).encode(),
        Record,
    )
    taken = not isinstance(result, ValidationFailure)
    assert taken == (EARLIEST_EPOCH <= seconds and when.year <= 2100)
    if taken:
        assert epoch_seconds(text) == seconds
    else:
        assert result.field == "as_of"
