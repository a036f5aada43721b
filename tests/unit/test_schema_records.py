"""schemas/records.py through schemas/validation.py: every record rule, accepted and rejected side,
with the failure naming the field and saying the rule in words."""

from __future__ import annotations

import json
import re

import msgspec
import pytest

from schemas.fields import (
    _ID_PATTERN,
    AMOUNT_RULE,
    BALANCE_RULE,
    CURRENCY_RULE,
    ID_RULE,
    TIME_RULE,
    id_breaks_rule,
)
from schemas.records import (
    MAX_RECORDS_PER_BATCH,
    Balance,
    Batch,
    BatchSchema,
    Channel,
    Direction,
    Record,
    RecordDecoder,
    Transaction,
)
from schemas.validation import DUPLICATE_RULE, ValidationFailure, decode, explain

DROP = object()

TXN = {
    "kind": "transaction",
    "record_id": "R-0001",
    "account_id": "6222020000000001",
    "direction": "credit",
    "amount": "12345.67",
    "booked_at": "2026-11-25T09:30:00+08:00",
    "counterparty_account": "6222020000000099",
    "counterparty_bank": "B002",
    "channel": "HVPS",
}

BAL = {
    "kind": "balance",
    "record_id": "R-0002",
    "account_id": "6222020000000001",
    "as_of": "2026-11-25T17:00:00+08:00",
    "balance": "1000.00",
}


def _body(base: dict, **changes: object) -> bytes:
    data = dict(base)
    for key, value in changes.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


def txn(**changes: object):
    return decode(_body(TXN, **changes), Record)


def bal(**changes: object):
    return decode(_body(BAL, **changes), Record)


def failure_of(base: dict, **changes: object) -> ValidationFailure:
    with pytest.raises(ValidationFailure) as info:
        decode(_body(base, **changes), Record)
    return info.value


def assert_in_words(failure: ValidationFailure, field: str) -> None:
    text = str(failure)
    assert failure.field == field
    assert f"`{field}`" in text
    # a rule in words, never the raw regex or msgspec's own phrasing
    assert "^" not in text and "$" not in text and "regex" not in text and "[0-9]" not in text
    assert "Expected" not in text
    assert failure.message and failure.message in text


# --- the valid baseline --------------------------------------------------------------------------


def test_valid_transaction_decodes():
    record = txn()
    assert isinstance(record, Transaction)
    assert record.direction is Direction.credit
    assert record.channel is Channel.HVPS
    assert record.amount == "12345.67"
    assert record.currency == "CNY"
    assert record.counterparty_name is None


def test_valid_balance_decodes():
    record = bal()
    assert isinstance(record, Balance)
    assert record.balance == "1000.00"
    assert record.customer_liabilities is None
    assert record.currency == "CNY"


def test_transaction_with_every_optional_field():
    record = txn(
        counterparty_name="某某科技有限公司",
        instruction_id="INS-9",
        purpose="还款 repayment",
        product_id="P-1",
        balance_after="-12.50",
        currency="USD",
    )
    assert record.counterparty_name == "某某科技有限公司"
    assert record.instruction_id == "INS-9"
    assert record.balance_after == "-12.50"
    assert record.currency == "USD"


# --- amount --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount", ["0.01", "1", "1.5", "12345.67", "1111111111111111", "1111111111111111.99"]
)
def test_amount_accepted(amount):
    assert txn(amount=amount).amount == amount


def test_amount_with_three_decimals_rejected_with_rule():
    failure = failure_of(TXN, amount="1.234")
    assert_in_words(failure, "amount")
    assert AMOUNT_RULE in str(failure)


@pytest.mark.parametrize("amount", ["0", "0.00", "0.0"])
def test_amount_zero_rejected_as_not_positive(amount):
    failure = failure_of(TXN, amount=amount)
    assert_in_words(failure, "amount")
    assert "greater than 0" in failure.message


@pytest.mark.parametrize("amount", ["-1", "-12.50"])
def test_amount_negative_rejected(amount):
    assert_in_words(failure_of(TXN, amount=amount), "amount")


def test_amount_float_number_rejected_as_not_a_string():
    failure = failure_of(TXN, amount=12.5)
    assert_in_words(failure, "amount")
    assert "a string" in failure.message
    assert "a number" in failure.message


