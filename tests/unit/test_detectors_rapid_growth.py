"""models/detectors/rapid_growth.py: an institution's inflow or new investors far above its own trend."""

from __future__ import annotations

import copy
import random
from datetime import date, timedelta

import msgspec
import pytest

from models.alerting import fold_findings
from models.detectors import fold
from models.detectors import rapid_growth as det
from models.detectors import rapid_growth_days as day_state
from models.detectors.common import ALLOWED_LATENESS, LATE_KEEP, is_sealed
from models.detectors.context import DetectContext
from models.detectors.wording import mask
from models.findings import TYPOLOGIES, alert_id_for
from models.thresholds import DEFAULT_FILE, Thresholds, load_thresholds
from models.windows import DAY, beijing_day_start
from tests.unit.test_detectors_common import (
    CUSTODY,
    INVESTOR,
    OWN,
    OWN_B,
    OWN_PAY,
    RESERVE,
    TEST_THRESHOLDS,
    assert_explanations_safe,
    assert_no_record_ids,
    bj,
    check_order_independent,
    check_replays_change_nothing,
    deliveries,
    references,
    txn,
)

# -- the world -------------------------------------------------------------------------------

PAYERS = tuple(f"6217999800{i:06d}" for i in range(600))  # investors unknown to the reference data
REGULARS = PAYERS[:5]  # pay in every day

GROWTH = {"trend_days": 14, "growth_ratio": "3.0", "min_inflow": "1000000.00",
          "min_history_days": 5, "min_new_investors": 20}  # fmt: skip
SHORT = {"trend_days": 2, "min_history_days": 2}  # the whole history within ALLOWED_LATENESS
THRESHOLDS = Thresholds(
    version=TEST_THRESHOLDS.version,
    defaults={**TEST_THRESHOLDS.defaults, "rapid_growth": GROWTH},
    overrides=TEST_THRESHOLDS.overrides,
)


def world(growth: dict | None = None, overrides: dict | None = None) -> DetectContext:
    thresholds = THRESHOLDS
    if growth is not None or overrides is not None:
        defaults = {**THRESHOLDS.defaults, "rapid_growth": {**GROWTH, **(growth or {})}}
        thresholds = Thresholds("test-1", defaults, {**THRESHOLDS.overrides, **(overrides or {})})
    return DetectContext(references(), thresholds)


D = "2026-11-25"  # the day of the spike


def day(offset: int) -> str:
    return (date(2026, 11, 25) + timedelta(days=offset)).isoformat()


def inflow(payers, amount, on=D, account=CUSTODY, hour=10):
    return [
        txn(account, True, amount, f"{on} {hour + i // 60:02d}:{i % 60:02d}:00", p)
        for i, p in enumerate(payers)
    ]


def history(days=14, amount="80000.00", payers=REGULARS, account=CUSTODY):
    """``days`` days before D on which the regulars pay ``amount`` each: 400,000 a day by default."""
    records = []
    for k in range(days, 0, -1):
        records += inflow(payers, amount, on=day(-k), account=account)
    return records


def run(records, ctx=None, institution="P1"):
    return det.detect(ctx or world(), None, institution, "m1", records)


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def assert_private(finding):
    assert_explanations_safe(finding)
    for text in (finding.explanation_zh, finding.explanation_en):
        for account in PAYERS:
            assert account not in text


# -- the rule --------------------------------------------------------------------------------


