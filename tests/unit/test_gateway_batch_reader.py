"""A batch read whole (services/gateway/batch_reader.py, batch_times.py) against the per-record
reader: it gives exactly the records the per-record reader gives, or nothing, in which case the
batch is read record by record; and the usual batch is read whole."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.batch_reader import read_batch
from services.gateway.batch_times import usual_epochs
from services.gateway.reader import RecordReader, _epoch
from tests.unit.test_decoders_properties import BALANCES, BOUNDED, FIELDS, SCALARS, TRANSACTIONS, _spellings
from tests.unit.test_gateway_reader import BAL, EDGES, TXN

READER = RecordReader()


def raws_of(*records: dict | bytes) -> list[msgspec.Raw]:
    """Records as the batch envelope hands them over."""
    return [msgspec.Raw(r if isinstance(r, bytes) else json.dumps(r).encode()) for r in records]


def read_each(raws: list[msgspec.Raw]) -> list | None:
    """The per-record reader's records, or None when it refuses any."""
    try:
        return [READER.read(raw) for raw in raws]
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def assert_same_or_none(raws: list[msgspec.Raw]) -> list | None:
    whole = read_batch(raws)
    if whole is not None:
        assert whole == read_each(raws)
    return whole


def usual_transaction(index: int, **changes) -> dict:
    return {
        **TXN, "record_id": f"R-{index}", "amount": f"{index + 1}.25", "balance_after": f"-{index}.50",
        "booked_at": f"2026-11-25T09:{index % 60:02d}:{(7 * index) % 60:02d}+08:00", **changes,
    }  # fmt: skip


def test_the_usual_batch_is_read_whole_to_the_per_record_readers_records():
    batch = raws_of(
        *(usual_transaction(i) for i in range(300)),
        {**BAL, "as_of": "2026-11-25T00:00:00+08:00"},
        usual_transaction(300, balance_after="0.00", currency="USD", product_id="P-1", purpose="利息"),
        {**usual_transaction(301), "instruction_id": "I-9", "counterparty_name": "某公司"},
    )
    whole = read_batch(batch)
    assert whole is not None
    assert whole == read_each(batch)
    assert [type(r).__name__ for r in whole[299:302]] == ["TxnRecord", "BalanceRecord", "TxnRecord"]


def test_a_batch_of_balances_alone_is_read_whole():
    batch = raws_of(BAL, {**BAL, "record_id": "R-3", "customer_liabilities": "0"})
    assert assert_same_or_none(batch) is not None


@pytest.mark.parametrize("base", [TXN, BAL], ids=["transaction", "balance"])
@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in EDGES.items() for v in values])
def test_an_edge_value_among_usual_records_is_read_as_record_by_record(base, field, value):
    odd = json.dumps({**base, field: value}).encode()
    batch = raws_of(usual_transaction(0), odd, usual_transaction(1))
    whole = assert_same_or_none(batch)
    if read_each(batch) is None:
        assert whole is None


def test_a_key_given_twice_a_null_or_an_escaped_quote_sends_the_batch_record_by_record():
    twice = json.dumps(usual_transaction(1)).encode()[:-1] + b', "amount": "1000000.00"}'
    null = json.dumps({**usual_transaction(2), "purpose": None}).encode()
    quoted = json.dumps({**usual_transaction(3), "purpose": 'say "hi"'}).encode()
    for odd in (twice, null, quoted):
        assert read_batch(raws_of(usual_transaction(0), odd)) is None
    assert read_each(raws_of(null)) is not None and read_each(raws_of(quoted)) is not None


def test_zero_and_amounts_without_two_decimals_are_left_to_the_per_record_reader():
    for amount in ("0.00", "12", "12.5"):
        assert read_batch(raws_of(usual_transaction(0), usual_transaction(1, amount=amount))) is None


def test_an_empty_batch_is_left_to_the_per_record_reader():
    assert read_batch([]) is None


@BOUNDED
@given(st.lists(st.one_of(TRANSACTIONS, BALANCES), min_size=1, max_size=8), st.data())
def test_valid_records_however_written_are_read_whole_or_not_at_all(records, data):
    assert_same_or_none([msgspec.Raw(_spellings(record, data)) for record in records])


@BOUNDED
@given(st.lists(st.dictionaries(FIELDS, SCALARS, min_size=1, max_size=14), min_size=1, max_size=4))
def test_record_like_objects_never_pass_whole_unless_each_passes(objects):
    assert_same_or_none(raws_of(*objects))


# times: the usual form is converted as the per-record reader converts it, anything else is not


@pytest.mark.parametrize(
    "text",
    [
        "2000-01-01T00:00:00+00:00", "2000-01-01T07:59:59+08:00", "2000-01-01T08:00:00+08:00",
        "2024-02-29T12:00:00+08:00", "2026-02-29T12:00:00+08:00", "2100-02-28T23:59:59-12:00",
        "2100-02-29T00:00:00+00:00", "2026-12-31 23:59:59+08:00", "2026-12-31t00:00:00-00:00",
        "2026-04-31T00:00:00+08:00", "2026-00-10T00:00:00+08:00", "2026-13-10T00:00:00+08:00",
        "2026-11-25T24:00:00+08:00", "2026-11-25T23:60:00+08:00", "2026-11-25T23:59:60+08:00",
        "2026-11-25T09:30:00+23:59", "2026-11-25T09:30:00+24:00", "2026-11-25T09:30:00+08:60",
        "2026-11-25T09:30:00.5+08:00", "2026-11-25T09:30:00Z", "2026-11-25T09:30:00+0800",
    ],
)  # fmt: skip
def test_a_time_is_converted_as_the_per_record_reader_converts_it_or_left_to_it(text):
    converted = usual_epochs([text])
    if converted is not None:
        assert converted == [_epoch(text)]
    if _epoch(text) is None:
        assert converted is None


def test_every_day_of_the_century_is_converted_whole():
    days = [datetime(2000, 1, 2) + timedelta(days=n) for n in range(0, 36880, 7)]
    texts = [day.strftime("%Y-%m-%dT%H:%M:%S") + offset for day in days for offset in ("+08:00", "-05:30")]
    assert usual_epochs(texts) == [_epoch(text) for text in texts]


@BOUNDED
@given(
    st.lists(
        st.tuples(
            st.integers(1999, 2101), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
            st.integers(0, 61), st.integers(0, 61), st.sampled_from("+-"), st.integers(0, 25), st.integers(0, 61),
        ),  # fmt: skip
        min_size=1,
        max_size=5,
    )
)
def test_times_near_the_calendars_edges_are_converted_exactly_or_not_at_all(fields):
    texts = [f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{sign}{oh:02d}:{om:02d}"
             for y, mo, d, h, mi, s, sign, oh, om in fields]  # fmt: skip
    converted = usual_epochs(texts)
    if converted is not None:
        assert converted == [_epoch(text) for text in texts]
    elif all(_epoch(text) is not None for text in texts):
        # only a time the calendar leaves in doubt is left to the per-record reader
        assert any(not 0 <= oh < 24 or not 0 <= om < 60 for *_, oh, om in fields)
