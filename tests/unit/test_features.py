"""models/features: each feature on small hand-made days, the state's order independence and its
bounds, and a missing counterparty never counted as one."""

from __future__ import annotations

import math
import random
from datetime import datetime

import msgspec
import pytest

from models.features import (
    FEATURE_NAMES,
    FEATURE_SCHEMA,
    FEATURE_SCHEMA_HASH,
    KEPT_DAYS,
    AccountFeatureState,
    FeatureVector,
    closed_day_features,
    feature_values,
    own_usual_ranges,
    step,
    window_features,
)
from models.features.counterparties import (
    COUNTERPARTY_SAMPLE,
    CounterpartySample,
    distinct_count,
    known_counterparty,
    merged,
)
from models.features.window import dwell_hours
from models.windows import DAY
from schemas.fields import BEIJING
from schemas.messages import BalanceRecord, TxnRecord

DAY0 = int(datetime(2034, 2, 6, tzinfo=BEIJING).timestamp())  # a Beijing midnight
# A state's worst case, msgpack-encoded: docs/anomaly-features.md gives the arithmetic.
MAX_STATE_BYTES = 34 * 1024

_ids = iter(range(10**9))


def txn(
    hour: float,
    yuan: float,
    *,
    credit: bool = True,
    counterparty: str = "C1",
    day: int = 0,
    channel: str = "BEPS",
    currency: str = "CNY",
) -> TxnRecord:
    return TxnRecord(
        f"r{next(_ids)}", "ACC1", credit, round(yuan * 100), DAY0 + day * DAY + int(hour * 3600),
        counterparty, "B001", channel, currency, None, None, None, None, None,
    )  # fmt: skip


def features(records, day: int = 0) -> FeatureVector:
    vector = window_features(step(None, records), DAY0 + day * DAY)
    assert vector is not None
    return vector


def test_sums_and_counts_per_direction():
    vector = features([txn(9, 999), txn(10, 9_000), txn(11, 99, credit=False)])
    assert vector.inflow_log10_yuan == pytest.approx(4.0)  # log10(1 + 9,999)
    assert vector.outflow_log10_yuan == pytest.approx(2.0)
    assert (vector.credits, vector.debits) == (2, 1)


def test_distinct_counterparties_per_direction_are_exact_below_the_sample():
    records = [txn(9, 10, counterparty=f"P{n % 5}") for n in range(12)]
    records += [txn(12, 5, credit=False, counterparty=name) for name in ("Q1", "Q2", "P1")]
    vector = features(records)
    assert (vector.distinct_payers, vector.distinct_payees) == (5, 3)


def test_distinct_counterparties_beyond_the_sample_are_estimated():
    records = [txn(9, 10, counterparty=f"P{n}") for n in range(2_000)]
    sample = step(None, records).days[0].payers
    assert len(sample.hashes) == COUNTERPARTY_SAMPLE and sample.truncated
    assert distinct_count(sample) > COUNTERPARTY_SAMPLE
    # one estimate is off by about 1 / sqrt(30) (18%); over twenty sets the mean is close
    estimates = [
        distinct_count(
            step(None, [txn(9, 10, counterparty=f"S{s}-P{n}") for n in range(2_000)]).days[0].payers
        )
        for s in range(20)
    ]
    assert sum(estimates) / len(estimates) == pytest.approx(2_000, rel=0.1)


def test_a_missing_counterparty_is_not_evidence():
    known = [txn(9, 100, counterparty="P1"), txn(13, 50, credit=False, counterparty="Q1")]
    history = [txn(10, 100, counterparty="P1", day=-1), txn(14, 50, credit=False, counterparty="Q1", day=-1)]
    unknown = [
        txn(10, 100, counterparty="CASH", channel="CASH"),
        txn(11, 100, counterparty="0000000000"),
        txn(12, 100, counterparty="-"),
        txn(15, 20, credit=False, counterparty="UNKNOWN"),
    ]
    plain = window_features(step(None, history + known), DAY0)
    with_unknown = window_features(step(None, history + known + unknown), DAY0)
    assert (plain.distinct_payers, plain.distinct_payees) == (1, 1)
    assert (with_unknown.distinct_payers, with_unknown.distinct_payees) == (1, 1)
    assert (plain.unknown_counterparty_records, with_unknown.unknown_counterparty_records) == (0, 4)
    assert plain.new_counterparty_share == with_unknown.new_counterparty_share == 0.0
    assert known_counterparty(unknown[0]) is None and known_counterparty(known[0]) == "P1"