def test_a_spike_in_inflow_is_a_finding():
    spike = inflow(REGULARS, "240000.00")  # 1,200,000 = 3 x the median 400,000
    state, findings = run(history() + spike)
    f = only(findings)
    assert f.typology == "rapid_growth" and f.key == f"P1:{D}" and f.institution_id == "P1"
    assert f.alert_id == alert_id_for("rapid_growth", f.key)
    assert f.rule == "四(二)4" and f.detector_version == "rapid_growth/1"
    assert f.severity == "medium" and f.amount_cents == 120_000_000 and f.accounts == (CUSTODY,)
    assert f.metrics["signals"] == ["inflow"] and f.metrics["inflow"] == "1200000.00"
    assert f.metrics["baseline_inflow"] == "400000.00" and f.metrics["inflow_ratio"] == "3.000000"
    assert f.metrics["history_days"] == 14 and len(f.metrics["history"]) == 14
    assert f.metrics["history"][0] == {"day": day(-14), "inflow": "400000.00", "new_investors": 5}
    assert f.metrics["new_investors"] == 0 and f.metrics["new_investors_estimated"] is False
    assert f.metrics["inflow_count"] == 5 and f.metrics["distinct_payers"] == 5
    assert f.thresholds["growth_ratio"] == "3.0" and f.thresholds["config_version"] == "test-1"
    assert f.window_start == bj(f"{D} 10:00:00") and f.window_end == bj(f"{D} 10:04:00")
    assert set(f.record_ids) == {r.record_id for r in spike}
    assert f.extra == {"region": "220102", "institution_type": "p2p_lending"}
    assert f.score == 0.25
    zh, en = f.explanation_zh, f.explanation_en
    assert "客户资金存管账户****1001收到外部转入资金5笔、合计1,200,000.00 元" in zh
    assert "为此前14个北京日单日转入中位数400,000.00 元的3.00倍" in zh and "（《方案》四(二)4）" in zh
    assert (
        "customer-custody account ****1001 received 5 payment(s) from outside totalling CNY 1,200,000.00"
        in en
    )
    assert "3.00 times the median daily inflow of CNY 400,000.00 over the previous 14 Beijing day(s)" in en
    assert en.endswith("(rectification plan §4(2)4).")
    assert_private(f)
    assert state["first"] == beijing_day_start(bj(f"{day(-14)} 10:00:00"))


def test_inflow_at_the_line_and_one_cent_below():
    at = inflow(REGULARS, "240000.00")
    assert only(run(history() + at)[1]).metrics["inflow_ratio"] == "3.000000"
    below = at[:-1] + inflow(REGULARS[4:], "239999.99")
    assert run(history() + below)[1] == []
    assert only(run(history() + below, ctx=world({"growth_ratio": "2.9"}))[1]).severity == "medium"


def test_a_tiny_baseline_is_guarded_by_the_minimum_inflow():
    """Baseline 10,000 a day: 100 x is not growth that matters until it reaches min_inflow."""
    small = history(amount="2000.00")
    below = inflow(REGULARS[:4], "200000.00") + inflow(REGULARS[4:], "199999.99")  # 999,999.99
    assert run(small + below)[1] == []
    at = inflow(REGULARS, "200000.00")  # 1,000,000.00 = 3 x max(10,000, 1,000,000 / 3)
    f = only(run(small + at)[1])
    assert f.metrics["inflow_ratio"] == "3.000000" and f.severity == "medium"
    assert f.metrics["baseline_inflow"] == "10000.00"
    assert "而此前14个北京日单日转入中位数仅为10,000.00 元" in f.explanation_zh
    assert "was only CNY 10,000.00" in f.explanation_en
    assert (
        only(run(small + at, ctx=world({"min_inflow": "900000.00"}))[1]).metrics["inflow_ratio"] == "3.333333"
    )
    assert run(small + at, ctx=world({"min_inflow": "1000000.01"}))[1] == []


@pytest.mark.parametrize(
    ("each", "last", "severity"),
    [
        ("480000.00", "479999.99", "medium"),  # 2,399,999.99: just below 6 x 400,000
        ("480000.00", "480000.00", "high"),  # 2,400,000.00 = 2 x growth_ratio x the baseline
        ("960000.00", "959999.99", "high"),
        ("960000.00", "960000.00", "critical"),  # 4,800,000.00 = 4 x growth_ratio x the baseline
    ],
)
def test_severity_by_the_growth_ratio(each, last, severity):
    spike = inflow(REGULARS[:4], each) + inflow(REGULARS[4:], last)
    f = only(run(history() + spike)[1])
    assert f.severity == severity
    assert 0.5 <= f.score <= 1.0 and (severity != "critical" or f.score == 1.0)


