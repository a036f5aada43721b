"""schemas/validation.py decode(): what msgspec takes or stumbles on without a validation error —
bytes that are not UTF-8, nesting that exhausts the stack, keys given twice — answered as a
ValidationFailure naming the field, never another exception."""

from __future__ import annotations

import json

import msgspec
import pytest

from schemas.api import SubscriptionRequest, TokenRequest
from schemas.fields import Amount, Currency, Id, Region, RegionPrefix, Uscc
from schemas.records import Batch
from schemas.reference import Institution
from schemas.validation import (
    DUPLICATE_RULE,
    ValidationFailure,
    decode,
    duplicate_key,
    duplicate_path,
    envelope_duplicate,
)

TXN = {
    "kind": "transaction",
    "record_id": "R-1",
    "account_id": "6222020000000001",
    "direction": "credit",
    "amount": "1.00",
    "booked_at": "2026-11-25T09:30:00+08:00",
    "counterparty_account": "6222020000000099",
    "counterparty_bank": "B002",
    "channel": "HVPS",
}


def refused(body: bytes, type_) -> ValidationFailure:
    with pytest.raises(ValidationFailure) as info:
        decode(body, type_)
    return info.value


def malformed(failure: ValidationFailure) -> bool:
    # callers answer 400 rather than 422 for these (intake, reference, subscriptions, tokens)
    return failure.message.startswith("is not valid JSON")


# --- not UTF-8 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "type_"),
    [
        (b'{"batch_id": "B-\xff", "bank_code": "B001", "records": []}', Batch),
        # inside a record, which the envelope leaves raw: msgspec never looked at these bytes
        (b'{"batch_id": "B", "bank_code": "B001", "records": [{"record_id": "\xc3\x28"}]}', Batch),
        (b'{"role": "admin\xfe"}', TokenRequest),
        (b'{"url": "http://a.example/\xed\xa0\x80"}', SubscriptionRequest),  # an encoded surrogate
        (b'[{"institution_id": "\xf8\x88\x80\x80\x80"}]', list[msgspec.Raw]),
        (b"\xef\xbb\xbf\xff{}", TokenRequest),
    ],
)
def test_bytes_that_are_not_utf8_are_malformed(body, type_):
    failure = refused(body, type_)
    assert malformed(failure)
    assert "UTF-8" in failure.message


def test_utf8_text_is_taken():
    ask = decode('{"url": "http://例子.example/钩子"}'.encode(), SubscriptionRequest)
    assert ask.url == "http://例子.example/钩子"


# --- nesting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "type_"),
    [
        (b"[" * 100_000, TokenRequest),
        (b"[" * 100_000, Batch),
        (b"[" * 100_000, list[msgspec.Raw]),
        (b'{"batch_id": "B", "bank_code": "B001", "records": [' + b"[" * 100_000, Batch),
        (
            b'{"batch_id": "B", "bank_code": "B001", "records": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}",
            Batch,
        ),
        (b'{"url": "http://a.example/", "filter": ' + b'{"a":' * 100_000, SubscriptionRequest),
    ],
)
def test_nesting_beyond_the_stack_is_malformed_not_a_crash(body, type_):
    assert malformed(refused(body, type_))


@pytest.mark.parametrize(
    ("body", "type_"),
    [(b'{"role": "admin"', TokenRequest), (b'["x", ', TokenRequest), (b'{"batch_id": 5, ', Batch)],
)
def test_a_body_that_is_no_json_is_malformed_even_when_its_first_value_has_the_wrong_type(body, type_):
    assert malformed(refused(body, type_))


def test_json_of_the_wrong_shape_is_invalid_not_malformed():
    failure = refused(b'{"batch_id": "B", "bank_code": "B001", "records": {}}', Batch)
    assert not malformed(failure) and failure.field == "records"