def test_amount_integer_number_rejected():
    failure = failure_of(TXN, amount=12)
    assert_in_words(failure, "amount")
    assert "a whole number" in failure.message


@pytest.mark.parametrize("amount", ["012", "00.5", "0012.50"])
def test_amount_leading_zeros_rejected(amount):
    assert_in_words(failure_of(TXN, amount=amount), "amount")


def test_amount_more_than_16_integer_digits_rejected():
    assert_in_words(failure_of(TXN, amount="1" * 17), "amount")


@pytest.mark.parametrize("amount", ["1.", ".5", "1,000.00", "1e3", " 1.00", "1.00 ", "+1.00", ""])
def test_amount_malformed_rejected(amount):
    assert_in_words(failure_of(TXN, amount=amount), "amount")


# --- booked_at -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "booked_at",
    [
        "2026-11-25T09:30:00+08:00",
        "2026-11-25T01:30:00Z",
        "2026-11-25T01:30:00z",
        "2026-11-25 09:30:00+08:00",
        "2026-11-25T09:30:00.123+08:00",
        "2026-11-25T09:30:00.123456789+08:00",
        "2026-11-25T09:30:00-05:00",
        "2028-02-29T10:00:00+08:00",
    ],
)
def test_booked_at_accepted(booked_at):
    assert txn(booked_at=booked_at).booked_at == booked_at


def test_booked_at_without_offset_rejected_with_rule():
    failure = failure_of(TXN, booked_at="2026-11-25T09:30:00")
    assert_in_words(failure, "booked_at")
    assert TIME_RULE in str(failure)


@pytest.mark.parametrize(
    "booked_at",
    [
        "2026-11-25",
        "2026/11/25 09:30:00+08:00",
        "2026-11-25T09:30+08:00",
        "2026-11-25T09:30:00+0800",
        "yesterday",
    ],
)
def test_booked_at_malformed_rejected(booked_at):
    assert_in_words(failure_of(TXN, booked_at=booked_at), "booked_at")


@pytest.mark.parametrize(
    "booked_at",
    [
        "2026-02-30T10:00:00+08:00",
        "2026-02-29T10:00:00+08:00",
        "2026-13-01T10:00:00+08:00",
        "2026-11-25T24:30:00+08:00",
    ],
)
def test_booked_at_not_on_the_calendar_rejected(booked_at):
    failure = failure_of(TXN, booked_at=booked_at)
    assert_in_words(failure, "booked_at")
    assert "real calendar date" in failure.message


def test_booked_at_number_rejected():
    assert_in_words(failure_of(TXN, booked_at=1795570200), "booked_at")


# --- enums ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["debit", "credit"])
def test_direction_accepted(direction):
    assert txn(direction=direction).direction.value == direction


@pytest.mark.parametrize("direction", ["up", "DEBIT", "", "in"])
def test_direction_not_in_enum_rejected(direction):
    failure = failure_of(TXN, direction=direction)
    assert_in_words(failure, "direction")
    assert "allowed values" in failure.message


@pytest.mark.parametrize("channel", [c.value for c in Channel])
def test_channel_accepted(channel):
    assert txn(channel=channel).channel.value == channel


def test_channel_enum_is_the_contract_list():
    assert {c.value for c in Channel} == {
        "HVPS",
        "BEPS",
        "IBPS",
        "INTERNAL",
        "UNIONPAY",
        "NETSUNION",
        "CASH",
        "OTHER",
    }


@pytest.mark.parametrize("channel", ["SWIFT", "hvps", ""])
def test_channel_not_in_enum_rejected(channel):
    failure = failure_of(TXN, channel=channel)
    assert_in_words(failure, "channel")
    assert repr(channel) in failure.message


# --- required and unknown fields -----------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "record_id",
        "account_id",
        "direction",
        "amount",
        "booked_at",
        "counterparty_account",
        "counterparty_bank",
        "channel",
    ],
)
def test_transaction_missing_required_field_rejected(field):
    failure = failure_of(TXN, **{field: DROP})
    assert_in_words(failure, field)
    assert failure.message == "is required"


@pytest.mark.parametrize("field", ["record_id", "account_id", "as_of", "balance"])
def test_balance_missing_required_field_rejected(field):
    failure = failure_of(BAL, **{field: DROP})
    assert_in_words(failure, field)
    assert failure.message == "is required"