def test_new_investors_with_no_new_ones_before():
    """The regulars keep paying; one day 20 payers never seen pay small sums: the new baseline is
    0, guarded to 1, so 20 >= min_new_investors and >= 3 x 1."""
    newcomers = inflow(PAYERS[100:120], "1000.00", hour=14)
    f = only(run(history() + inflow(REGULARS, "80000.00") + newcomers)[1])
    assert f.metrics["signals"] == ["new_investors"] and f.metrics["new_investors"] == 20
    assert f.metrics["baseline_new_investors"] == "0.0" and f.metrics["new_investors_ratio"] == "20.000000"
    assert f.severity == "critical" and f.amount_cents == 42_000_000
    assert "当日新增付款账户20个，而此前14个北京日单日中位数仅为0个" in f.explanation_zh
    assert "20 new payer account(s) paid in that day, while the median" in f.explanation_en
    assert_private(f)
    assert run(history() + inflow(REGULARS, "80000.00") + newcomers[:19])[1] == []
    assert only(run(history() + newcomers[:19], ctx=world({"min_new_investors": 19}))[1])


def test_new_investors_against_their_own_trend():
    """Ten new payers a day is the trend: 30 (3 x 10) fires, 29 does not."""
    records = []
    for k in range(14, 0, -1):
        fresh = PAYERS[10 + 10 * k : 20 + 10 * k]
        records += inflow(REGULARS, "80000.00", on=day(-k)) + inflow(fresh, "500.00", on=day(-k), hour=12)
    today = inflow(REGULARS, "80000.00")
    f = only(run(records + today + inflow(PAYERS[300:330], "500.00", hour=12))[1])
    assert f.metrics["new_investors"] == 30 and f.metrics["baseline_new_investors"] == "10.0"
    assert f.metrics["new_investors_ratio"] == "3.000000" and f.severity == "medium"
    assert "为此前14个北京日单日中位数10个的3.00倍" in f.explanation_zh
    assert "3.00 times the median of 10 a day" in f.explanation_en
    assert run(records + today + inflow(PAYERS[300:329], "500.00", hour=12))[1] == []


def test_a_payer_is_new_again_after_trend_days():
    """Payers seen 15 days before (outside the 14-day trend) are new; seen 14 days before, not."""
    regular = history(days=15)
    returning = inflow(PAYERS[100:120], "1000.00", hour=14)
    old = inflow(PAYERS[100:120], "1000.00", on=day(-15), hour=14)
    f = only(run(regular + old + returning)[1])
    assert f.metrics["new_investors"] == 20
    recent = inflow(PAYERS[100:120], "1000.00", on=day(-14), hour=14)
    assert run(regular + recent + returning)[1] == []


def test_a_big_day_needs_min_history_days_of_history():
    big = inflow(REGULARS, "1000000.00")
    assert run(history(days=4) + big)[1] == []
    f = only(run(history(days=5) + big)[1])
    assert f.metrics["history_days"] == 5 and f.severity == "critical"  # 5,000,000 vs 400,000
    assert only(run(history(days=4) + big, ctx=world({"min_history_days": 4}))[1])


def test_quiet_days_count_as_history_from_the_first_record_on():
    """Days with no inflow count as 0, but only from the institution's first record on."""
    big = inflow(REGULARS, "200000.00")  # 1,000,000
    opened = [txn(OWN, False, "100.00", f"{day(-5)} 09:00:00", PAYERS[599])]  # a fee paid, 5 days before
    f = only(run(opened + big)[1])
    assert f.metrics["history_days"] == 5 and f.metrics["baseline_inflow"] == "0.00"
    assert f.metrics["history"][0] == {"day": day(-5), "inflow": "0.00", "new_investors": 0}
    later = [txn(OWN, False, "100.00", f"{day(-4)} 09:00:00", PAYERS[599])]
    assert run(later + big)[1] == []
    assert run(big)[1] == []  # the first day of all has no history


