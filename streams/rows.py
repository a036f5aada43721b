"""ClickHouse values for the processed messages of a take: raw records and aggregate partials,
gathered per table column by column, then written in one insert per table.

Columns rather than rows: both backends take a block column by column (chDB as Arrow arrays,
clickhouse-driver with ``columnar=True``), so rows would only be turned around again on the
storage thread; and a column is filled from a message's records in one pass of C-level
attribute getters instead of a list built per record. Money stays in integer cents until the
backend (services/storage/base.py, Scaled).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

from models.aggregates import FlowPartial, WindowKey, flow_partials
from schemas.ddl import DATABASE
from schemas.fields import cents_to_decimal
from schemas.messages import BalanceRecord, RecordBatchMessage, TxnRecord
from services.storage.base import ColumnValues, Scaled

RAW_TXN_TABLE = f"{DATABASE}.raw_transactions"
RAW_BALANCE_TABLE = f"{DATABASE}.raw_balances"
RAW_TXN_COLUMNS = (
    "bank_code", "record_id", "account_id", "direction", "amount", "currency", "booked_at",
    "counterparty_account", "counterparty_bank", "counterparty_name", "channel", "instruction_id",
    "purpose", "product_id", "balance_after", "batch_id", "msg_id", "received_at",
    "institution_id", "account_role", "region",
)  # fmt: skip
RAW_BALANCE_COLUMNS = (
    "bank_code", "record_id", "account_id", "as_of", "balance", "customer_liabilities", "currency",
    "batch_id", "msg_id", "received_at", "institution_id", "account_role", "region",
)  # fmt: skip
# Aggregate partials are kept per currency (schemas/ddl.py migration 5); agg_account and
# agg_institution, whose keys have no currency, are no longer written.
AGG_ACCOUNT_TABLE = f"{DATABASE}.agg_account_ccy"
AGG_INSTITUTION_TABLE = f"{DATABASE}.agg_institution_ccy"
AGG_ACCOUNT_COLUMNS = (
    "account_id", "grain", "window_start", "currency", "msg_id", "institution_id",
    "inflow", "outflow", "n_in", "n_out", "counterparties",
)  # fmt: skip
AGG_INSTITUTION_COLUMNS = (
    "institution_id", "grain", "window_start", "currency", "msg_id", "region",
    "inflow", "outflow", "n_in", "n_out", "counterparties",
)  # fmt: skip

# Each table's columns and which of them are Decimal(18, 2) money held as cents
TABLES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    RAW_TXN_TABLE: (RAW_TXN_COLUMNS, frozenset({"amount", "balance_after"})),
    RAW_BALANCE_TABLE: (RAW_BALANCE_COLUMNS, frozenset({"balance", "customer_liabilities"})),
    AGG_ACCOUNT_TABLE: (AGG_ACCOUNT_COLUMNS, frozenset({"inflow", "outflow"})),
    AGG_INSTITUTION_TABLE: (AGG_INSTITUTION_COLUMNS, frozenset({"inflow", "outflow"})),
}

# Record fields stored as they are: (column, getter)
_TXN_FIELDS = tuple(
    (column, attrgetter(name))
    for column, name in (
        ("record_id", "record_id"), ("amount", "amount_cents"), ("currency", "currency"),
        ("booked_at", "booked_at"), ("counterparty_account", "counterparty_account"),
        ("counterparty_bank", "counterparty_bank"), ("counterparty_name", "counterparty_name"),
        ("channel", "channel"), ("instruction_id", "instruction_id"), ("purpose", "purpose"),
        ("product_id", "product_id"), ("balance_after", "balance_after_cents"),
    )
)  # fmt: skip
_BALANCE_FIELDS = tuple(
    (column, attrgetter(name))
    for column, name in (
        ("record_id", "record_id"), ("as_of", "as_of"), ("balance", "balance_cents"),
        ("customer_liabilities", "customer_liabilities_cents"), ("currency", "currency"),
    )
)  # fmt: skip
_PARTIAL_FIELDS = tuple(
    (column, attrgetter(name))
    for column, name in (
        ("inflow", "inflow_cents"), ("outflow", "outflow_cents"), ("n_in", "n_in"), ("n_out", "n_out"),
    )
)  # fmt: skip
_ACCOUNT_ID = attrgetter("account_id")
_KEY_PARTS = (("grain", itemgetter(1)), ("window_start", itemgetter(2)), ("currency", itemgetter(3)))
_ENRICHMENT = (("institution_id", itemgetter(0)), ("account_role", itemgetter(1)), ("region", itemgetter(2)))


class TableColumns:
    """One table's values, a list per column, each as long as the others."""

    def __init__(self, names: tuple[str, ...], cents: frozenset[str]) -> None:
        self.names = names
        self.cents = cents
        self.values: dict[str, list[Any]] = {name: [] for name in names}

    def __len__(self) -> int:
        return len(self.values[self.names[0]])

    def columns(self) -> dict[str, ColumnValues]:
        """The block for Storage.insert_columns, money as integer cents."""
        return {
            name: Scaled(values, 2) if name in self.cents else values for name, values in self.values.items()
        }

    def rows(self) -> list[list[Any]]:
        """The same values row by row with money as Decimal, as Storage.insert takes them."""
        columns = [
            [None if cents is None else cents_to_decimal(cents) for cents in values]
            if name in self.cents
            else values
            for name, values in self.values.items()
        ]
        return [list(row) for row in zip(*columns, strict=True)]


