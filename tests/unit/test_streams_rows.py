"""streams/rows.py: the ClickHouse rows of one message, institution flows counted once."""

from __future__ import annotations

from decimal import Decimal

from schemas.messages import RecordBatchMessage, TxnRecord
from streams.rows import AGG_INSTITUTION_COLUMNS, Rows, message_rows

ACCOUNTS = {
    "OWN-A": ("INST1", "own_operating", "220102"),
    "OWN-B": ("INST1", "own_operating", "220102"),
    "CUST": ("INST1", "customer_custody", "220102"),
    "OTHER-OWN": ("INST2", "own_operating", "220201"),
}


def enrich(account_id: str) -> tuple[str, str, str]:
    return ACCOUNTS.get(account_id, ("", "", ""))


def txn(rid: str, account: str, credit: bool, cents: int, counterparty: str) -> TxnRecord:
    return TxnRecord(
        rid, account, credit, cents, 1_764_000_000, counterparty, "B002", "HVPS", "CNY",
        None, None, None, None, None,
    )  # fmt: skip


def institution_rows(records: list[TxnRecord]) -> dict[str, tuple[Decimal, Decimal]]:
    rows = Rows()
    message_rows(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, records), enrich, rows)
    columns, table_rows = rows.tables.get("fundwatch.agg_institution", (AGG_INSTITUTION_COLUMNS, []))
    day = [dict(zip(columns, row, strict=True)) for row in table_rows if row[1] == "day"]
    return {row["institution_id"]: (row["inflow"], row["outflow"]) for row in day}


def test_both_legs_of_a_move_between_own_accounts_are_not_institution_flows():
    legs = [txn("r1", "OWN-A", False, 500_00, "OWN-B"), txn("r2", "OWN-B", True, 500_00, "OWN-A")]
    assert institution_rows(legs) == {}


def test_account_flows_keep_both_legs():
    rows = Rows()
    legs = [txn("r1", "OWN-A", False, 500_00, "OWN-B"), txn("r2", "OWN-B", True, 500_00, "OWN-A")]
    message_rows(RecordBatchMessage("B001/b/0", "B001", "b", 1_764_000_000, legs), enrich, rows)
    columns, table_rows = rows.tables["fundwatch.agg_account"]
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