# -- hard negatives --------------------------------------------------------------------------


def test_steady_high_volume_is_no_growth():
    rng = random.Random(7)
    ctx = world()
    state = None
    for k in range(30, -1, -1):
        amount = f"{rng.randint(90000, 110000)}.00"  # about 5,000,000 a day from 50 payers
        state, findings = det.detect(ctx, state, "P1", f"m{k}", inflow(PAYERS[:50], amount, on=day(-k)))
        assert findings == []
    assert det.current(ctx, state, "P1") == []


def test_internal_transfers_between_its_own_accounts_are_not_growth():
    """Own money moved into custody, reported by both banks (the debit on the own account and the
    credit on custody), and customers paying the own operating account: no inflow."""
    moves = []
    for i, source in enumerate((OWN, OWN_B, CUSTODY)):
        moves.append(txn(CUSTODY, True, "3000000.00", f"{D} 11:0{i}:00", source, channel="INTERNAL"))
        moves.append(txn(source, False, "3000000.00", f"{D} 11:0{i}:00", CUSTODY, channel="INTERNAL"))
    moves += inflow(PAYERS[100:140], "100000.00", account=OWN)  # not a custody account
    state, findings = run(history() + inflow(REGULARS, "80000.00") + moves)
    assert findings == []
    entry = state["days"][str(beijing_day_start(bj(f"{D} 10:00:00")))]
    assert entry["in"]["c"] == 40_000_000 and len(entry["pay"]) == 5


def test_records_of_other_institutions_and_currencies_do_not_count():
    foreign = inflow(PAYERS[100:140], "100000.00", account=OWN_PAY)  # another institution's account
    foreign += inflow(PAYERS[140:180], "100000.00", account=INVESTOR)  # a customer's own account
    usd = [txn(CUSTODY, True, "9000000.00", f"{D} 12:00:00", PAYERS[200], currency="USD")]
    assert run(history() + foreign + usd)[1] == []


def test_a_payment_institutions_reserve_counts_with_its_own_type_thresholds():
    ctx = world(overrides={"payment": {"rapid_growth": {"min_inflow": "5000000.00"}}})
    records = history(account=RESERVE) + inflow(REGULARS, "240000.00", account=RESERVE)
    assert run(records, ctx=ctx, institution="PAY")[1] == []  # 1,200,000 < its min_inflow
    spike = history(account=RESERVE) + inflow(REGULARS, "1000000.00", account=RESERVE)
    f = only(run(spike, ctx=ctx, institution="PAY")[1])
    assert f.key == f"P1:{D}".replace("P1", "PAY") and f.thresholds["min_inflow"] == "5000000.00"
    assert "客户备付金账户****1012" in f.explanation_zh and f.extra["institution_type"] == "payment"
    assert_private(f)


def test_a_review_without_records_changes_nothing():
    ctx = world()
    assert det.detect(ctx, None, "P1", "review/1", []) == ({}, [])
    state, _ = run(history() + inflow(REGULARS, "240000.00"))
    assert det.detect(ctx, state, "P1", "review/2", []) == (state, [])


# -- evaluated as the day goes, keys, re-emission --------------------------------------------


def test_the_alert_comes_early_and_updates_as_the_day_grows():
    ctx = world()
    state, _ = det.detect(ctx, None, "P1", "h", history())
    state, first = det.detect(ctx, state, "P1", "m1", inflow(REGULARS, "100000.00", hour=9))  # 500,000
    assert first == []
    state, second = det.detect(ctx, state, "P1", "m2", inflow(REGULARS, "180000.00", hour=10))  # 1,400,000
    f = only(second)
    assert f.metrics["inflow"] == "1400000.00" and f.severity == "medium"
    assert f.window_end == bj(f"{D} 10:04:00")
    state, third = det.detect(ctx, state, "P1", "m3", inflow(REGULARS, "200000.00", hour=11))  # 2,400,000
    g = only(third)
    assert g.alert_id == f.alert_id and g.severity == "high" and g.window_end == bj(f"{D} 11:04:00")


