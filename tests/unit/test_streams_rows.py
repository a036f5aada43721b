"""streams/rows.py: the ClickHouse columns of the messages of a take, institution flows counted
once, every figure in its own currency, money in cents until storage."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.messages import BalanceRecord, RecordBatchMessage, TxnRecord
from services.storage.base import Scaled, StorageError, block_length
from streams.rows import (
    AGG_ACCOUNT_TABLE,
    AGG_INSTITUTION_TABLE,
    RAW_BALANCE_COLUMNS,
    RAW_BALANCE_TABLE,
    RAW_TXN_COLUMNS,
    RAW_TXN_TABLE,
    Columns,
    message_columns,
)

ACCOUNTS = {
    "OWN-A": ("INST1", "own_operating", "220102"),
    "OWN-B": ("INST1", "own_operating", "220102"),
    "CUST": ("INST1", "customer_custody", "220102"),
    "OTHER-OWN": ("INST2", "own_operating", "220201"),
}


def enrich(account_id: str) -> tuple[str, str, str]:
    return ACCOUNTS.get(account_id, ("", "", ""))


def txn(
    rid: str, account: str, credit: bool, cents: int, counterparty: str, currency: str = "CNY"
) -> TxnRecord:
    return TxnRecord(
        rid, account, credit, cents, 1_764_000_000, counterparty, "B002", "HVPS", currency,
        None, None, None, None, None,
    )  # fmt: skip


def take(*messages: RecordBatchMessage) -> Columns:
    columns = Columns()
    for message in messages:
        message_columns(message, enrich, columns)
    return columns


def named_rows(columns: Columns, table: str) -> list[dict]:
    block = columns.tables[table]
    return [dict(zip(block.names, row, strict=True)) for row in block.rows()]


def institution_rows(records: list[TxnRecord]) -> dict[str, tuple[Decimal, Decimal]]:
    columns = take(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, records))
    if AGG_INSTITUTION_TABLE not in columns.tables:
        return {}
    day = [row for row in named_rows(columns, AGG_INSTITUTION_TABLE) if row["grain"] == "day"]
    return {row["institution_id"]: (row["inflow"], row["outflow"]) for row in day}


def test_both_legs_of_a_move_between_own_accounts_are_not_institution_flows():
    legs = [txn("r1", "OWN-A", False, 500_00, "OWN-B"), txn("r2", "OWN-B", True, 500_00, "OWN-A")]
    assert institution_rows(legs) == {}


def test_account_flows_keep_both_legs():
    legs = [txn("r1", "OWN-A", False, 500_00, "OWN-B"), txn("r2", "OWN-B", True, 500_00, "OWN-A")]
    columns = take(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, legs))
    accounts = set(columns.tables[AGG_ACCOUNT_TABLE].values["account_id"])
    assert accounts == {"OWN-A", "OWN-B"}


def test_money_from_outside_and_to_another_institution_counts_once_on_each_side():
    records = [
        txn("r1", "CUST", True, 1_000_00, "6217000000000001"),  # an investor outside
        txn("r2", "OWN-A", False, 300_00, "OTHER-OWN"),  # paid to another institution
        txn("r3", "OTHER-OWN", True, 300_00, "OWN-A"),  # ... whose bank reports the credit
        txn("r4", "CUST", False, 200_00, "OWN-A"),  # internal: custody to own
    ]
    assert institution_rows(records) == {
        "INST1": (Decimal("1000.00"), Decimal("300.00")),
        "INST2": (Decimal("300.00"), Decimal("0.00")),
    }


def day_rows(table: str, records: list[TxnRecord]) -> dict[tuple[str, str], dict]:
    columns = take(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, records))
    key = columns.tables[table].names[0]
    return {(row[key], row["currency"]): row for row in named_rows(columns, table) if row["grain"] == "day"}


def test_one_message_in_two_currencies_makes_a_row_per_currency_never_a_sum():
    records = [
        txn("r1", "CUST", True, 1_000_00, "6217000000000001"),
        txn("r2", "CUST", True, 10_00, "6217000000000002", currency="USD"),
    ]
    accounts = day_rows(AGG_ACCOUNT_TABLE, records)
    assert set(accounts) == {("CUST", "CNY"), ("CUST", "USD")}
    assert (accounts["CUST", "CNY"]["inflow"], accounts["CUST", "CNY"]["n_in"]) == (Decimal("1000.00"), 1)
    assert (accounts["CUST", "USD"]["inflow"], accounts["CUST", "USD"]["n_in"]) == (Decimal("10.00"), 1)
    assert accounts["CUST", "USD"]["counterparties"] == ["6217000000000002"]
    assert {row["msg_id"] for row in accounts.values()} == {"B001/b/0"}
    institutions = day_rows(AGG_INSTITUTION_TABLE, records)
    assert {key: row["inflow"] for key, row in institutions.items()} == {
        ("INST1", "CNY"): Decimal("1000.00"),
        ("INST1", "USD"): Decimal("10.00"),
    }


def test_an_unreadable_message_is_counted_and_left_out_not_fatal():
    from schemas.messages import RecordBatchMessage, decode_batch, encode_batch
    from streams import metrics
    from streams.records import readable

    good = encode_batch(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, []))
    before = metrics.MESSAGES_UNREADABLE.labels("records")._value.get()
    taken = readable([b'["not", "a message"]', good, b"\xff"], decode_batch, "records")
    assert [m.msg_id for m in taken] == ["B001/b/0"]
    assert metrics.MESSAGES_UNREADABLE.labels("records")._value.get() == before + 2


def test_raw_records_are_gathered_column_by_column_as_the_tables_take_them():
    first = TxnRecord(
        "r1", "CUST", True, 1_234_56, 1_764_000_100, "6217000000000001", "B002", "HVPS", "CNY",
        "Zhang San", "INS-1", "subscription", "P-1", -5_00,
    )  # fmt: skip
    second = txn("r2", "OWN-A", False, 1, "OTHER-OWN")
    balance = BalanceRecord("b1", "NOBODY", 1_764_000_200, -12_50, None, "USD")
    later = BalanceRecord("b2", "CUST", 1_764_000_300, 0, 99_999_999_999_99, "CNY")
    columns = take(
        RecordBatchMessage("B001/b1/0", "B001", "b1", 1_764_000_000, [first, balance, second]),
        RecordBatchMessage("B003/b2/1", "B003", "b2", 1_764_000_001, [later]),
    )
    assert list(columns.tables) == [
        RAW_TXN_TABLE,
        RAW_BALANCE_TABLE,
        AGG_ACCOUNT_TABLE,
        AGG_INSTITUTION_TABLE,
    ]
    assert columns.tables[RAW_TXN_TABLE].names == RAW_TXN_COLUMNS
    assert columns.tables[RAW_TXN_TABLE].rows() == [
        ["B001", "r1", "CUST", "credit", Decimal("1234.56"), "CNY", 1_764_000_100, "6217000000000001", "B002",
         "Zhang San", "HVPS", "INS-1", "subscription", "P-1", Decimal("-5.00"), "b1", "B001/b1/0", 1_764_000_000,
         "INST1", "customer_custody", "220102"],
        ["B001", "r2", "OWN-A", "debit", Decimal("0.01"), "CNY", 1_764_000_000, "OTHER-OWN", "B002", None,
         "HVPS", None, None, None, None, "b1", "B001/b1/0", 1_764_000_000, "INST1", "own_operating", "220102"],
    ]  # fmt: skip
    assert columns.tables[RAW_BALANCE_TABLE].names == RAW_BALANCE_COLUMNS
    assert columns.tables[RAW_BALANCE_TABLE].rows() == [
        ["B001", "b1", "NOBODY", 1_764_000_200, Decimal("-12.50"), None, "USD", "b1", "B001/b1/0",
         1_764_000_000, "", "", ""],
        ["B003", "b2", "CUST", 1_764_000_300, Decimal("0.00"), Decimal("99999999999.99"), "CNY", "b2",
         "B003/b2/1", 1_764_000_001, "INST1", "customer_custody", "220102"],
    ]  # fmt: skip
    assert columns.count() == 2 + 2 + 4 + 2  # two accounts and one institution, each by hour and day


def test_money_goes_to_storage_as_cents_and_every_column_is_as_long_as_the_others():
    records = [
        txn("r1", "CUST", True, 1_000_00, "6217000000000001"),
        txn("r2", "OWN-A", False, 3_00, "OTHER-OWN"),
        BalanceRecord("b1", "CUST", 1_764_000_200, -12_50, None, "CNY"),
    ]
    columns = take(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, records))
    money = {
        RAW_TXN_TABLE: {"amount": [1_000_00, 3_00], "balance_after": [None, None]},
        RAW_BALANCE_TABLE: {"balance": [-12_50], "customer_liabilities": [None]},
    }
    for table, block in columns.tables.items():
        values = block.columns()
        assert list(values) == list(block.names)
        assert block_length(values) == len(block) > 0
        for name, column in values.items():
            if name in money.get(table, {}):
                assert column == Scaled(money[table][name], 2)
            elif name in ("inflow", "outflow"):
                assert isinstance(column, Scaled) and column.scale == 2
            else:
                assert isinstance(column, list)
    partials = named_rows(columns, AGG_ACCOUNT_TABLE)
    assert {(row["account_id"], row["grain"]): row["inflow"] for row in partials} == {
        ("CUST", "hour"): Decimal("1000.00"), ("CUST", "day"): Decimal("1000.00"),
        ("OWN-A", "hour"): Decimal("0.00"), ("OWN-A", "day"): Decimal("0.00"),
    }  # fmt: skip
    assert {row["counterparties"] == sorted(row["counterparties"]) for row in partials} == {True}


def test_a_message_of_balances_alone_writes_no_transactions_and_no_partials():
    columns = take(
        RecordBatchMessage(
            "B001/b/0", "B001", "b", 1_764_000_000, [BalanceRecord("b1", "CUST", 1, 0, None, "CNY")]
        )
    )
    assert list(columns.tables) == [RAW_BALANCE_TABLE]
    assert take().tables == {} and take().count() == 0


def test_columns_of_different_lengths_are_refused_before_any_backend_sees_them():
    with pytest.raises(StorageError, match="different lengths"):
        block_length({"a": [1, 2], "b": Scaled([1], 2)})
    assert block_length({}) == 0
