"""An account's feature state: per Beijing day partials of its CNY transactions, the same kind of
sums and counts the detectors keep per day (models/detectors/common, buckets), and a bounded
sample of counterparty hashes.

Every field of a day's partial is a sum, a count, or a bottom-k sample of its records, so it is
a function of the *set* of the day's records: shuffling them, or splitting them over several
steps, gives the same state. The state keeps the KEPT_DAYS newest days, counted back from the
latest day it has seen; a record of an older day changes nothing (it would be dropped again at
the end of any step that saw it), so the whole state is a function of the set of records too.
The first day ever seen is kept as well: it tells a new account (no history yet) from a quiet
one (days without records, which count as days without money).

The step keeps no record ids: a redelivered message must be kept out by the caller, as the
worker does for the detectors (models/account_state.already_applied).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from models.features.counterparties import (
    CounterpartySample,
    counterparty_hash,
    known_counterparty,
    merged,
)
from models.features.schema import KEPT_DAYS, ROUND_1K_CENTS, ROUND_10K_CENTS
from models.windows import DAY, HOUR, beijing_day_start
from schemas.messages import BalanceRecord, TxnRecord

HOURS_PER_DAY = 24


def _per_hour() -> list[int]:
    return [0] * HOURS_PER_DAY


class DayPartial(msgspec.Struct, array_like=True):
    """One Beijing day of an account's CNY transactions."""

    day_start: int  # epoch seconds of the Beijing midnight opening the day
    inflow_cents: int = 0
    outflow_cents: int = 0
    credits: int = 0
    debits: int = 0
    credit_cents_by_hour: list[int] = msgspec.field(default_factory=_per_hour)  # index: Beijing hour
    debit_cents_by_hour: list[int] = msgspec.field(default_factory=_per_hour)
    transactions_by_hour: list[int] = msgspec.field(default_factory=_per_hour)
    round_1k_transactions: int = 0
    round_10k_transactions: int = 0
    unknown_counterparty_transactions: int = 0
    payers: CounterpartySample = msgspec.field(default_factory=CounterpartySample)
    payees: CounterpartySample = msgspec.field(default_factory=CounterpartySample)

    @property
    def transactions(self) -> int:
        return self.credits + self.debits


class AccountFeatureState(msgspec.Struct):
    first_day: int | None = None  # the earliest day any CNY transaction was seen on, kept or not
    latest_day: int | None = None
    days: list[DayPartial] = []  # ascending by day_start, at most KEPT_DAYS

    def oldest_kept_day(self) -> int | None:
        return None if self.latest_day is None else self.latest_day - (KEPT_DAYS - 1) * DAY

    def day(self, day_start: int) -> DayPartial | None:
        for partial in self.days:
            if partial.day_start == day_start:
                return partial
        return None


class _DayFold:
    """A day's partial being added to within one step: a copy, so the caller's state is never
    changed, with the counterparty hashes gathered to be merged into the samples once."""

    def __init__(self, partial: DayPartial) -> None:
        self.partial = msgspec.structs.replace(
            partial,
            credit_cents_by_hour=list(partial.credit_cents_by_hour),
            debit_cents_by_hour=list(partial.debit_cents_by_hour),
            transactions_by_hour=list(partial.transactions_by_hour),
        )
        self.payer_hashes: set[int] = set()
        self.payee_hashes: set[int] = set()

    def add(self, txn: TxnRecord) -> None:
        day = self.partial
        hour = (txn.booked_at - day.day_start) // HOUR
        cents = txn.amount_cents
        if txn.credit:
            day.inflow_cents += cents
            day.credits += 1
            day.credit_cents_by_hour[hour] += cents
        else:
            day.outflow_cents += cents
            day.debits += 1
            day.debit_cents_by_hour[hour] += cents
        day.transactions_by_hour[hour] += 1
        if cents % ROUND_1K_CENTS == 0:
            day.round_1k_transactions += 1
        if cents % ROUND_10K_CENTS == 0:
            day.round_10k_transactions += 1
        counterparty = known_counterparty(txn)
        if counterparty is None:
            day.unknown_counterparty_transactions += 1
        else:
            hashes = self.payer_hashes if txn.credit else self.payee_hashes
            hashes.add(counterparty_hash(counterparty))

    def result(self) -> DayPartial:
        day = self.partial
        if self.payer_hashes:
            day.payers = merged(day.payers, self.payer_hashes)
        if self.payee_hashes:
            day.payees = merged(day.payees, self.payee_hashes)
        return day


def step(
    state: AccountFeatureState | None,
    records: Iterable[TxnRecord | BalanceRecord],
    *,
    latest_plausible: int | None = None,
) -> AccountFeatureState:
    """The state after one account's ``records`` (a new state; ``state`` is left as it was).

    Only CNY transactions count: figures in different currencies are never added (CONTRACT.md
    §3), and balances carry no flow. A transaction booked after ``latest_plausible`` (the
    worker's clock plus its allowance) is left out: one record dated years ahead would otherwise
    push every real day out of the state."""
    state = state or AccountFeatureState()
    kept = {partial.day_start: partial for partial in state.days}
    folds: dict[int, _DayFold] = {}
    first_day, latest_day = state.first_day, state.latest_day
    for record in records:
        if type(record) is not TxnRecord or record.currency != "CNY":
            continue
        if latest_plausible is not None and record.booked_at > latest_plausible:
            continue
        day_start = beijing_day_start(record.booked_at)
        first_day = day_start if first_day is None else min(first_day, day_start)
        latest_day = day_start if latest_day is None else max(latest_day, day_start)
        fold = folds.get(day_start)
        if fold is None:
            fold = folds[day_start] = _DayFold(kept.get(day_start) or DayPartial(day_start))
        fold.add(record)
    for day_start, fold in folds.items():
        kept[day_start] = fold.result()
    new = AccountFeatureState(first_day, latest_day)
    oldest = new.oldest_kept_day()
    new.days = [kept[day] for day in sorted(kept) if oldest is None or day >= oldest]
    return new