def test_a_late_record_of_an_earlier_day_re_evaluates_the_days_after_it():
    ctx = world({"trend_days": 3, "min_history_days": 3})
    state, findings = det.detect(ctx, None, "P1", "m1", history(days=5) + inflow(REGULARS, "240000.00"))
    assert only(findings).metrics["inflow_ratio"] == "3.000000"
    late = inflow(REGULARS[:1], "5000000.00", on=day(-1), hour=16)  # yesterday was big too
    state, findings = det.detect(ctx, state, "P1", "m2", late)
    # yesterday itself fires; today is re-evaluated, and its baseline (a median) did not move
    assert [f.key for f in findings] == [f"P1:{day(-1)}", f"P1:{D}"]
    assert findings[1].metrics["baseline_inflow"] == "400000.00"
    # the day before yesterday turns out big as well: today's median is now 1,400,000
    state, findings = det.detect(
        ctx, state, "P1", "m3", inflow(REGULARS[:1], "1000000.00", on=day(-2), hour=17)
    )
    assert f"P1:{D}" not in {g.key for g in findings}
    assert f"P1:{D}" not in {g.key for g in det.current(ctx, state, "P1")}


def test_re_emission_with_the_same_facts_is_byte_identical():
    ctx = world()
    records = history() + inflow(REGULARS, "240000.00")
    state, findings = det.detect(ctx, None, "P1", "m1", records)
    memory, changed = fold_findings(None, findings, {"P1": "220102"}, at=bj(f"{D} 12:00:00"))
    assert [kind for kind, _ in changed] == ["created"]
    # an own-account record of the same day re-evaluates it later: nothing changes
    state2, again = det.detect(
        ctx, state, "P1", "m2", [txn(OWN, False, "10.00", f"{D} 13:00:00", PAYERS[599])]
    )
    assert again == findings
    assert msgspec.json.encode(again[0].metrics) == msgspec.json.encode(findings[0].metrics)
    _, changed = fold_findings(memory, again, {"P1": "220102"}, at=bj(f"{D} 18:00:00"))
    assert changed == []
    assert findings[0].window_end <= state2["wm"]  # never ahead of the data


# -- replays, order, lateness, bounds --------------------------------------------------------


def test_replays_change_nothing():
    check_replays_change_nothing(det, world(), "P1", history() + inflow(REGULARS, "240000.00"))


def test_state_is_not_mutated():
    ctx = world()
    state, _ = det.detect(ctx, None, "P1", "m1", history())
    snapshot = copy.deepcopy(state)
    det.detect(
        ctx, state, "P1", "m2", inflow(PAYERS[:40], "100000.00") + inflow(PAYERS[:3], "1.00", on=day(-1))
    )
    assert state == snapshot


def _three_days():
    """D-2 and D-1 are the history (trend_days 2), D grows in money and in new investors."""
    records = inflow(REGULARS, "100000.00", on=day(-2)) + inflow(REGULARS, "100000.00", on=day(-1))
    records += inflow(REGULARS, "300000.00") + inflow(PAYERS[100:125], "10000.00", hour=13)
    records += [txn(CUSTODY, True, "5000000.00", f"{D} 15:00:00", OWN, channel="INTERNAL")]  # internal
    records += [txn(OWN, False, "5000000.00", f"{D} 15:00:00", CUSTODY, channel="INTERNAL")]
    records += [txn(CUSTODY, True, "5000000.00", f"{D} 16:00:00", PAYERS[400], currency="USD")]
    return records