@pytest.mark.parametrize(
    ("inflow", "outflow", "expected"),
    [(1_000, 950, 0.95), (1_000, 0, 0.0), (0, 500, 10.0), (100, 5_000, 10.0)],
)
def test_pass_through_is_out_over_in_capped(inflow, outflow, expected):
    records = [txn(9, inflow)] if inflow else [txn(9, 1, credit=False, counterparty="X")]
    records += [txn(12, outflow, credit=False)] if outflow else []
    vector = features(records)
    if not inflow:  # the extra debit of 1 yuan keeps the day non-empty
        expected = 10.0
    assert vector.pass_through == pytest.approx(expected)


def test_dwell_matches_credits_to_later_debits_first_in_first_out():
    hours = [0] * 24

    def at(pairs):
        out = list(hours)
        for hour, cents in pairs:
            out[hour] += cents
        return out

    assert dwell_hours(at([(9, 100)]), at([(12, 100)])) == pytest.approx(3.0)
    assert dwell_hours(at([(9, 100)]), at([])) == pytest.approx(24.0)  # stays: a full day
    assert dwell_hours(at([(9, 100)]), at([(9, 50)])) == pytest.approx(12.0)  # half at once, half stays
    assert dwell_hours(at([]), at([(9, 100)])) == pytest.approx(24.0)  # nothing came in
    # 100 at 08h leaves at 11h (3 h); 100 at 10h stays (24 h)
    assert dwell_hours(at([(8, 100), (10, 100)]), at([(11, 100)])) == pytest.approx(13.5)
    # a debit before any credit of the day is paid from the opening balance: it matches nothing
    assert dwell_hours(at([(10, 100)]), at([(8, 100), (12, 100)])) == pytest.approx(2.0)


def test_dwell_of_a_day_from_records():
    vector = features([txn(9.5, 1_000), txn(11.2, 1_000, credit=False)])
    assert vector.dwell_hours == pytest.approx(2.0)


def test_hour_profile_night_share_and_entropy():
    vector = features([txn(2, 10), txn(3, 10), txn(14, 10), txn(15, 10)])
    assert vector.night_share == pytest.approx(0.5)
    assert vector.hour_entropy_bits == pytest.approx(2.0)  # four hours, one record each
    same_hour = features([txn(14.1, 10), txn(14.9, 10)])
    assert (same_hour.night_share, same_hour.hour_entropy_bits) == (0.0, 0.0)


def test_round_amount_shares():
    vector = features([txn(9, 5_000), txn(9, 20_000), txn(9, 1_234.56), txn(9, 10_000.01)])
    assert vector.round_1k_share == pytest.approx(2 / 4)
    assert vector.round_10k_share == pytest.approx(1 / 4)


def test_new_counterparty_share_against_the_history_days():
    history = [txn(9, 10, counterparty="P1", day=-3), txn(9, 10, credit=False, counterparty="Q1", day=-1)]
    today = [
        txn(9, 10, counterparty="P1"),
        txn(9, 10, counterparty="P2"),
        txn(12, 5, credit=False, counterparty="Q9"),
    ]
    vector = features(history + today)
    assert vector.history_days == 3
    assert vector.new_counterparty_share == pytest.approx(2 / 3)


def test_new_counterparty_share_beyond_the_samples_is_judged_where_they_are_complete():
    def share(history_names, today_names):
        history = [txn(9, 10, counterparty=name, day=-1) for name in history_names]
        return features(
            history + [txn(9, 10, counterparty=name) for name in today_names]
        ).new_counterparty_share

    old = [f"P{n}" for n in range(500)]
    assert share(old, old) == 0.0  # never a false "new", however many
    assert share(old, [f"N{n}" for n in range(500)]) == 1.0
    assert share(old, old[250:] + [f"N{n}" for n in range(250)]) == pytest.approx(0.5, abs=0.3)


