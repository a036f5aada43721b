"""Records a custody bank pushes (CONTRACT.md §3), and the batch that carries them.

The types both validate incoming JSON and generate the OpenAPI description, so the two never
drift apart. Rules msgspec cannot say on its own (an amount above zero, a time that exists on the
calendar, an identifier without control characters) are checked in ``__post_init__`` and reported
with the field's name. ``RecordDecoder`` also refuses a record that names a field twice, which JSON
parsers (msgspec included) resolve silently by keeping the last value.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, ClassVar

import msgspec

from schemas.fields import (
    ID_RULE,
    Amount,
    Currency,
    Id,
    RecordId,
    SignedAmount,
    Text,
    Time,
    id_breaks_rule,
    is_zero_amount,
    time_breaks_rule,
)
from schemas.validation import DUPLICATE_RULE, duplicate_key

MAX_RECORDS_PER_BATCH = 10_000
MAX_BATCH_BYTES = 8 * 1024 * 1024


class Direction(str, Enum):
    debit = "debit"
    credit = "credit"


class Channel(str, Enum):
    HVPS = "HVPS"
    BEPS = "BEPS"
    IBPS = "IBPS"
    INTERNAL = "INTERNAL"
    UNIONPAY = "UNIONPAY"
    NETSUNION = "NETSUNION"
    CASH = "CASH"
    OTHER = "OTHER"


class FieldError(ValueError):
    """A value that breaks a rule; carries the field so the answer can name it."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"`{field}`: must be {rule}")
        self.field = field
        self.rule = rule


def _check_time(field: str, value: str) -> None:
    # epoch_seconds is cached: the gateway asks for the same value again right after
    wrong = time_breaks_rule(value)
    if wrong is not None:
        raise FieldError(field, wrong)


def _check_ids(record: msgspec.Struct, fields: tuple[str, ...]) -> None:
    """Raise for the first identifier field that breaks ID_RULE.

    Callers first look at the fields' values run together: when that is printable (no control
    character, no bidirectional mark, no whitespace but the plain space) and holds no space, no
    field can break the rule; two C calls for the whole record instead of a check per field."""
    for field in fields:
        value = getattr(record, field)
        if value is not None and id_breaks_rule(value):
            raise FieldError(field, ID_RULE)


class Transaction(msgspec.Struct, tag_field="kind", tag="transaction", forbid_unknown_fields=True):
    """One booked movement on a monitored account at the pushing bank."""

    record_id: RecordId
    account_id: RecordId
    direction: Direction
    amount: Amount
    booked_at: Time
    counterparty_account: RecordId
    counterparty_bank: RecordId
    channel: Channel
    currency: Currency = "CNY"
    counterparty_name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    instruction_id: RecordId | None = None
    purpose: Text | None = None
    product_id: RecordId | None = None
    balance_after: SignedAmount | None = None

    def __post_init__(self) -> None:
        ids = "".join((
            self.record_id, self.account_id, self.counterparty_account, self.counterparty_bank,
            self.instruction_id or "", self.product_id or "",
        ))  # fmt: skip
        if not ids.isprintable() or " " in ids:
            _check_ids(self, _TXN_IDS)
        if is_zero_amount(self.amount):  # the pattern admits no sign
            raise FieldError("amount", "greater than 0")
        _check_time("booked_at", self.booked_at)


class Balance(msgspec.Struct, tag_field="kind", tag="balance", forbid_unknown_fields=True):
    """A balance snapshot of a monitored account."""

    record_id: RecordId
    account_id: RecordId
    as_of: Time
    balance: SignedAmount
    customer_liabilities: SignedAmount | None = None
    currency: Currency = "CNY"

    def __post_init__(self) -> None:
        ids = self.record_id + self.account_id
        if not ids.isprintable() or " " in ids:
            _check_ids(self, _BALANCE_IDS)
        _check_time("as_of", self.as_of)
        liabilities = self.customer_liabilities
        if liabilities is not None and liabilities.startswith("-") and not is_zero_amount(liabilities):
            raise FieldError("customer_liabilities", "0 or more")


Record = Transaction | Balance

_TXN_IDS = (
    "record_id",
    "account_id",
    "counterparty_account",
    "counterparty_bank",
    "instruction_id",
    "product_id",
)
_BALANCE_IDS = ("record_id", "account_id")


class Batch(msgspec.Struct, forbid_unknown_fields=True):
    """The envelope of a push. Records stay raw here so one bad record rejects only itself."""

    # decode() checks the keys around the records only; RecordDecoder checks each record's
    raw_items: ClassVar[str] = "records"

    batch_id: Id
    bank_code: Id
    records: list[msgspec.Raw]