def test_order_and_split_do_not_matter():
    latest = check_order_independent(det, world(SHORT), "P1", _three_days())
    f = latest[f"P1:{D}"]
    assert set(latest) == {f"P1:{D}"}
    assert f.metrics["signals"] == ["inflow", "new_investors"]
    assert f.metrics["inflow"] == "1750000.00" and f.metrics["baseline_inflow"] == "500000.00"
    assert f.metrics["new_investors"] == 25 and f.metrics["baseline_new_investors"] == "2.5"
    assert f.metrics["new_investors_ratio"] == "10.000000" and f.severity == "high"


def test_order_does_not_matter_over_a_full_history():
    """History in order, then the last three days (within ALLOWED_LATENESS) in any order."""
    ctx = world()
    base = history(days=14)[: -2 * 5]  # D-14 .. D-3
    recent = []
    for k in (2, 1):
        recent += inflow(REGULARS, "80000.00", on=day(-k)) + inflow(
            PAYERS[200 + 3 * k : 203 + 3 * k], "10.00", on=day(-k)
        )
    recent += inflow(REGULARS, "300000.00") + inflow(PAYERS[100:130], "1000.00", hour=13)
    start, _ = fold(det, ctx, "P1", [("history", base)])
    base_state, base_latest = fold(det, ctx, "P1", [("all", recent)], state=start)
    assert {f.key for f in det.current(ctx, base_state, "P1")} == {f"P1:{D}"}
    for seed in range(15):
        state, latest = fold(det, ctx, "P1", deliveries(recent, seed), state=start)
        assert state == base_state, seed
        assert latest[f"P1:{D}"] == base_latest[f"P1:{D}"], seed
    assert base_latest[f"P1:{D}"].metrics["signals"] == ["inflow", "new_investors"]


def test_late_records_within_the_allowed_lateness_still_count():
    ctx = world()
    state, _ = det.detect(ctx, None, "P1", "m1", history() + inflow(REGULARS, "240000.00"))
    # an own account's record does not move the watermark: custody and reserve credits are the
    # figures, and their banks the sources
    moved, _ = det.detect(
        ctx, state, "P1", "m2", [txn(OWN, False, "1.00", f"{day(5)} 23:00:00", PAYERS[599])]
    )
    assert moved["wm"] == state["wm"]
    # two days later (D + 2, 23:00) the day D is still open: its late records count
    state, _ = det.detect(
        ctx, state, "P1", "m2", [txn(CUSTODY, False, "1.00", f"{day(2)} 23:00:00", PAYERS[599])]
    )
    assert not is_sealed(bj(f"{D} 10:00:00"), state["wm"])
    state, findings = det.detect(ctx, state, "P1", "m3", inflow(REGULARS[:1], "600000.00", hour=20))
    assert only(findings).metrics["inflow"] == "1800000.00" and only(findings).metrics["late"] is False
    # the day before is sealed: its records still count, marked late, and the day is judged again
    sealed = inflow(REGULARS[:1], "9000000.00", on=day(-1), hour=20)
    assert bj(f"{D} 00:00:00") + ALLOWED_LATENESS <= state["wm"]
    later, findings = det.detect(ctx, state, "P1", "m4", sealed)
    late = {f.key: f for f in findings}[f"P1:{day(-1)}"]
    assert late.metrics["late"] is True and late.metrics["inflow"] == "9400000.00"  # with its own day's


def test_state_stays_bounded():
    ctx = world()
    state = None
    for k in range(40, -1, -1):
        state, _ = det.detect(ctx, state, "P1", f"m{k}", inflow(PAYERS[:30], "1000.00", on=day(-k)))
    # the days open and those whose history they hold, and LATE_KEEP more for late records
    assert len(state["days"]) <= GROWTH["trend_days"] + 3 + LATE_KEEP // DAY
    assert_no_record_ids(state)
    assert msgspec.json.decode(msgspec.json.encode(state)) == state  # plain JSON, str keys
    assert all(isinstance(k, str) for k in state["days"])


# -- the payer sample ------------------------------------------------------------------------


