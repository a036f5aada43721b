"""streams/rows.py: the ClickHouse rows of one message, institution flows counted once, every
figure in its own currency."""

from __future__ import annotations

from decimal import Decimal

from schemas.messages import RecordBatchMessage, TxnRecord
from streams.rows import (
    AGG_ACCOUNT_TABLE,
    AGG_INSTITUTION_COLUMNS,
    AGG_INSTITUTION_TABLE,
    Rows,
    message_rows,
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


def institution_rows(records: list[TxnRecord]) -> dict[str, tuple[Decimal, Decimal]]:
    rows = Rows()
    message_rows(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, records), enrich, rows)
    columns, table_rows = rows.tables.get(AGG_INSTITUTION_TABLE, (AGG_INSTITUTION_COLUMNS, []))
    day = [dict(zip(columns, row, strict=True)) for row in table_rows if row[1] == "day"]
    return {row["institution_id"]: (row["inflow"], row["outflow"]) for row in day}


def test_both_legs_of_a_move_between_own_accounts_are_not_institution_flows():
    legs = [txn("r1", "OWN-A", False, 500_00, "OWN-B"), txn("r2", "OWN-B", True, 500_00, "OWN-A")]
    assert institution_rows(legs) == {}


def test_account_flows_keep_both_legs():
    rows = Rows()
    legs = [txn("r1", "OWN-A", False, 500_00, "OWN-B"), txn("r2", "OWN-B", True, 500_00, "OWN-A")]
    message_rows(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, legs), enrich, rows)
    columns, table_rows = rows.tables[AGG_ACCOUNT_TABLE]
    accounts = {row[0] for row in table_rows}
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
    rows = Rows()
    message_rows(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, records), enrich, rows)
    columns, table_rows = rows.tables[table]
    named = [dict(zip(columns, row, strict=True)) for row in table_rows]
    return {(row[columns[0]], row["currency"]): row for row in named if row["grain"] == "day"}


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