@pytest.mark.parametrize(
    "field", ["currency", "counterparty_name", "instruction_id", "purpose", "product_id", "balance_after"]
)
def test_transaction_optional_field_may_be_absent(field):
    assert isinstance(txn(**{field: DROP}), Transaction)


def test_unknown_field_rejected():
    failure = failure_of(TXN, memo="x")
    assert_in_words(failure, "memo")
    assert "not a field" in failure.message


def test_field_of_the_other_kind_rejected_as_unknown():
    failure = failure_of(BAL, amount="1.00")
    assert_in_words(failure, "amount")
    assert "not a field" in failure.message


# --- kind ----------------------------------------------------------------------------------------


def test_kind_missing_rejected():
    failure = failure_of(TXN, kind=DROP)
    assert_in_words(failure, "kind")
    assert failure.message == "is required"


@pytest.mark.parametrize("kind", ["loan", "Transaction", ""])
def test_kind_unknown_rejected_naming_both_kinds(kind):
    failure = failure_of(TXN, kind=kind)
    assert_in_words(failure, "kind")
    assert '"transaction"' in failure.message and '"balance"' in failure.message


def test_kind_selects_the_type():
    assert isinstance(decode(_body(TXN), Record), Transaction)
    assert isinstance(decode(_body(BAL), Record), Balance)


# --- balance records -----------------------------------------------------------------------------


@pytest.mark.parametrize("balance", ["-12.50", "-1", "0", "0.00", "1111111111111111.99"])
def test_balance_may_be_zero_or_negative(balance):
    assert bal(balance=balance).balance == balance


@pytest.mark.parametrize("balance", ["1.001", "-01.00", "--1", "12,50", "1" * 17])
def test_balance_malformed_rejected_with_rule(balance):
    failure = failure_of(BAL, balance=balance)
    assert_in_words(failure, "balance")
    assert BALANCE_RULE in str(failure)


@pytest.mark.parametrize("liabilities", ["0", "0.00", "1500.00"])
def test_customer_liabilities_zero_or_more_accepted(liabilities):
    assert bal(customer_liabilities=liabilities).customer_liabilities == liabilities


@pytest.mark.parametrize("liabilities", ["-1.00", "-0.01"])
def test_negative_customer_liabilities_rejected(liabilities):
    failure = failure_of(BAL, customer_liabilities=liabilities)
    assert_in_words(failure, "customer_liabilities")
    assert "0 or more" in failure.message


def test_balance_as_of_not_on_the_calendar_rejected():
    failure = failure_of(BAL, as_of="2026-02-30T10:00:00+08:00")
    assert_in_words(failure, "as_of")


def test_balance_as_of_without_offset_rejected():
    assert_in_words(failure_of(BAL, as_of="2026-11-25T17:00:00"), "as_of")


# --- currency and ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["cny", "CN", "CNYY", "12A", "人民币"])
def test_currency_pattern_rejected(currency):
    failure = failure_of(TXN, currency=currency)
    assert_in_words(failure, "currency")
    assert CURRENCY_RULE in str(failure)


def test_balance_currency_pattern_rejected():
    assert_in_words(failure_of(BAL, currency="usd"), "currency")


def test_empty_record_id_rejected():
    failure = failure_of(TXN, record_id="")
    assert_in_words(failure, "record_id")
    assert "at least 1" in failure.message


def test_record_id_over_128_characters_rejected():
    failure = failure_of(TXN, record_id="x" * 129)
    assert_in_words(failure, "record_id")
    assert "at most 128" in failure.message


def test_record_id_of_128_characters_accepted():
    assert txn(record_id="x" * 128).record_id == "x" * 128


def test_record_id_number_rejected():
    failure = failure_of(TXN, record_id=7)
    assert_in_words(failure, "record_id")
    assert "a string" in failure.message


def test_optional_string_of_wrong_type_names_both_choices():
    failure = failure_of(TXN, counterparty_name=5)
    assert_in_words(failure, "counterparty_name")
    assert "a string or null" in failure.message


def test_signed_balance_after_rejected_with_three_decimals():
    failure = failure_of(TXN, balance_after="-1.001")
    assert_in_words(failure, "balance_after")
    assert BALANCE_RULE in str(failure)


def test_purpose_over_2000_characters_rejected():
    assert_in_words(failure_of(TXN, purpose="摘" * 2001), "purpose")


# --- not JSON, not an object ---------------------------------------------------------------------