def _ideal_new(payers_by_day: dict[int, set[str]], when: int, trend: int, cap: int) -> int:
    """New investors of a day from the full sets, at the window's sample level (the definition)."""

    def day_level(payers: set[str]) -> int:
        lvl = 0
        while sum(1 for p in payers if day_state.level(p) >= lvl) > cap:
            lvl += 1
        return lvl

    window = [when - k * DAY for k in range(trend + 1)]
    top = max(day_level(payers_by_day.get(d, set())) for d in window)
    before = set().union(*(payers_by_day.get(d, set()) for d in window[1:]))
    fresh = {p for p in payers_by_day.get(when, set()) if day_state.level(p) >= top and p not in before}
    return len(fresh) << top


@pytest.mark.parametrize("cap", [8, 16, 10_000])
def test_new_investors_match_the_definition_whatever_the_cap(monkeypatch, cap):
    monkeypatch.setattr(day_state, "PAYER_CAP", cap)
    rng = random.Random(cap)
    records, messages = [], []
    for pair in ((-7, -6), (-5, -4), (-3, -2), (-1, 0)):  # two days at a time, in any order
        batch = []
        for k in pair:
            batch += inflow(rng.sample(PAYERS[:200], rng.randint(10, 120)), "100.00", on=day(k))
        rng.shuffle(batch)
        records += batch
        messages += [(f"m{len(messages)}-{i}", batch[i : i + 37]) for i in range(0, len(batch), 37)]
    ctx = world({"trend_days": 3})
    state, _ = fold(det, ctx, "P1", messages)
    payers_by_day: dict[int, set[str]] = {}
    for r in records:
        payers_by_day.setdefault(beijing_day_start(r.booked_at), set()).add(r.counterparty_account)
    for key, entry in state["days"].items():
        assert len(entry["pay"]) <= cap
        assert day_state.new_investors(entry) == _ideal_new(payers_by_day, int(key), 3, cap), key
        if cap == 10_000:  # no sample: exact
            window = [int(key) - k * DAY for k in range(1, 4)]
            seen = set().union(*(payers_by_day.get(d, set()) for d in window))
            assert day_state.new_investors(entry) == len(payers_by_day[int(key)] - seen)


def test_a_sampled_day_says_its_figure_is_an_estimate(monkeypatch):
    monkeypatch.setattr(day_state, "PAYER_CAP", 16)
    records = inflow(REGULARS, "100000.00", on=day(-2)) + inflow(REGULARS, "100000.00", on=day(-1))
    records += inflow(PAYERS[100:400], "10.00", hour=12)  # 300 new payers
    latest = check_order_independent(det, world(SHORT), "P1", records, seeds=10)
    f = latest[f"P1:{D}"]
    assert f.metrics["new_investors_estimated"] is True and f.metrics["sample_level"] > 0
    assert f.metrics["signals"] == ["new_investors"]
    assert 150 <= f.metrics["new_investors"] <= 600  # an estimate of 300
    assert "当日新增付款账户约" in f.explanation_zh and "; about " in f.explanation_en
    state = fold(det, world(SHORT), "P1", [("m", records)])[0]
    assert all(len(e["pay"]) <= 16 for e in state["days"].values())


# -- registry and configuration ---------------------------------------------------------------


def test_reads_the_shipped_thresholds():
    assert det.NAME in TYPOLOGIES and det.SCOPE == "institution"
    real = load_thresholds(env={}, path=DEFAULT_FILE)
    assert set(GROWTH) <= set(real.defaults["rapid_growth"])
    assert set(det.DEFAULTS) == set(GROWTH)
    assert real.defaults["rapid_growth"]["min_history_days"] == det.DEFAULTS["min_history_days"]
    assert real.defaults["rapid_growth"]["min_new_investors"] == det.DEFAULTS["min_new_investors"]
    assert mask(CUSTODY) == "****1001"


def test_levels_are_a_stable_hash_sample():
    assert day_state.level(PAYERS[0]) == day_state.level(PAYERS[0])
    levels = [day_state.level(p) for p in PAYERS]
    assert 0.35 <= sum(1 for v in levels if v >= 1) / len(levels) <= 0.65