class BatchSchema(msgspec.Struct):
    """The batch as documented: ``records`` holds transaction and balance records."""

    batch_id: Id
    bank_code: Id
    records: Annotated[list[Record], msgspec.Meta(max_length=MAX_RECORDS_PER_BATCH)]


class Rejection(msgspec.Struct):
    index: int
    record_id: str | None
    error: str


class Warning(msgspec.Struct):  # the contract's name; shadows the builtin only in this module
    """An accepted record the bank should look at, e.g. one of an account not in the reference data."""

    index: int
    record_id: str
    warning: str


class BatchAnswer(msgspec.Struct):
    batch_id: str
    accepted: int
    duplicates: int
    rejected: list[Rejection]
    warnings: list[Warning] = []


# --- duplicate keys ------------------------------------------------------------------------------


def keys_but_currency(kind: type[msgspec.Struct]) -> int:
    """The keys of a record of ``kind`` that gives every field but "currency": its fields and
    "kind", less "currency", the one field whose default is not None (so that a decoded record
    cannot tell whether it was given). Asserts that layout: ``refuse_repeated_keys`` counts on it."""
    assert [d for d in kind.__struct_defaults__ if d is not None] == ["CNY"]
    return len(kind.__struct_fields__)  # + "kind" - "currency"


_KEYS_BUT_CURRENCY = {kind: keys_but_currency(kind) for kind in (Transaction, Balance)}
_CURRENCY_KEY = b'"currency":'
_astuple = msgspec.structs.astuple
_loose_decode = msgspec.json.Decoder().decode


class RecordDecoder:
    """Decodes one record as ``Record`` and refuses one that names a key twice.

    ``{"amount": "1.00", "amount": "1000000.00"}`` decodes to 1,000,000.00 in every JSON parser
    that keeps the last value; a bank's system that wrote it meant something else. The check must
    cost little (the gateway decodes 65,000 records a second; tokenizing each record's strings with
    a regex costs more than decoding it), so it counts quotes: ``refuse_repeated_keys``.
    Raises msgspec's errors, so a caller handles it as any invalid record.
    """

    def __init__(self) -> None:
        self._decode = msgspec.json.Decoder(Record).decode  # bound once: this runs per record

    def decode(self, raw: bytes | msgspec.Raw) -> Record:
        try:
            record = self._decode(raw)
        except (UnicodeDecodeError, RecursionError) as error:
            raise msgspec.DecodeError(f"JSON is malformed: {error}") from None
        refuse_repeated_keys(raw, record, _KEYS_BUT_CURRENCY[type(record)])
        return record


def refuse_repeated_keys(raw: bytes | msgspec.Raw, record: msgspec.Struct, keys_but_currency: int) -> None:
    """Raise msgspec.ValidationError naming the first key ``raw`` gives twice.

    ``record`` is what ``raw`` decoded to, of a kind laid out as ``keys_but_currency`` asserts.
    Every value a record that decoded can hold is a string or null: with P keys, N null values
    and E escaped quotes (``\\"``) in its text it has Q = 4P - 2N + E quotes. The decoded record
    tells K, the keys it had at least: "kind", the required fields, the optional ones that are not
    None, and "currency" when ``"currency":`` is in the bytes. Each key beyond those K (a repeat,
    a null, "currency" spaced from its colon) brings 4 quotes, or 2 with a null value, so Q = 4K
    holds only when P = K: no key was repeated. Any other record (those, or quotes in its text)
    has its strings tokenized to find a repeated key by name (``schemas.validation.duplicate_key``);
    without escapes, nulls are first counted out more cheaply (keys named against keys kept by a
    plain JSON decode)."""
    raw = bytes(raw)  # a batch's records are msgspec.Raw, without bytes' methods (bytes: no copy)
    # the keys it had at least: a field that is None was not given (or given as null)
    keys = keys_but_currency - _astuple(record).count(None)
    quotes = raw.count(b'"')
    if quotes == 4 * keys or (quotes == 4 * keys + 4 and _CURRENCY_KEY in raw):
        return
    if b"\\" not in raw:
        # nulls (or a key spaced from its colon): with no escapes the quotes split the bytes
        # exactly into strings and the gaps between them, where the only colons are the one
        # of each key; the keys named are those of the object JSON makes of it, once each
        if b"".join(raw.split(b'"')[0::2]).count(b":") == len(_loose_decode(raw)):
            return
    key = duplicate_key(raw)
    if key is not None:
        raise msgspec.ValidationError(f"`{key}`: {DUPLICATE_RULE}")