def test_invalid_json_record_has_no_field():
    with pytest.raises(ValidationFailure) as info:
        decode(b"{not json", Record)
    assert info.value.field is None
    assert info.value.message.startswith("is not valid JSON")


def test_record_that_is_not_an_object_rejected():
    with pytest.raises(ValidationFailure) as info:
        decode(b"[1, 2]", Record)
    assert "an object" in info.value.message


# --- explain() with a prefix ---------------------------------------------------------------------


def test_prefix_gives_dotted_field_for_a_pattern_rule():
    with pytest.raises(ValidationFailure) as info:
        decode(_body(TXN, amount="1.234"), Record, prefix="records[3]")
    assert info.value.field == "records[3].amount"
    assert str(info.value).startswith("`records[3].amount`: must be")


def test_prefix_gives_dotted_field_for_a_post_init_rule():
    with pytest.raises(ValidationFailure) as info:
        decode(_body(TXN, amount="0"), Record, prefix="records[3]")
    assert info.value.field == "records[3].amount"
    assert info.value.message == "must be greater than 0"


def test_prefix_gives_dotted_field_for_a_missing_field():
    with pytest.raises(ValidationFailure) as info:
        decode(_body(TXN, booked_at=DROP), Record, prefix="records[0]")
    assert info.value.field == "records[0].booked_at"


def test_prefix_alone_when_json_is_invalid():
    with pytest.raises(ValidationFailure) as info:
        decode(b"{", Record, prefix="records[7]")
    assert info.value.field == "records[7]"


def test_explain_on_a_raw_msgspec_error_with_prefix():
    try:
        msgspec.json.decode(_body(TXN, channel="SWIFT"), type=Record)
    except msgspec.ValidationError as error:
        failure = explain(error, prefix="records[12]")
    else:  # pragma: no cover
        pytest.fail("SWIFT was accepted as a channel")
    assert failure.field == "records[12].channel"
    assert "`records[12].channel`" in str(failure)


def test_index_prefix_joins_without_a_dot():
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(b'[{"a": 1}]', type=list[Transaction])
    failure = explain(info.value, prefix="records")
    assert failure.field.startswith("records[0]")
    assert "records.[0]" not in failure.field


def test_nested_path_in_batch_schema_is_dotted():
    body = json.dumps(
        {"batch_id": "b1", "bank_code": "B001", "records": [dict(TXN), dict(TXN, amount="1.234")]}
    ).encode()
    with pytest.raises(ValidationFailure) as info:
        decode(body, BatchSchema)
    assert info.value.field == "records[1].amount"
    assert AMOUNT_RULE in str(info.value)


def test_validation_failure_without_field_is_the_message():
    failure = ValidationFailure(None, "is not valid JSON")
    assert str(failure) == "is not valid JSON"
    assert failure.field is None


def test_validation_failure_is_a_value_error():
    assert issubclass(ValidationFailure, ValueError)


def test_no_rule_message_leaks_a_regex():
    bodies = [
        _body(TXN, amount="1.234"),
        _body(TXN, booked_at="x"),
        _body(TXN, currency="x"),
        _body(TXN, balance_after="x"),
        _body(BAL, balance="x"),
        _body(BAL, as_of="x"),
        _body(BAL, customer_liabilities="x"),
    ]
    for body in bodies:
        with pytest.raises(ValidationFailure) as info:
            decode(body, Record)
        assert not re.search(r"[\^\$\\]|\[0-9\]|pattern", str(info.value)), str(info.value)


# --- the batch envelope --------------------------------------------------------------------------


def _batch(**changes: object) -> bytes:
    data = {"batch_id": "B-1", "bank_code": "B001", "records": [dict(TXN), dict(BAL)]}
    for key, value in changes.items():
        if value is DROP:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data).encode()


def test_batch_keeps_records_raw():
    batch = decode(_batch(), Batch)
    assert batch.batch_id == "B-1" and batch.bank_code == "B001"
    assert len(batch.records) == 2
    assert all(isinstance(r, msgspec.Raw) for r in batch.records)
    assert isinstance(decode(bytes(batch.records[0]), Record), Transaction)
    assert isinstance(decode(bytes(batch.records[1]), Record), Balance)


def test_batch_envelope_does_not_validate_records():
    # one bad record must reject only itself, later; the envelope takes anything
    batch = decode(_batch(records=[{"kind": "nonsense"}, 3, "x"]), Batch)
    assert len(batch.records) == 3


