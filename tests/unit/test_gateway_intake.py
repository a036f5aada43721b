"""services/gateway/intake.py: record conversion and the batch envelope checks (no I/O)."""

from __future__ import annotations

import json

import pytest

from schemas.messages import BalanceRecord, TxnRecord
from schemas.records import Balance, Record, Transaction
from schemas.validation import decode
from services.auth import Principal
from services.gateway.errors import ApiError
from services.gateway.intake import parse_batch, to_message_record

BANK = Principal(token_id="tok-1", role="bank", bank_code="B001")

TXN = {
    "kind": "transaction",
    "record_id": "R-1",
    "account_id": "6222020000000001",
    "direction": "debit",
    "amount": "12345.67",
    "booked_at": "2026-11-25T09:30:00+08:00",
    "counterparty_account": "6222020000000099",
    "counterparty_bank": "B002",
    "channel": "BEPS",
}
BAL = {
    "kind": "balance",
    "record_id": "R-2",
    "account_id": "6222020000000001",
    "as_of": "2026-11-25T17:00:00Z",
    "balance": "-12.50",
}


def _record(base: dict, **changes: object):
    return decode(json.dumps({**base, **changes}).encode(), Record)


def _batch(records=None, **changes: object) -> bytes:
    body = {"batch_id": "BATCH-1", "bank_code": "B001", "records": [TXN, BAL] if records is None else records}
    body.update(changes)
    return json.dumps(body).encode()


# --- to_message_record ---------------------------------------------------------------------------


def test_transaction_converted_with_exact_cents_and_epoch():
    record = to_message_record(_record(TXN))
    assert isinstance(record, TxnRecord)
    assert record.amount_cents == 1234567
    assert record.booked_at == 1795570200  # 2026-11-25T01:30:00Z
    assert record.credit is False
    assert record.channel == "BEPS"
    assert record.currency == "CNY"
    assert record.record_id == "R-1" and record.account_id == "6222020000000001"
    assert record.counterparty_account == "6222020000000099" and record.counterparty_bank == "B002"
    assert record.balance_after_cents is None


def test_credit_direction_converted():
    assert to_message_record(_record(TXN, direction="credit")).credit is True


def test_small_amount_is_exact():
    assert to_message_record(_record(TXN, amount="0.1")).amount_cents == 10
    assert to_message_record(_record(TXN, amount="0.29")).amount_cents == 29


def test_transaction_optional_fields_carried():
    record = to_message_record(
        _record(
            TXN,
            counterparty_name="某公司",
            instruction_id="I-9",
            purpose="还款",
            product_id="P-1",
            balance_after="-0.50",
        )
    )
    assert record.counterparty_name == "某公司"
    assert record.instruction_id == "I-9"
    assert record.purpose == "还款"
    assert record.product_id == "P-1"
    assert record.balance_after_cents == -50


def test_time_with_fraction_and_z_converted():
    assert to_message_record(_record(TXN, booked_at="2026-11-25T01:30:00.999999999Z")).booked_at == 1795570200


def test_balance_converted_with_signed_cents():
    record = to_message_record(_record(BAL, customer_liabilities="1000.01"))
    assert isinstance(record, BalanceRecord)
    assert record.balance_cents == -1250
    assert record.customer_liabilities_cents == 100001
    assert record.as_of == 1795626000  # 2026-11-25T17:00:00Z = 01:30Z + 15.5 h
    assert record.currency == "CNY"


def test_balance_without_liabilities():
    assert to_message_record(_record(BAL)).customer_liabilities_cents is None


def test_types_decoded_before_conversion():
    assert isinstance(_record(TXN), Transaction) and isinstance(_record(BAL), Balance)


# --- parse_batch ---------------------------------------------------------------------------------


def test_parse_batch_accepts_own_bank():
    batch = parse_batch(_batch(), BANK)
    assert batch.batch_id == "BATCH-1"
    assert batch.bank_code == "B001"
    assert len(batch.records) == 2


def test_parse_batch_other_bank_is_403():
    with pytest.raises(ApiError) as info:
        parse_batch(_batch(bank_code="B002"), BANK)
    assert info.value.status == 403
    assert info.value.field == "bank_code"
    assert "B001" in info.value.message and "B002" in info.value.message


@pytest.mark.parametrize("principal", [Principal("t", "admin"), Principal("t", "desk", region="22")])
def test_parse_batch_non_bank_token_is_403(principal):
    with pytest.raises(ApiError) as info:
        parse_batch(_batch(), principal)
    assert info.value.status == 403


def test_parse_batch_over_10000_records_is_413():
    with pytest.raises(ApiError) as info:
        parse_batch(_batch(records=[{}] * 10_001), BANK)
    assert info.value.status == 413
    assert info.value.field == "records"
    assert "10001" in info.value.message


def test_parse_batch_exactly_10000_records_accepted():
    assert len(parse_batch(_batch(records=[{}] * 10_000), BANK).records) == 10_000


def test_parse_batch_missing_batch_id_is_422_naming_it():
    body = json.dumps({"bank_code": "B001", "records": []}).encode()
    with pytest.raises(ApiError) as info:
        parse_batch(body, BANK)
    assert info.value.status == 422
    assert info.value.field == "batch_id"
    assert "`batch_id`" in info.value.message


def test_parse_batch_records_not_a_list_is_422():
    with pytest.raises(ApiError) as info:
        parse_batch(_batch(records="nope"), BANK)
    assert info.value.status == 422
    assert info.value.field == "records"


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"batch_id": "x",', b"\xff\xfe"])
def test_parse_batch_invalid_json_is_400(body):
    with pytest.raises(ApiError) as info:
        parse_batch(body, BANK)
    assert info.value.status == 400


def test_parse_batch_bad_records_do_not_reject_the_envelope():
    batch = parse_batch(_batch(records=[{**TXN, "amount": "1.234"}, "garbage"]), BANK)
    assert len(batch.records) == 2