def test_a_first_day_has_no_novelty_and_no_growth():
    vector = features([txn(9, 1_000_000, counterparty=f"P{n}") for n in range(5)])
    assert vector.history_days == 0
    assert (vector.new_counterparty_share, vector.inflow_growth_log2) == (0.0, 0.0)


def test_inflow_growth_against_the_trailing_daily_mean():
    # history: 1,000 yuan four days ago and nothing since (the quiet days count as zero)
    vector = features([txn(9, 1_000, day=-4), txn(9, 3_999)])
    assert vector.history_days == 4
    assert vector.inflow_growth_log2 == pytest.approx(math.log2(4_000 / 251))


def test_history_is_at_most_history_days():
    vector = features([txn(9, 1_000, day=-40), txn(9, 1_000, day=-20), txn(9, 1_000)])
    assert vector.history_days == FEATURE_SCHEMA.parameters["history_days"]


def test_only_cny_transactions_count():
    balance = BalanceRecord("b1", "ACC1", DAY0 + 3600, 10**9, None, "CNY")
    vector = features([txn(9, 100), txn(10, 10**6, currency="USD"), balance])
    assert (vector.credits, vector.inflow_log10_yuan) == (1, pytest.approx(math.log10(101)))
    assert window_features(step(None, [txn(9, 100, currency="USD")]), DAY0) is None


def test_a_record_beyond_the_plausible_clock_is_left_out():
    state = step(None, [txn(9, 100), txn(9, 100, day=3_650)], latest_plausible=DAY0 + DAY)
    assert [day.day_start for day in state.days] == [DAY0]


def _random_days(seed: int, days: int = 4, per_day: int = 300) -> list[TxnRecord]:
    rng = random.Random(seed)
    return [
        txn(
            rng.random() * 24, rng.choice([rng.randrange(1, 10**6) / 100, rng.randrange(1, 50) * 1_000]),
            credit=rng.random() < 0.5, counterparty=rng.choice([f"P{rng.randrange(120)}", "CASH"]),
            day=day, channel="CASH" if rng.random() < 0.05 else "BEPS",
        )
        for day in range(days)
        for _ in range(per_day)
    ]  # fmt: skip


def test_the_state_is_the_same_whatever_the_order_and_split_of_the_records():
    records = _random_days(3)
    whole = step(None, records)
    rng = random.Random(5)
    for _ in range(5):
        shuffled = list(records)
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), 6))
        state = None
        for start, end in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
            state = step(state, shuffled[start:end])
        assert state == whole
        assert msgspec.msgpack.encode(state) == msgspec.msgpack.encode(whole)
    assert [window_features(whole, DAY0 + d * DAY) for d in range(4)] == [
        window_features(step(None, list(reversed(records))), DAY0 + d * DAY) for d in range(4)
    ]


def test_step_leaves_the_given_state_as_it_was():
    before = step(None, _random_days(4, days=1))
    copy = msgspec.msgpack.decode(msgspec.msgpack.encode(before), type=AccountFeatureState)
    step(before, _random_days(5, days=2))
    assert before == copy


def test_the_state_is_bounded_in_days_counterparties_and_bytes():
    rng = random.Random(9)
    state = None
    for day in range(40):
        state = step(state, [
            TxnRecord(
                f"r{day}-{n}", "ACC1", n % 2 == 0, rng.randrange(10**11, 10**12), DAY0 + day * DAY + n * 29,
                f"C{rng.randrange(10**9)}", "B001", "BEPS", "CNY", None, None, None, None, None,
            )
            for n in range(2_900)
        ])  # fmt: skip
    assert len(state.days) == KEPT_DAYS
    assert state.days[0].day_start == DAY0 + (40 - KEPT_DAYS) * DAY
    assert all(len(d.payers.hashes) <= COUNTERPARTY_SAMPLE >= len(d.payees.hashes) for d in state.days)
    assert len(msgspec.msgpack.encode(state)) <= MAX_STATE_BYTES
    assert state.first_day == DAY0  # kept after its day left the state: the account is not new