def test_batch_empty_records_accepted():
    assert decode(_batch(records=[]), Batch).records == []


@pytest.mark.parametrize("field", ["batch_id", "bank_code", "records"])
def test_batch_missing_field_named(field):
    with pytest.raises(ValidationFailure) as info:
        decode(_batch(**{field: DROP}), Batch)
    assert info.value.field == field
    assert info.value.message == "is required"
    assert f"`{field}`" in str(info.value)


def test_batch_unknown_field_rejected():
    with pytest.raises(ValidationFailure) as info:
        decode(_batch(extra=1), Batch)
    assert info.value.field == "extra"


def test_batch_records_not_a_list_rejected():
    with pytest.raises(ValidationFailure) as info:
        decode(_batch(records={}), Batch)
    assert info.value.field == "records"
    assert "a list" in info.value.message


def test_batch_empty_batch_id_rejected():
    with pytest.raises(ValidationFailure) as info:
        decode(_batch(batch_id=""), Batch)
    assert info.value.field == "batch_id"


def test_batch_schema_caps_records_at_the_limit():
    assert MAX_RECORDS_PER_BATCH == 10_000
    body = json.dumps(
        {"batch_id": "b", "bank_code": "B001", "records": [TXN] * (MAX_RECORDS_PER_BATCH + 1)}
    ).encode()
    with pytest.raises(ValidationFailure) as info:
        decode(body, BatchSchema)
    assert info.value.field == "records"
    assert "at most 10000 items" in info.value.message


# --- identifiers: printable, not only spaces -----------------------------------------------------

ID_FIELDS_TXN = [
    "record_id",
    "account_id",
    "counterparty_account",
    "counterparty_bank",
    "instruction_id",
    "product_id",
]
BAD_IDS = [
    " ",
    "   ",
    "\t",
    "\u3000",  # ideographic space
    "R-1\x00",
    "\x00R-1",
    "R\x01-1",
    "R-1\n",
    "R-1\x7f",
    "R-1\x85",  # C1 control (next line)
    "R-\u200e1",
    "R-\u200f1",
    "R-1\u202a",
    "R-1\u202e",
    "\u2066R-1",
    "R-1\u2069",
    "R-1\u061c",
]


@pytest.mark.parametrize("field", ID_FIELDS_TXN)
@pytest.mark.parametrize("value", BAD_IDS)
def test_transaction_ids_of_spaces_controls_or_bidi_marks_rejected(field, value):
    failure = failure_of(TXN, **{field: value})
    assert_in_words(failure, field)
    assert ID_RULE in str(failure)


@pytest.mark.parametrize("field", ["record_id", "account_id"])
@pytest.mark.parametrize("value", BAD_IDS)
def test_balance_ids_of_spaces_controls_or_bidi_marks_rejected(field, value):
    failure = failure_of(BAL, **{field: value})
    assert_in_words(failure, field)
    assert ID_RULE in str(failure)


@pytest.mark.parametrize("value", ["R 1", " R-1", "账户-1", "a\u00a0b", "R-1 ", "x" * 128, "😀"])
def test_ids_with_inner_spaces_or_any_printable_text_accepted(value):
    assert txn(record_id=value).record_id == value
    assert bal(account_id=value).account_id == value


@pytest.mark.parametrize("value", BAD_IDS + ["R 1", "账户-1", "a\u00a0b", "ok"])
def test_the_fast_id_check_agrees_with_the_documented_pattern(value):
    # records are checked by str methods, other Id fields by msgspec's pattern: the same rule
    assert id_breaks_rule(value) is (re.search(_ID_PATTERN, value) is None)


# --- times between 2000 and 2100 -----------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "1900-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
        "2106-02-07T06:28:16Z",
    ],
)
def test_times_outside_the_years_2000_to_2100_rejected_naming_the_field(when):
    for base, field in ((TXN, "booked_at"), (BAL, "as_of")):
        failure = failure_of(base, **{field: when})
        assert_in_words(failure, field)
        assert "2000" in failure.message and "2100" in failure.message


@pytest.mark.parametrize("when", ["2000-01-01T05:00:00+08:00", "2000-01-01T07:59:59+08:00"])
def test_a_time_written_in_2000_that_is_still_1999_in_utc_rejected(when):
    failure = failure_of(TXN, booked_at=when)
    assert_in_words(failure, "booked_at")
    assert "2000-01-01T00:00:00Z" in failure.message


