"""ClickHouse rows for one processed message: raw records and aggregate partials, in table order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.aggregates import FlowPartial, WindowKey, flow_partials
from schemas.ddl import DATABASE
from schemas.fields import cents_to_decimal
from schemas.messages import BalanceRecord, RecordBatchMessage, TxnRecord

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


@dataclass
class Rows:
    """Rows per table, gathered over one or more messages, then written in one insert each."""

    tables: dict[str, tuple[tuple[str, ...], list[list[Any]]]] = field(default_factory=dict)

    def add(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        if rows:
            self.tables.setdefault(table, (columns, []))[1].extend(rows)

    def count(self) -> int:
        return sum(len(rows) for _, rows in self.tables.values())


def _nullable_cents(cents: int | None) -> Any:
    return None if cents is None else cents_to_decimal(cents)


def _partial_row(key: WindowKey, msg_id: str, label: str, partial: FlowPartial) -> list[Any]:
    name, grain, start, currency = key
    return [
        name, grain, start, currency, msg_id, label,
        cents_to_decimal(partial.inflow_cents), cents_to_decimal(partial.outflow_cents),
        partial.n_in, partial.n_out, sorted(partial.counterparties),
    ]  # fmt: skip


def message_rows(
    message: RecordBatchMessage,
    enrich: Callable[[str], tuple[str, str, str]],
    into: Rows,
) -> None:
    """Append the rows one message produces to ``into``."""
    # DateTime columns take epoch seconds as they are (services/storage/base.py): a datetime
    # per value cost clickhouse-driver a time-zone conversion per value on the storage thread
    received = message.received_at
    enriched = {account: enrich(account) for account in {r.account_id for r in message.records}}
    txns: list[TxnRecord] = []
    raw_txn: list[list[Any]] = []
    raw_bal: list[list[Any]] = []
    for r in message.records:
        institution_id, role, region = enriched[r.account_id]
        if isinstance(r, TxnRecord):
            txns.append(r)
            raw_txn.append([
                message.bank_code, r.record_id, r.account_id, "credit" if r.credit else "debit",
                cents_to_decimal(r.amount_cents), r.currency, r.booked_at,
                r.counterparty_account, r.counterparty_bank, r.counterparty_name, r.channel,
                r.instruction_id, r.purpose, r.product_id, _nullable_cents(r.balance_after_cents),
                message.batch_id, message.msg_id, received, institution_id, role, region,
            ])  # fmt: skip
        elif isinstance(r, BalanceRecord):
            raw_bal.append([
                message.bank_code, r.record_id, r.account_id, r.as_of,
                cents_to_decimal(r.balance_cents), _nullable_cents(r.customer_liabilities_cents),
                r.currency, message.batch_id, message.msg_id, received, institution_id, role, region,
            ])  # fmt: skip
    into.add(f"{DATABASE}.raw_transactions", RAW_TXN_COLUMNS, raw_txn)
    into.add(f"{DATABASE}.raw_balances", RAW_BALANCE_COLUMNS, raw_bal)

    by_account = flow_partials(txns, lambda t: t.account_id)
    into.add(
        AGG_ACCOUNT_TABLE,
        AGG_ACCOUNT_COLUMNS,
        [_partial_row(k, message.msg_id, enriched[k[0]][0], p) for k, p in by_account.items()],
    )
    region_of = {inst: region for inst, _, region in enriched.values() if inst}
    by_institution = flow_partials(txns, lambda t: institution_side(t, enriched, enrich))
    into.add(
        AGG_INSTITUTION_TABLE,
        AGG_INSTITUTION_COLUMNS,
        [_partial_row(k, message.msg_id, region_of.get(k[0], ""), p) for k, p in by_institution.items()],
    )


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
