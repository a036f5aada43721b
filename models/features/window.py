"""Feature vectors of closed days: a day's partial against the account's own history days.

A window is one Beijing day; the account's history is the HISTORY_DAYS days before it that the
state still holds, counted from its first day when it is younger. Days in it without records
count as days without money. docs/anomaly-features.md defines every feature with its unit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from itertools import groupby

import msgspec

from models.features.counterparties import distinct_count, new_share
from models.features.kinds import person_cents
from models.features.schema import (
    DWELL_FULL_DAY_HOURS,
    FEATURE_NAMES,
    HISTORY_DAYS,
    NIGHT_HOURS,
    PASS_THROUGH_CAP,
)
from models.features.state import AccountFeatureState, DayPartial, step
from models.windows import DAY, beijing_day_start
from schemas.messages import TxnRecord

MIN_OWN_DAYS = 3  # history days with records needed before an account's own range means anything


class FeatureVector(msgspec.Struct, frozen=True):
    """One account-day. The fields after ``history_days`` are the model's inputs, in
    FEATURE_NAMES order (feature_values); the two before them say what they were judged on."""

    day_start: int  # epoch seconds of the Beijing midnight opening the day
    history_days: int  # days of own history the growth and novelty features saw
    inflow_log10_yuan: float
    outflow_log10_yuan: float
    credits: float
    debits: float
    distinct_payers: float
    distinct_payees: float
    unknown_counterparty_records: float
    pass_through: float
    dwell_hours: float
    night_share: float
    hour_entropy_bits: float
    round_1k_share: float
    round_10k_share: float
    new_counterparty_share: float
    inflow_growth_log2: float
    person_inflow_2d_log10_yuan: float
    person_outflow_2d_log10_yuan: float
    person_passed_on_2d_log10_yuan: float


assert FeatureVector.__struct_fields__[2:] == FEATURE_NAMES, "FeatureVector must follow FEATURE_SCHEMA"


class UsualRange(msgspec.Struct, frozen=True):
    low: float  # 10th percentile
    high: float  # 90th percentile


class OwnUsualRanges(msgspec.Struct, frozen=True):
    days: int  # the account's history days with records the ranges were taken over
    ranges: tuple[UsualRange, ...]  # in FEATURE_NAMES order


def feature_values(vector: FeatureVector) -> tuple[float, ...]:
    return msgspec.structs.astuple(vector)[2:]


def log10_yuan(cents: float) -> float:
    return math.log10(1 + cents / 100)


def pass_through(inflow_cents: int, outflow_cents: int) -> float:
    """Debits / credits; a day that pays out without taking in is at the cap, one without either
    at 0."""
    if outflow_cents == 0:
        return 0.0
    if inflow_cents == 0:
        return PASS_THROUGH_CAP
    return min(PASS_THROUGH_CAP, outflow_cents / inflow_cents)


def dwell_hours(credit_cents_by_hour: list[int], debit_cents_by_hour: list[int]) -> float:
    """Mean hours a credited yuan stays before a debit of the same day takes it out.

    Credits are matched first in, first out to the debits of the same or a later hour; a debit
    in the same hour as its credit counts 0 hours (the partials are hourly), a yuan still there
    at the day's end counts a full day, and debits beyond the day's credits (paid from the
    opening balance) match nothing. Weighted by amount; a day without credits is a full day."""
    total_in = sum(credit_cents_by_hour)
    if total_in == 0:
        return DWELL_FULL_DAY_HOURS
    waiting: deque[list[int]] = deque()  # [hour credited, cents not yet debited]
    weighted = 0
    for hour, (credited, debited) in enumerate(zip(credit_cents_by_hour, debit_cents_by_hour, strict=True)):
        if credited:
            waiting.append([hour, credited])
        while debited and waiting:
            lot = waiting[0]
            taken = min(lot[1], debited)
            weighted += taken * (hour - lot[0])
            debited -= taken
            lot[1] -= taken
            if not lot[1]:
                waiting.popleft()
    weighted += sum(cents for _, cents in waiting) * DWELL_FULL_DAY_HOURS
    return weighted / total_in


def hour_entropy_bits(by_hour: list[int]) -> float:
    total = sum(by_hour)
    if total == 0:
        return 0.0
    return -sum(n / total * math.log2(n / total) for n in by_hour if n) + 0.0  # no -0.0


def history_start(state: AccountFeatureState, day_start: int) -> int:
    """The first history day of ``day_start``: HISTORY_DAYS back, but not before the account's
    first day nor before the oldest day the state still holds."""
    start = day_start - HISTORY_DAYS * DAY
    for bound in (state.first_day, state.oldest_kept_day()):
        if bound is not None:
            start = max(start, bound)
    return min(start, day_start)


def window_features(
    state: AccountFeatureState, day_start: int, kinds: Mapping[int, str] | None = None
) -> FeatureVector | None:
    """The features of the Beijing day opening at ``day_start``, or None when the state holds no
    CNY transaction of it (no record, nothing to judge). ``kinds``: counterparty hash -> kind of
    the registered accounts (models/features/kinds.py); without it no counterparty's kind is
    known and both kind shares are neutral."""
    day = state.day(day_start)
    if day is None or not day.transactions:
        return None
    start = history_start(state, day_start)
    history = [partial for partial in state.days if start <= partial.day_start < day_start]
    history_days = (day_start - start) // DAY
    transactions = day.transactions
    novelty = 0.0  # a first day meets everyone for the first time: that is no evidence
    if history_days:
        novelty, _ = new_share(
            (day.payers, day.payees), (s for partial in history for s in (partial.payers, partial.payees))
        )
    person_in, person_out = person_flows_2d(state, day, kinds)
    return FeatureVector(
        day_start=day_start,
        history_days=history_days,
        inflow_log10_yuan=log10_yuan(day.inflow_cents),
        outflow_log10_yuan=log10_yuan(day.outflow_cents),
        credits=float(day.credits),
        debits=float(day.debits),
        distinct_payers=distinct_count(day.payers),
        distinct_payees=distinct_count(day.payees),
        unknown_counterparty_records=float(day.unknown_counterparty_transactions),
        pass_through=pass_through(day.inflow_cents, day.outflow_cents),
        dwell_hours=dwell_hours(day.credit_cents_by_hour, day.debit_cents_by_hour),
        night_share=sum(day.transactions_by_hour[hour] for hour in NIGHT_HOURS) / transactions,
        hour_entropy_bits=hour_entropy_bits(day.transactions_by_hour),
        round_1k_share=day.round_1k_transactions / transactions,
        round_10k_share=day.round_10k_transactions / transactions,
        new_counterparty_share=novelty,
        inflow_growth_log2=inflow_growth_log2(day, history, history_days),
        person_inflow_2d_log10_yuan=log10_yuan(person_in),
        person_outflow_2d_log10_yuan=log10_yuan(person_out),
        person_passed_on_2d_log10_yuan=log10_yuan(min(person_in, person_out)),
    )


def person_flows_2d(
    state: AccountFeatureState, day: DayPartial, kinds: Mapping[int, str] | None
) -> tuple[float, float]:
    """Cents from and to customers' registered accounts over ``day`` and the day before it (when
    the state holds it): money passed from customer to customer is often taken in one evening
    and sent on the next morning, so one day alone would split it."""
    days = [partial for partial in (day, state.day(day.day_start - DAY)) if partial is not None]
    return (
        sum(person_cents(p.payers, kinds) for p in days),
        sum(person_cents(p.payees, kinds) for p in days),
    )


def inflow_growth_log2(day: DayPartial, history: list[DayPartial], history_days: int) -> float:
    """log2 of (the day's credits + 1 yuan) over (the history's mean daily credits + 1 yuan);
    0 without history (a new account has grown against nothing, which is no evidence)."""
    if history_days == 0:
        return 0.0
    trailing_mean_yuan = sum(partial.inflow_cents for partial in history) / 100 / history_days
    return math.log2((day.inflow_cents / 100 + 1) / (trailing_mean_yuan + 1))


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile of sorted values, interpolated linearly (numpy's default)."""
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def own_usual_ranges(
    state: AccountFeatureState, day_start: int, kinds: Mapping[int, str] | None = None
) -> OwnUsualRanges | None:
    """The account's own 10th-90th percentile of each feature over its history days with
    records, or None with fewer than MIN_OWN_DAYS of them. A history day's own features see
    only the days the state still holds before it, so its growth and novelty rest on a shorter
    history than the judged day's."""
    start = history_start(state, day_start)
    vectors = [
        vector
        for partial in state.days
        if start <= partial.day_start < day_start
        and (vector := window_features(state, partial.day_start, kinds)) is not None
    ]
    if len(vectors) < MIN_OWN_DAYS:
        return None
    columns = zip(*(feature_values(vector) for vector in vectors), strict=True)
    ranges = []
    for column in columns:
        ordered = sorted(column)
        ranges.append(UsualRange(percentile(ordered, 10), percentile(ordered, 90)))
    return OwnUsualRanges(len(vectors), tuple(ranges))


def closed_day_features(
    records: Iterable[TxnRecord],
    judged_from: int,
    judged_until: int,
    kinds: Mapping[int, str] | None = None,
) -> list[FeatureVector]:
    """The feature vector of every day in [judged_from, judged_until) (Beijing midnights) that
    has transactions, from one account's records in event-time order, as the stream would
    compute each when the day closes: folded a day at a time, so that records before
    ``judged_from`` serve as history only. The records are read as they come (an iterator over
    a long history holds one day in memory). ``kinds`` as for ``window_features``."""
    state: AccountFeatureState | None = None
    vectors = []
    for day_start, day_records in groupby(records, key=lambda txn: beijing_day_start(txn.booked_at)):
        state = step(state, day_records)
        if judged_from <= day_start < judged_until:
            vector = window_features(state, day_start, kinds)
            if vector is not None:
                vectors.append(vector)
    return vectors