@pytest.mark.parametrize(
    "when",
    [
        "2000-01-01T00:00:00Z",
        "2000-01-01T08:00:00+08:00",
        "2100-12-31T23:59:59Z",
        "2100-12-31T23:59:59-12:00",
    ],
)
def test_times_at_the_edges_of_the_range_accepted(when):
    assert txn(booked_at=when).booked_at == when
    assert bal(as_of=when).as_of == when


# --- a key given twice ---------------------------------------------------------------------------


def _twice(base: dict, key: str, first: object, second: object) -> bytes:
    """``base`` with ``key`` written twice, ``first`` before ``second``, as compact JSON."""
    body = {k: v for k, v in base.items() if k != key}
    text = json.dumps(body, separators=(",", ":"))[:-1]
    return f"{text},{json.dumps(key)}:{json.dumps(first)},{json.dumps(key)}:{json.dumps(second)}}}".encode()


def rejected_by_decoder(raw: bytes) -> ValidationFailure:
    with pytest.raises(msgspec.ValidationError) as info:
        RecordDecoder().decode(raw)
    return explain(info.value)


def test_the_amount_given_twice_is_rejected_not_booked_as_the_last():
    failure = rejected_by_decoder(_twice(TXN, "amount", "1.00", "1000000.00"))
    assert_in_words(failure, "amount")
    assert failure.message == DUPLICATE_RULE


@pytest.mark.parametrize(
    ("base", "key", "first", "second"),
    [
        (TXN, "record_id", "R-1", "R-2"),
        (TXN, "kind", "transaction", "transaction"),
        (TXN, "currency", "CNY", "CNY"),
        (TXN, "purpose", "a", None),  # a null: the slow path
        (TXN, "purpose", None, None),  # the same null twice: counting quotes alone cannot tell
        (TXN, "purpose", None, "a:b"),  # a colon inside a value
        (TXN, "purpose", 'say "hi"', "x"),  # escaped quotes
        (TXN, "purpose", "C:\\dir", "x"),  # an escaped backslash: the slow path
        (TXN, "counterparty_name", "某某公司", "other"),
        (BAL, "balance", "1.00", "2.00"),
        (BAL, "customer_liabilities", "1.00", "1.00"),
        (BAL, "as_of", "2026-11-25T17:00:00Z", "2026-11-25T17:00:00Z"),
    ],
)
def test_any_key_given_twice_is_rejected_naming_it(base, key, first, second):
    failure = rejected_by_decoder(_twice(base, key, first, second))
    assert failure.field == key and failure.message == DUPLICATE_RULE


def test_a_key_repeated_under_another_spelling_is_still_the_same_key():
    raw = json.dumps(TXN).encode()[:-1] + b', "amo\\u0075nt": "9.00"}'
    assert rejected_by_decoder(raw).field == "amount"


def test_a_key_repeated_with_spaces_before_its_colon_is_found():
    raw = json.dumps({**TXN, "currency": "CNY"}).encode()[:-1] + b', "currency" : "USD"}'
    assert rejected_by_decoder(raw).field == "currency"


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"currency": "USD"},
        {"purpose": 'a "quoted" word and a \\ backslash'},
        {"purpose": None, "product_id": None},
        {"counterparty_name": "某某科技有限公司", "purpose": "还款"},
        {"purpose": '":","amount":"5.00"'},  # a key-like text inside a value
    ],
)
def test_records_naming_each_key_once_decode_whatever_their_spelling(changes):
    base = {**TXN, **changes}
    for raw in (json.dumps(base).encode(), json.dumps(base, ensure_ascii=False, indent=2).encode()):
        assert RecordDecoder().decode(raw) == decode(raw, Record)
    assert isinstance(RecordDecoder().decode(msgspec.Raw(json.dumps(BAL).encode())), Balance)


@pytest.mark.parametrize("raw", [b'{"kind":"transaction","record_id":"\xff"}', b'{"x":' + b"[" * 100_000])
def test_undecodable_record_bytes_raise_a_decode_error(raw):
    with pytest.raises(msgspec.DecodeError) as info:
        RecordDecoder().decode(raw)
    assert explain(info.value).message.startswith("is not valid JSON")