def test_closed_day_features_follow_the_stream():
    records = sorted(_random_days(6, days=5), key=lambda r: (r.booked_at, r.record_id))
    vectors = closed_day_features(iter(records), DAY0 + 2 * DAY, DAY0 + 4 * DAY)
    whole = step(None, records)
    assert [v.day_start for v in vectors] == [DAY0 + 2 * DAY, DAY0 + 3 * DAY]
    # day 3 judged with day 4 already in the state: the same vector
    assert vectors == [window_features(whole, DAY0 + 2 * DAY), window_features(whole, DAY0 + 3 * DAY)]


def test_own_usual_ranges_over_the_history_days():
    records = [txn(9, 1_000 * (day + 7), day=day) for day in range(-6, 1)]
    state = step(None, records)
    ranges = own_usual_ranges(state, DAY0)
    assert ranges is not None and ranges.days == 6
    inflow = ranges.ranges[FEATURE_NAMES.index("inflow_log10_yuan")]
    assert math.log10(1_000) < inflow.low < inflow.high < math.log10(7_000)
    assert own_usual_ranges(step(None, records[-2:]), DAY0) is None  # one history day is no range


def test_the_schema_names_the_vector_and_hashes_its_meaning():
    assert FeatureVector.__struct_fields__[2:] == FEATURE_NAMES
    assert len(feature_values(features([txn(9, 1)]))) == len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert all(spec.unit and spec.definition for spec in FEATURE_SCHEMA.features)
    assert FEATURE_SCHEMA.hash() == FEATURE_SCHEMA_HASH
    changed = msgspec.structs.replace(
        FEATURE_SCHEMA, parameters={**FEATURE_SCHEMA.parameters, "history_days": 28}
    )
    assert changed.hash() != FEATURE_SCHEMA_HASH


def _merged_by_union(sample, amounts):
    """merged as the union of both sets, summed, sorted and cut to the sample (its first form)."""
    kept = sample.hashes
    truncated = sample.truncated
    if len(kept) >= COUNTERPARTY_SAMPLE and any(h > kept[-1] for h in amounts):
        truncated = True
        amounts = {h: c for h, c in amounts.items() if h <= kept[-1]}
    if not amounts and truncated == sample.truncated:
        return sample
    sums = {h: sample.cents_of(n) for n, h in enumerate(kept)}
    for h, c in amounts.items():
        sums[h] = sums.get(h, 0) + c
    union = sorted(sums)
    if len(union) > COUNTERPARTY_SAMPLE:
        union, truncated = union[:COUNTERPARTY_SAMPLE], True
    return CounterpartySample(union, truncated, [sums[h] for h in union])


@pytest.mark.parametrize("seed", range(20))
def test_merged_is_the_union_of_the_sample_and_the_new_hashes(seed: int) -> None:
    rng = random.Random(seed)
    pool = [rng.randrange(2**64) for _ in range(3 * COUNTERPARTY_SAMPLE)]
    sample = CounterpartySample()
    for _ in range(12):
        amounts = {rng.choice(pool): rng.randint(1, 10**6) for _ in range(rng.choice([0, 1, 2, 5, 40]))}
        if seed % 5 == 0:  # a sample written before the cents were kept
            sample = CounterpartySample(list(sample.hashes), sample.truncated, [])
        expected = _merged_by_union(sample, amounts)
        got = merged(sample, amounts)
        assert got == expected
        assert (got is sample) == (expected is sample)
        sample = got
    assert sample.hashes == sorted(set(sample.hashes))


def test_merged_leaves_the_sample_as_it_was() -> None:
    sample = CounterpartySample([3, 7], False, [30, 70])
    assert merged(sample, {5: 50, 7: 1}) == CounterpartySample([3, 5, 7], False, [30, 50, 71])
    assert sample == CounterpartySample([3, 7], False, [30, 70])
