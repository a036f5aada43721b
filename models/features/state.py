"""An account's feature state: per Beijing day partials of its CNY transactions, the same kind of
sums and counts the detectors keep per day (models/detectors/common, buckets), and a bounded
sample of counterparty hashes with the cents of each.

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

from bisect import bisect_left
from collections.abc import Iterable
from operator import attrgetter

import msgspec

from models.features.counterparties import CounterpartySample, counterparty_hash_of, merged
from models.features.schema import KEPT_DAYS, ROUND_1K_CENTS, ROUND_10K_CENTS
from models.windows import BEIJING_OFFSET, DAY, HOUR
from schemas.messages import BalanceRecord, TxnRecord

HOURS_PER_DAY = 24
_day_start = attrgetter("day_start")


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
        # days are ascending: a look-up by halving, called several times per step
        days = self.days
        i = bisect_left(days, day_start, key=_day_start)
        return days[i] if i < len(days) and days[i].day_start == day_start else None


def day_groups(
    records: Iterable[TxnRecord | BalanceRecord], latest_plausible: int | None = None
) -> dict[int, list[TxnRecord]]:
    """The records ``step`` counts (CNY transactions booked no later than ``latest_plausible``),
    by the start of their Beijing day, in the order they came."""
    groups: dict[int, list[TxnRecord]] = {}
    ceiling = latest_plausible
    for record in records:
        if type(record) is not TxnRecord or record.currency != "CNY":
            continue
        ts = record.booked_at
        if ceiling is not None and ts > ceiling:
            continue
        local = ts + BEIJING_OFFSET  # beijing_day_start inlined: this runs for every record
        day_start = local - local % DAY - BEIJING_OFFSET
        group = groups.get(day_start)
        if group is None:
            groups[day_start] = [record]
        else:
            group.append(record)
    return groups


def _folded(partial: DayPartial, txns: list[TxnRecord]) -> DayPartial:
    """A new partial: ``partial`` (left as it was) with one day's transactions added, in one
    pass with the sums in local variables and the counterparty hashes merged into the samples
    once."""
    credit_by_hour = list(partial.credit_cents_by_hour)
    debit_by_hour = list(partial.debit_cents_by_hour)
    count_by_hour = list(partial.transactions_by_hour)
    inflow = outflow = credits = debits = round_1k = round_10k = unknown = 0
    payers: dict[int, int] = {}  # counterparty hash -> the cents it paid in this take
    payees: dict[int, int] = {}
    day_start = partial.day_start
    for txn in txns:
        hour = (txn.booked_at - day_start) // HOUR
        cents = txn.amount_cents
        credit = txn.credit
        if credit:
            inflow += cents
            credits += 1
            credit_by_hour[hour] += cents
        else:
            outflow += cents
            debits += 1
            debit_by_hour[hour] += cents
        count_by_hour[hour] += 1
        if cents % ROUND_1K_CENTS == 0:
            round_1k += 1
            if cents % ROUND_10K_CENTS == 0:  # a multiple of ROUND_1K_CENTS
                round_10k += 1
        hashed = None if txn.channel == "CASH" else counterparty_hash_of(txn.counterparty_account)
        if hashed is None:
            unknown += 1
        elif credit:
            payers[hashed] = payers.get(hashed, 0) + cents
        else:
            payees[hashed] = payees.get(hashed, 0) + cents
    return DayPartial(
        day_start,
        partial.inflow_cents + inflow,
        partial.outflow_cents + outflow,
        partial.credits + credits,
        partial.debits + debits,
        credit_by_hour,
        debit_by_hour,
        count_by_hour,
        partial.round_1k_transactions + round_1k,
        partial.round_10k_transactions + round_10k,
        partial.unknown_counterparty_transactions + unknown,
        merged(partial.payers, payers) if payers else partial.payers,
        merged(partial.payees, payees) if payees else partial.payees,
    )


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
    return step_days(state, day_groups(records, latest_plausible))


def step_days(state: AccountFeatureState | None, groups: dict[int, list[TxnRecord]]) -> AccountFeatureState:
    """``step`` over records already counted and grouped by day (``day_groups``)."""
    state = state or AccountFeatureState()
    first_day, latest_day = state.first_day, state.latest_day
    if groups:
        earliest, latest = min(groups), max(groups)
        first_day = earliest if first_day is None else min(first_day, earliest)
        latest_day = latest if latest_day is None else max(latest_day, latest)
    new = AccountFeatureState(first_day, latest_day)
    oldest = new.oldest_kept_day()
    # the days held stay ascending: drop the head that fell out, then fold each group's day in
    # where it belongs, so a step costs its own days and not every day held
    days = state.days
    start = 0 if oldest is None else bisect_left(days, oldest, key=_day_start)
    days = days[start:]
    for day_start, txns in groups.items():
        if oldest is not None and day_start < oldest:  # an older day would be dropped right after
            continue
        i = bisect_left(days, day_start, key=_day_start)
        if i < len(days) and days[i].day_start == day_start:
            days[i] = _folded(days[i], txns)
        else:
            days.insert(i, _folded(DayPartial(day_start), txns))
    new.days = days
    return new
