"""A batch's records read in one go, column by column: the usual batch (every record plainly
within the rules) costs a handful of C passes over its values instead of a Python call per value.

``reader.RecordReader`` reads one record at a time: a decoder call, a regex over its amounts, a
join of its ids, a time looked up, a quote count, a record built. Here the batch's records are
decoded by one call, each field is taken as a column (``attrgetter`` mapped over the records),
and each rule is checked once over a column: the amounts by one regex over them all joined, the
ids by one character test over them all joined, the times as one array of digits (batch_times.py;
once per distinct text when one is of another form), the quotes by one count over the records'
bytes against what they all should hold (each record's count can only exceed its own share, never
fall short: ``refuse_repeated_keys``), the records built by mapping their type over the columns.
A batch's few balance records are read one by one, as the per-record reader reads them.

The answer is the per-record reader's or nothing: ``read_batch`` returns every record exactly as
``RecordReader.read`` would, or None when any record is not plainly within the rules (a value to
refuse, or one merely unusual: a null, an escaped quote, an amount without two decimals). The caller then reads the batch record by record, which gives each record its own
answer or error; so this path changes the cost of the usual batch and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec
from msgspec import UNSET

from schemas.fields import BALANCE_BODY, CURRENCY_BODY, amount_to_cents
from schemas.messages import BalanceRecord, TxnRecord
from services.gateway.batch_times import usual_epochs
from services.gateway.reader import (
    _BALANCE_KEYS,
    _TXN_KEYS,
    BalanceIn,
    TransactionIn,
    _balance,
    _epoch,
    _plain_ids,
    keys_given,
)

_decode_records = msgspec.json.Decoder(list[TransactionIn | BalanceIn]).decode

# Every value followed by a comma, which none of the bodies admits: once the commas are counted
# (``_joined``: a value holding one would make two), the repeat matches value by value, and one
# value that breaks its body fails the whole match. Amounts with two decimals exactly, so that
# taking the point out leaves the cents; the lookahead refuses zero (reader._POSITIVE).
_CENTS_AMOUNTS = re.compile(r"(?:(?!0\.00,)(?:0|[1-9][0-9]{0,15})\.[0-9]{2},)+").fullmatch
_BALANCES = re.compile(rf"(?:{BALANCE_BODY},)+").fullmatch
_CENTS_BALANCES = re.compile(r"(?:-?[0-9]+\.[0-9]{2},)+").fullmatch  # after _BALANCES: two decimals
_CURRENCY = re.compile(CURRENCY_BODY).fullmatch

_COLUMNS = attrgetter(
    "record_id", "account_id", "direction", "amount", "booked_at", "counterparty_account",
    "counterparty_bank", "channel", "currency", "counterparty_name", "instruction_id", "purpose",
    "product_id", "balance_after",
)  # fmt: skip
_QUOTES_A_KEY = 4  # a key and its string value

Record = TxnRecord | BalanceRecord


def read_batch(raws: list[msgspec.Raw]) -> list[Record] | None:
    """Every record of the batch as ``RecordReader.read`` reads it, or None when any one of them
    needs reading on its own."""
    if not raws:
        return None
    text = b",".join(raws)
    try:
        decoded = _decode_records(b"[" + text + b"]")
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    balances = [record for record in decoded if type(record) is BalanceIn]
    transactions = [record for record in decoded if type(record) is TransactionIn] if balances else decoded
    columns = _Columns(*zip(*map(_COLUMNS, transactions), strict=True)) if transactions else None
    keys = _balance_keys_given(balances) + (0 if columns is None else columns.keys_given())
    if text.count(b'"') != _QUOTES_A_KEY * keys:
        return None  # a null, a repeated key or an escaped quote somewhere
    read = [] if columns is None else columns.records()
    if read is None or not balances:
        return read
    # a bank's balances come a few to a batch: read one by one, as the per-record reader does
    read_balances = list(map(_balance, balances))
    if None in read_balances:
        return None
    in_order = iter(read), iter(read_balances)
    return [next(in_order[type(record) is BalanceIn]) for record in decoded]


def _balance_keys_given(balances: list[BalanceIn]) -> int:
    """As ``_Columns.keys_given``, one balance record at a time."""
    return sum(keys_given(record, _BALANCE_KEYS) for record in balances)


class _Columns(NamedTuple):
    """A batch's transactions, one tuple per field (``_COLUMNS``' order)."""

    record_ids: tuple[str, ...]
    account_ids: tuple[str, ...]
    directions: tuple[str, ...]
    amounts: tuple[str, ...]
    times: tuple[str, ...]
    counterparty_accounts: tuple[str, ...]
    counterparty_banks: tuple[str, ...]
    channels: tuple[str, ...]
    currencies: tuple[Any, ...]  # a code, or UNSET
    names: tuple[str | None, ...]
    instruction_ids: tuple[str | None, ...]
    purposes: tuple[str | None, ...]
    product_ids: tuple[str | None, ...]
    balances: tuple[str | None, ...]

    def keys_given(self) -> int:
        """The keys the transactions gave, had none of them a null or a repeat: "kind", every
        field that is not None, and "currency" where it was given."""
        optional = (self.names, self.instruction_ids, self.purposes, self.product_ids, self.balances)
        nulls = sum(column.count(None) for column in optional)
        return len(self.record_ids) * _TXN_KEYS - nulls + len(self.currencies) - self.currencies.count(UNSET)

    def records(self) -> list[TxnRecord] | None:
        """The transactions in their message form, each rule checked once over a column; None
        when a value is off its rule or unusual."""
        joined_amounts = _joined(self.amounts)
        if joined_amounts is None or _CENTS_AMOUNTS(joined_amounts) is None:
            return None
        currencies = tuple("CNY" if currency is UNSET else currency for currency in self.currencies)
        if not all(map(_CURRENCY, set(currencies))):
            return None
        balance_cents = _balance_cents(self.balances)
        if balance_cents is None or not _plain_ids(self._ids()):
            return None
        epochs = _epochs(self.times)
        if epochs is None:
            return None
        cents = map(int, joined_amounts.replace(".", "").split(",")[:-1])
        credits = map("credit".__eq__, self.directions)
        return list(
            map(
                TxnRecord, self.record_ids, self.account_ids, credits, cents, epochs,
                self.counterparty_accounts, self.counterparty_banks, self.channels, currencies,
                self.names, self.instruction_ids, self.purposes, self.product_ids, balance_cents,
            )  # fmt: skip
        )

    def _ids(self) -> str:
        """Every identifier run together, for ``reader._plain_ids``."""
        required = (self.record_ids, self.account_ids, self.counterparty_accounts, self.counterparty_banks)
        optional = (self.instruction_ids, self.product_ids)
        return "".join(map("".join, required)) + "".join("".join(filter(None, column)) for column in optional)


def _joined(values: Sequence[str]) -> str | None:
    """The values, each followed by a comma; None when one holds a comma of its own."""
    joined = ",".join(values) + ","
    return joined if joined.count(",") == len(values) else None


def _balance_cents(balances: tuple[str | None, ...]) -> list[int | None] | None:
    """Each balance_after in cents (None where not given), or None if one is off its rule."""
    given = [balance for balance in balances if balance is not None]
    if not given:
        return [None] * len(balances)
    joined = _joined(given)
    if joined is None or _BALANCES(joined) is None:
        return None
    if _CENTS_BALANCES(joined) is not None:
        cents = iter(map(int, joined.replace(".", "").split(",")[:-1]))
    else:
        cents = iter(map(amount_to_cents, given))
    return [None if balance is None else next(cents) for balance in balances]


def _epochs(times: tuple[str, ...]) -> list[int] | None:
    """Each time's epoch seconds (a batch repeats its times: each distinct one converted once), or
    None if any is off its rule."""
    usual = usual_epochs(times)
    if usual is not None:
        return usual
    epoch_of = {}
    for text in set(times):
        epoch = _epoch(text)
        if epoch is None:
            return None
        epoch_of[text] = epoch
    return list(map(epoch_of.__getitem__, times))