@dataclass
class Columns:
    """The tables of a take, each with its columns, in the order they were first written."""

    tables: dict[str, TableColumns] = field(default_factory=dict)

    def table(self, name: str) -> TableColumns:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = TableColumns(*TABLES[name])
        return table

    def count(self) -> int:
        return sum(len(table) for table in self.tables.values())


def message_columns(
    message: RecordBatchMessage,
    enrich: Callable[[str], tuple[str, str, str]],
    into: Columns,
) -> None:
    """Append the values one message produces to ``into``."""
    records = message.records
    enriched = {account: enrich(account) for account in {r.account_id for r in records}}
    txns = [r for r in records if type(r) is TxnRecord]
    if txns:
        values = into.table(RAW_TXN_TABLE).values
        for column, get in _TXN_FIELDS:
            values[column] += map(get, txns)
        values["direction"] += ["credit" if txn.credit else "debit" for txn in txns]
        _add_account_fields(values, message, list(map(_ACCOUNT_ID, txns)), enriched)
    balances = [r for r in records if type(r) is BalanceRecord]
    if balances:
        values = into.table(RAW_BALANCE_TABLE).values
        for column, get in _BALANCE_FIELDS:
            values[column] += map(get, balances)
        _add_account_fields(values, message, list(map(_ACCOUNT_ID, balances)), enriched)

    by_account = flow_partials(txns, _ACCOUNT_ID)
    _add_partials(into, AGG_ACCOUNT_TABLE, message.msg_id, by_account, lambda account: enriched[account][0])
    region_of = {inst: region for inst, _, region in enriched.values() if inst}
    by_institution = flow_partials(txns, lambda t: institution_side(t, enriched, enrich))
    _add_partials(
        into, AGG_INSTITUTION_TABLE, message.msg_id, by_institution, lambda inst: region_of.get(inst, "")
    )


def _add_account_fields(
    values: dict[str, list[Any]],
    message: RecordBatchMessage,
    accounts: list[str],
    enriched: dict[str, tuple[str, str, str]],
) -> None:
    """The columns a raw record takes from its message and from its account's reference data."""
    count = len(accounts)
    values["account_id"] += accounts
    values["bank_code"] += [message.bank_code] * count
    values["batch_id"] += [message.batch_id] * count
    values["msg_id"] += [message.msg_id] * count
    # DateTime columns take epoch seconds as they are (services/storage/base.py): a datetime
    # per value cost clickhouse-driver a time-zone conversion per value on the storage thread
    values["received_at"] += [message.received_at] * count
    found = [enriched[account] for account in accounts]
    for column, get in _ENRICHMENT:
        values[column] += map(get, found)


def _add_partials(
    into: Columns,
    table_name: str,
    msg_id: str,
    partials: dict[WindowKey, FlowPartial],
    label_of: Callable[[str], str],
) -> None:
    """One row per partial: its key (name, grain, window, currency), the message, the key's
    label (an account's institution, an institution's region) and the sums."""
    if not partials:
        return
    table = into.table(table_name)
    values = table.values
    # both partial tables name the key first and its label after the message id
    key_column, label_column = table.names[0], table.names[5]
    keys = list(partials)
    names = list(map(itemgetter(0), keys))
    values[key_column] += names
    for column, get in _KEY_PARTS:
        values[column] += map(get, keys)
    values["msg_id"] += [msg_id] * len(keys)
    values[label_column] += map(label_of, names)
    found = list(partials.values())
    for column, get in _PARTIAL_FIELDS:
        values[column] += map(get, found)
    values["counterparties"] += [sorted(partial.counterparties) for partial in found]


def institution_side(
    txn: TxnRecord,
    enriched: dict[str, tuple[str, str, str]],
    enrich: Callable[[str], tuple[str, str, str]],
) -> str | None:
    """The institution whose flows a transaction counts in, or None.

    A movement between two accounts of the same institution is neither its inflow nor its
    outflow: its two legs (the debit reported by one bank, the credit by the other) would otherwise
    count the same money twice in the institution's figures (DOMAIN.md: count it once)."""
    institution_id = enriched[txn.account_id][0]
    if not institution_id:
        return None
    counterparty = enriched.get(txn.counterparty_account)
    if counterparty is None:
        counterparty = enriched[txn.counterparty_account] = enrich(txn.counterparty_account)
    return None if counterparty[0] == institution_id else institution_id