# --- keys given twice ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "type_", "field"),
    [
        (b'{"role": "desk", "region": "22", "role": "desk"}', TokenRequest, "role"),
        (b'{"role": "bank", "bank_code": "B001", "bank_code": "B002"}', TokenRequest, "bank_code"),
        (
            b'{"url": "http://a.example/", "filter": {"region": "22", "region": "33"}}',
            SubscriptionRequest,
            "filter.region",
        ),
        (b'{"url": "http://a.example/", "url": "http://b.example/"}', SubscriptionRequest, "url"),
        (b'{"batch_id": "A", "bank_code": "B001", "batch_id": "B", "records": []}', Batch, "batch_id"),
        (b'{"batch_id": "A", "bank_code": "B001", "records": [], "bank_code": "B002"}', Batch, "bank_code"),
        (b'{"batch_id": "A", "bank_code": "B001", "records": [], "records": []}', Batch, "records"),
        (b'{"batch_id": "A", "bank_code": "B001", "records": [], "rec\\u006frds": []}', Batch, "records"),
        (b'{"batch_id": "A", "rec\\u006frds": [], "bank_code": "B001", "records": []}', Batch, "records"),
        (b'[{"a": 1}, {"b": {"c": 1, "c": 2}}]', list[msgspec.Raw], "[1].b.c"),
    ],
)
def test_a_request_object_naming_a_key_twice_is_refused_naming_it(body, type_, field):
    failure = refused(body, type_)
    assert failure.field == field and failure.message == DUPLICATE_RULE
    assert not malformed(failure)  # 422: valid JSON that breaks a rule


def test_the_envelope_check_leaves_the_records_to_their_own_decoder():
    # a record naming a key twice is rejected by RecordDecoder, by its index, not the whole batch
    record = json.dumps(TXN)[:-1] + ', "amount": "1000000.00"}'
    body = f'{{"batch_id": "A", "bank_code": "B001", "records": [{record}]}}'.encode()
    assert len(decode(body, Batch).records) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"batch_id": "A", "bank_code": "B001", "records": [{"x": "records"}]}',  # the name as text
        b'{"records": [], "batch_id": "A", "bank_code": "B001"}',  # keys after the records
        b'{"batch_id": "A\\u0000", "bank_code": "B001", "records": []}',
    ],
)
def test_envelopes_off_the_fast_path_are_scanned_whole_and_agree(body):
    assert envelope_duplicate(body, "records") == duplicate_path(body)


def test_keys_inside_values_and_in_different_objects_are_no_repeats():
    body = b'{"a": "\\"a\\": 1", "b": [{"a": 1}, {"a": 2}], "c": {"a": {"a": 3}}}'
    assert duplicate_path(body) is None
    assert duplicate_key(b'{"a": "\\"a\\":", "b": "a"}') is None


# --- a final newline -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "good"),
    [
        (Amount, "1.00"),
        (Currency, "CNY"),
        (Region, "220102"),
        (RegionPrefix, "22"),
        (Uscc, "91220101MA14TXQ23K"),
        (Id, "R-1"),
    ],
)
def test_no_pattern_takes_a_final_newline(type_, good):
    assert msgspec.convert(good, type_) == good
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(good + "\n", type_)


def test_reference_ids_follow_the_id_rule_through_the_pattern():
    item = {
        "institution_id": "I\u202e1",
        "name": "n",
        "uscc": "91220101MA14TXQ23K",
        "type": "other",
        "region": "220102",
    }
    failure = refused(json.dumps([item]).encode(), list[Institution])
    assert failure.field == "[0].institution_id"
    assert "control characters" in failure.message and "^" not in failure.message


@pytest.mark.parametrize(("key", "named"), [("", '""'), ("a`b", "a`b"), ("`", "`")])
def test_an_unknown_key_is_named_whatever_it_holds(key, named):
    failure = refused(json.dumps({"role": "admin", key: 1}).encode(), TokenRequest)
    assert failure.field == named and failure.message == "is not a field of this kind"


DEEP_BODIES_WITH_THE_PAUSE_CLOCK = """
import gc
from schemas.records import Record
from schemas.validation import ValidationFailure, decode
from services.collector import PauseClock

gc.callbacks.append(PauseClock())
gc.set_threshold(50)  # a collection every few lists the decode builds
for depth in range(800, 1_100):
    try:
        decode(b"[" * depth + b"1e999[[", Record)
    except ValidationFailure as failure:
        assert "is not valid JSON" in str(failure), failure
    else:
        raise AssertionError(depth)
assert gc.isenabled()
print("refused")
"""


def test_deep_nesting_refused_without_a_collector_callback_failing():
    """A collection started deep in the second look's decode could not call the pause clock
    (services/collector.py), and Python reports that on stderr; the decode holds the collector
    off. A fresh interpreter at the top of its stack, as a server's handler nearly is: under the
    test runner's frames the window where a callback cannot be called is seldom hit."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", DEEP_BODIES_WITH_THE_PAUSE_CLOCK],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "refused", "")
