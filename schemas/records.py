"""Records a custody bank pushes (CONTRACT.md §3), and the batch that carries them.

The types both validate incoming JSON and generate the OpenAPI description, so the two never
drift apart. Rules msgspec cannot say on its own (an amount above zero, a time that exists on the
calendar) are checked in ``__post_init__`` and reported with the field's name.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import msgspec

from schemas.fields import (
    Amount,
    Currency,
    Id,
    SignedAmount,
    Text,
    Time,
    epoch_seconds,
    is_zero_amount,
)

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
    try:
        # the cached conversion: the gateway asks for the same value again right after
        epoch_seconds(value)
    except ValueError:
        raise FieldError(field, "a real calendar date and time (RFC 3339 with an offset)") from None


class Transaction(msgspec.Struct, tag_field="kind", tag="transaction", forbid_unknown_fields=True):
    """One booked movement on a monitored account at the pushing bank."""

    record_id: Id
    account_id: Id
    direction: Direction
    amount: Amount
    booked_at: Time
    counterparty_account: Id
    counterparty_bank: Id
    channel: Channel
    currency: Currency = "CNY"
    counterparty_name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    instruction_id: Id | None = None
    purpose: Text | None = None
    product_id: Id | None = None
    balance_after: SignedAmount | None = None

    def __post_init__(self) -> None:
        if is_zero_amount(self.amount):  # the pattern admits no sign
            raise FieldError("amount", "greater than 0")
        _check_time("booked_at", self.booked_at)


class Balance(msgspec.Struct, tag_field="kind", tag="balance", forbid_unknown_fields=True):
    """A balance snapshot of a monitored account."""

    record_id: Id
    account_id: Id
    as_of: Time
    balance: SignedAmount
    customer_liabilities: SignedAmount | None = None
    currency: Currency = "CNY"

    def __post_init__(self) -> None:
        _check_time("as_of", self.as_of)
        liabilities = self.customer_liabilities
        if liabilities is not None and liabilities.startswith("-") and not is_zero_amount(liabilities):
            raise FieldError("customer_liabilities", "0 or more")


Record = Transaction | Balance


class Batch(msgspec.Struct, forbid_unknown_fields=True):
    """The envelope of a push. Records stay raw here so one bad record rejects only itself."""

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
