"""One pushed record read straight into the form workers consume (cents, epoch seconds), in one
pass: the gateway's per-record hot path.

``schemas.records`` states the rules (its Structs validate, explain and document), and holding a
record to them there costs a regex call per patterned value inside the decoder and a
``__post_init__`` called back from it per record, then a second Struct for the message. Here a
record is decoded with the rules msgspec checks cheaply in C (kind, known keys, types, lengths,
the channel and direction values) into ``TransactionIn``/``BalanceIn``, and the rest is checked
while the message record is built: one regex over the amounts and currency joined, the
identifiers' characters in one string test, zero amounts by the same regex, the time by its own
pattern and conversion, remembered per text since a batch repeats its times.

A key given twice is refused as the strict decoder does (``refuse_repeated_keys``), after a check
that settles the usual record at once: its quotes counted against the keys it decoded with, which
here include "currency" whenever it was given (unset rather than defaulted).

Anything this path is unsure of (any value that breaks a rule, or merely looks unusual: an id
with a space, a negative liabilities figure) is read again by the strict decoder, which raises
the error the bank gets, or accepts the record: so answers are the strict decoder's, word for
word, and this path only ever accepts what the strict one accepts.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from schemas.fields import (
    AMOUNT_BODY,
    BALANCE_BODY,
    CURRENCY_BODY,
    EARLIEST_EPOCH,
    TIME_BODY,
    RecordId,
    Text,
    amount_to_cents,
    epoch_seconds,
    parse_time,
)
from schemas.messages import BalanceRecord, TxnRecord
from schemas.records import (
    Balance,
    Direction,
    RecordDecoder,
    Transaction,
    keys_but_currency,
    refuse_repeated_keys,
)

# The longest time TIME_RULE admits (nine decimals, a numeric offset): a longer one is the strict
# decoder's to refuse, and never reaches the cache of times (``_epoch``), which would otherwise
# hold whatever a bank sends.
_LONGEST_TIME = len("2026-11-25T09:30:00.123456789+08:00")
TimeText = Annotated[str, msgspec.Meta(max_length=_LONGEST_TIME)]
ChannelName = Literal["HVPS", "BEPS", "IBPS", "INTERNAL", "UNIONPAY", "NETSUNION", "CASH", "OTHER"]


# gc=False: only strings and None, so never part of a cycle; the collector need not track them.
class TransactionIn(
    msgspec.Struct, tag_field="kind", tag="transaction", forbid_unknown_fields=True, gc=False
):
    """``schemas.records.Transaction`` less the rules checked in ``_transaction``."""

    record_id: RecordId
    account_id: RecordId
    direction: Literal["debit", "credit"]
    amount: str
    booked_at: TimeText
    counterparty_account: RecordId
    counterparty_bank: RecordId
    channel: ChannelName
    currency: str | UnsetType = UNSET  # "CNY" when unset; see RecordReader.read
    counterparty_name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    instruction_id: RecordId | None = None
    purpose: Text | None = None
    product_id: RecordId | None = None
    balance_after: str | None = None


class BalanceIn(msgspec.Struct, tag_field="kind", tag="balance", forbid_unknown_fields=True, gc=False):
    """``schemas.records.Balance`` less the rules checked in ``_balance``."""

    record_id: RecordId
    account_id: RecordId
    as_of: TimeText
    balance: str
    customer_liabilities: str | None = None
    currency: str | UnsetType = UNSET  # "CNY" when unset; see RecordReader.read


_TXN_KEYS = keys_but_currency(Transaction)
_BALANCE_KEYS = keys_but_currency(Balance)
assert _TXN_KEYS == len(TransactionIn.__struct_fields__) and _BALANCE_KEYS == len(BalanceIn.__struct_fields__)
_astuple = msgspec.structs.astuple

# The patterned values joined by commas, which none of the patterns admits: a value holding one
# can only fail the whole match, never shift it. The amount's lookahead refuses zero ("greater
# than 0", a rule the strict decoder words apart). Times are apart (``_epoch``): their pattern
# was most of the match's cost, and a time seen before needs no match at all.
_POSITIVE = rf"(?!0(?:\.0{{1,2}})?,){AMOUNT_BODY}"
_TXN = re.compile(f"{_POSITIVE},{CURRENCY_BODY}").fullmatch
_TXN_BALANCE = re.compile(f"{_POSITIVE},{CURRENCY_BODY},{BALANCE_BODY}").fullmatch
_BALANCE = re.compile(f"{BALANCE_BODY},{CURRENCY_BODY}").fullmatch
_BALANCE_LIABILITIES = re.compile(f"{BALANCE_BODY},{CURRENCY_BODY},{BALANCE_BODY}").fullmatch
_TIME = re.compile(TIME_BODY).fullmatch


def _plain_ids(ids: str) -> bool:
    """Whether identifiers run together are plainly within ID_RULE: printable, no space. Every
    character the rule forbids is unprintable; an id with a space may still be fine, or all
    spaces, which the strict decoder decides."""
    return ids.isprintable() and " " not in ids


@lru_cache(maxsize=8192)
def _epoch(text: str) -> int | None:
    """Epoch seconds of a time within TIME_RULE; None for one off its pattern, off the calendar
    or before 2000 in UTC."""
    matched = _TIME(text)
    if matched is None:
        return None
    # Converting a time costs more than its pattern, and a batch's times share their minutes: the
    # minute (same date, separator and offset, seconds and fraction zero) is converted once. The
    # calendar judges the minute alone; only the seconds (two digits) may break it apart. The
    # instant is never before 2000, so cutting the fraction is the whole-second floor.
    seconds = int(text[17:19])
    minute = _minute_epoch(f"{text[:17]}00{matched[3]}")
    if minute is None or seconds > 59:
        return None
    epoch = minute + seconds
    return epoch if epoch >= EARLIEST_EPOCH else None


@lru_cache(maxsize=4096)
def _minute_epoch(text: str) -> int | None:
    try:
        return int(parse_time(text).timestamp())
    except ValueError:
        return None


def keys_given(record: TransactionIn | BalanceIn, keys_but_currency: int) -> int:
    """The keys a record decoded here gave, had it no null and no repeat: "kind", every field
    that is not None, and "currency" when it was given (``refuse_repeated_keys`` counts on it)."""
    return keys_but_currency - _astuple(record).count(None) + (record.currency is not UNSET)


def _transaction(r: TransactionIn) -> TxnRecord | None:
    after = r.balance_after
    currency = "CNY" if r.currency is UNSET else r.currency
    if after is None:
        matched = _TXN(f"{r.amount},{currency}")
    else:
        matched = _TXN_BALANCE(f"{r.amount},{currency},{after}")
    if matched is None or not _plain_ids(
        "".join((r.record_id, r.account_id, r.counterparty_account, r.counterparty_bank,
                 r.instruction_id or "", r.product_id or ""))
    ):  # fmt: skip
        return None
    booked_at = _epoch(r.booked_at)
    if booked_at is None:
        return None
    # positional, in the fields' order: this runs once per record
    return TxnRecord(
        r.record_id, r.account_id, r.direction == "credit", amount_to_cents(r.amount), booked_at,
        r.counterparty_account, r.counterparty_bank, r.channel, currency, r.counterparty_name,
        r.instruction_id, r.purpose, r.product_id, None if after is None else amount_to_cents(after),
    )  # fmt: skip


def _balance(r: BalanceIn) -> BalanceRecord | None:
    liabilities = r.customer_liabilities
    currency = "CNY" if r.currency is UNSET else r.currency
    if liabilities is None:
        matched = _BALANCE(f"{r.balance},{currency}")
    elif liabilities.startswith("-"):
        return None  # "0 or more": only "-0" passes, which the strict decoder may judge
    else:
        matched = _BALANCE_LIABILITIES(f"{r.balance},{currency},{liabilities}")
    if matched is None or not _plain_ids(r.record_id + r.account_id):
        return None
    as_of = _epoch(r.as_of)
    if as_of is None:
        return None
    return BalanceRecord(
        r.record_id, r.account_id, as_of, amount_to_cents(r.balance),
        None if liabilities is None else amount_to_cents(liabilities), currency,
    )  # fmt: skip


def to_message_record(record: Transaction | Balance) -> TxnRecord | BalanceRecord:
    """A record the strict decoder validated, in the form workers consume."""
    if type(record) is Transaction:
        balance_after = record.balance_after
        return TxnRecord(
            record.record_id, record.account_id, record.direction is Direction.credit,
            amount_to_cents(record.amount), epoch_seconds(record.booked_at), record.counterparty_account,
            record.counterparty_bank, record.channel.value, record.currency, record.counterparty_name,
            record.instruction_id, record.purpose, record.product_id,
            None if balance_after is None else amount_to_cents(balance_after),
        )  # fmt: skip
    liabilities = record.customer_liabilities
    return BalanceRecord(
        record.record_id, record.account_id, epoch_seconds(record.as_of), amount_to_cents(record.balance),
        None if liabilities is None else amount_to_cents(liabilities), record.currency,
    )  # fmt: skip


class RecordReader:
    """Reads one record of a batch into its message form; raises msgspec's errors (the strict
    decoder's) for a record that breaks a rule, as ``RecordDecoder`` does."""

    def __init__(self) -> None:
        # bound once: this runs per record
        self._decode = msgspec.json.Decoder(TransactionIn | BalanceIn).decode
        self._strict = RecordDecoder()

    def read(self, raw: msgspec.Raw | bytes) -> TxnRecord | BalanceRecord:
        try:
            record = self._decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return self.read_strictly(raw)
        if type(record) is TransactionIn:
            message: TxnRecord | BalanceRecord | None = _transaction(record)
            keys = _TXN_KEYS
        else:
            message = _balance(record)
            keys = _BALANCE_KEYS
        if message is None:
            return self.read_strictly(raw)
        # A record that gives each key once, each with a string, has 4 quotes a key: "kind",
        # the fields that are not None, and "currency" when given (never None). Any other has
        # more: 2 for a null, 4 for a repeat, 1 for an escaped quote; the strict decoder's own
        # check tells those apart ("currency" unset here rather than "CNY" leaves the count of
        # None, all it reads of the record, the same).
        given = keys_given(record, keys)
        if bytes(raw).count(b'"') != 4 * given:
            refuse_repeated_keys(raw, record, keys)
        return message

    def read_strictly(self, raw: msgspec.Raw | bytes) -> TxnRecord | BalanceRecord:
        """The strict decoder's answer: its error, or the record it accepts."""
        return to_message_record(self._strict.decode(raw))
