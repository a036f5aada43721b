"""models/detectors/large_value.py: PBoC Order [2016] No. 3 art. 5 reporting lines."""

from __future__ import annotations

from models.detectors import large_value as det
from models.detectors.common import LATE_KEEP
from models.detectors.context import DetectContext
from models.findings import alert_id_for
from models.windows import DAY
from tests.unit.test_detectors_common import (
    CUSTODY,
    EXTERNAL,
    NOBODY,
    OWN,
    PERSON,
    TEST_THRESHOLDS,
    assert_explanations_safe,
    bj,
    check_order_independent,
    check_replays_change_nothing,
    references,
    snap,
    txn,
    world,
)

DAY1 = "2026-11-25"


def run(records, account=OWN):
    return det.detect(world(), None, account, "m1", records)


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def cash(amount, credit=True, when=f"{DAY1} 10:00:00", account=OWN):
    return txn(account, credit, amount, when, EXTERNAL, channel="CASH", bank="B001")


def transfer(amount, credit=False, when=f"{DAY1} 10:00:00", account=OWN, **kw):
    return txn(account, credit, amount, when, EXTERNAL, **kw)


def lines(findings):
    return {f.metrics["line"] for f in findings}


# -- cash ------------------------------------------------------------------------------------


def test_cash_at_the_line_is_reported_and_one_cent_below_is_not():
    record = cash("50000.00")
    f = only(run([record])[1])
    assert f.typology == "large_value" and f.key == f"{OWN}:{DAY1}:cash_in"
    assert f.alert_id == alert_id_for("large_value", f.key)
    assert f.severity == "low" and f.rule == "三(三)" and f.detector_version == "large_value/1"
    assert f.amount_cents == 5000000 and f.record_ids == (record.record_id,)
    assert f.metrics["reporting_line"] == "50000.00" and f.metrics["threshold"] == "cash"
    assert f.metrics["single_at_or_above_line"] is True
    assert f.thresholds["cash"] == "50000.00" and f.thresholds["config_version"] == "test-1"
    assert "现金缴存1笔" in f.explanation_zh and "50,000.00 元" in f.explanation_zh
    assert "中国人民银行令〔2016〕第3号第五条" in f.explanation_zh
    assert "cash deposit(s)" in f.explanation_en and "CNY 50,000.00" in f.explanation_en
    assert_explanations_safe(f)
    assert run([cash("49999.99")])[1] == []


def test_cash_accumulates_over_the_day_one_side_at_a_time():
    f = only(run([cash("25000.00"), cash("25000.00", when=f"{DAY1} 15:00:00")])[1])
    assert f.metrics["count"] == 2 and f.metrics["single_at_or_above_line"] is False
    # deposits and withdrawals are summed separately (单边累计): 30,000 in + 30,000 out reports nothing
    assert run([cash("30000.00"), cash("30000.00", credit=False)])[1] == []
    out = only(run([cash("30000.00", credit=False), cash("20000.00", credit=False)])[1])
    assert out.metrics["line"] == "cash_out" and "现金支取" in out.explanation_zh


def test_cash_does_not_count_towards_transfers():
    assert lines(run([cash("1999999.99"), transfer("1.00", credit=True)])[1]) == {"cash_in"}


def test_medium_when_far_above_the_line():
    assert only(run([cash("500000.00")])[1]).severity == "medium"  # 10 x the line
    assert only(run([cash("499999.99")])[1]).severity == "low"
    assert only(run([cash("500000.00")])[1]).score == 1.0


# -- transfers -------------------------------------------------------------------------------


def test_non_natural_person_transfers():
    assert run([transfer("1999999.99")])[1] == []
    f = only(run([transfer("2000000.00")])[1])
    assert f.metrics["line"] == "transfer_out" and f.metrics["holder"] == "non_natural_person"
    assert f.metrics["threshold"] == "non_natural_transfer"
    assert "non-natural-person account" in f.explanation_en and "款项转出" in f.explanation_zh
    assert_explanations_safe(f)
    cumulative = [transfer("1000000.00", credit=True, when=f"{DAY1} {h:02d}:00:00") for h in (9, 10)]
    assert only(run(cumulative)[1]).metrics["line"] == "transfer_in"


def test_a_custody_account_is_an_organisation():
    assert (
        only(run([transfer("2000000.00", credit=True, account=CUSTODY)], account=CUSTODY)[1]).severity
        == "low"
    )
    assert run([transfer("1999999.99", credit=True, account=CUSTODY)], account=CUSTODY)[1] == []


def test_natural_person_domestic_transfers():
    assert run([transfer("499999.99", account=PERSON)], account=PERSON)[1] == []
    f = only(run([transfer("500000.00", account=PERSON)], account=PERSON)[1])
    assert f.metrics["holder"] == "natural_person" and f.metrics["threshold"] == "natural_transfer"
    assert "natural person's account" in f.explanation_en
    assert_explanations_safe(f)


def test_natural_person_cross_border_transfers():
    abroad = {"bank": "X-HSBC-HK", "account": PERSON}
    assert run([transfer("199999.99", **abroad)], account=PERSON)[1] == []
    f = only(run([transfer("200000.00", **abroad)], account=PERSON)[1])
    assert f.key == f"{PERSON}:{DAY1}:cross_border_out" and f.metrics["threshold"] == "natural_cross_border"
    assert "跨境款项转出" in f.explanation_zh
    by_purpose = transfer("200000.00", account=PERSON, channel="OTHER", purpose="跨境汇款")
    assert only(run([by_purpose], account=PERSON)[1]).metrics["line"] == "cross_border_out"
    # OTHER without 跨境, or 跨境 on a domestic channel, is domestic
    assert (
        run([transfer("200000.00", account=PERSON, channel="OTHER", purpose="货款")], account=PERSON)[1] == []
    )
    assert (
        run([transfer("200000.00", account=PERSON, channel="HVPS", purpose="跨境")], account=PERSON)[1] == []
    )


def test_cross_border_and_domestic_lines_are_separate_for_a_person():
    records = [transfer("300000.00", account=PERSON), transfer("300000.00", account=PERSON, bank="X-BOC-HK")]
    assert lines(run(records, account=PERSON)[1]) == {"cross_border_out"}


def test_an_organisations_cross_border_transfers_count_with_its_others():
    records = [transfer("1500000.00"), transfer("500000.00", bank="X-CITI-SG")]
    f = only(run(records)[1])
    assert f.key == f"{OWN}:{DAY1}:transfer_out" and f.metrics["count"] == 2


def test_an_unknown_holder_is_treated_as_an_organisation():
    assert run([transfer("500000.00", account=NOBODY)], account=NOBODY)[1] == []
    assert (
        only(run([transfer("2000000.00", account=NOBODY)], account=NOBODY)[1]).metrics["holder"] == "unknown"
    )


def test_holder_type_from_the_reference_decides():
    ctx = DetectContext(references({OWN: {"holder_type": "person"}}), TEST_THRESHOLDS)
    f = only(det.detect(ctx, None, OWN, "m1", [transfer("500000.00")])[1])
    assert f.metrics["holder"] == "natural_person"


def test_foreign_currency_and_snapshots_are_ignored():
    assert run([transfer("9000000.00", currency="USD")])[1] == []
    assert run([snap(OWN, f"{DAY1} 18:00:00", "99999999.00", None)])[1] == []


def test_unknown_accounts_are_skipped():
    assert run([transfer("9000000.00", account=EXTERNAL)], account=EXTERNAL) == ({}, [])


# -- event time, replays, order --------------------------------------------------------------


def test_beijing_day_boundary():
    split = [cash("30000.00", when="2026-11-25 23:59:59"), cash("30000.00", when="2026-11-26 00:00:00")]
    assert run(split)[1] == []
    same = [cash("30000.00", when="2026-11-25 00:00:00"), cash("30000.00", when="2026-11-25 23:59:59")]
    f = only(run(same)[1])
    assert f.key == f"{OWN}:2026-11-25:cash_in"
    assert (f.window_start, f.window_end) == (bj("2026-11-25 00:00:00"), bj("2026-11-25 23:59:59"))


def test_the_day_updates_one_alert_per_line():
    ctx = world()
    state, first = det.detect(ctx, None, OWN, "m1", [cash("50000.00")])
    state, second = det.detect(ctx, state, OWN, "m2", [cash("1.00", when=f"{DAY1} 16:00:00")])
    assert only(first).alert_id == only(second).alert_id
    assert second[0].metrics["total"] == "50001.00"


def test_replays_change_nothing():
    check_replays_change_nothing(
        det, world(), OWN, [cash("40000.00"), cash("10000.00"), transfer("2500000.00")]
    )


def test_order_and_split_do_not_matter():
    records = [
        cash(f"{15000 + i}.00", credit=i % 3 != 0, when=f"2026-11-2{5 + i % 2} {i:02d}:30:00")
        for i in range(14)
    ]
    records += [transfer("700000.00", when=f"2026-11-25 {h:02d}:00:00") for h in (1, 5, 23)]
    records += [transfer("1.00", credit=True, when="2026-11-26 00:00:00")]
    latest = check_order_independent(det, world(), OWN, records)
    assert set(latest) == {
        f"{OWN}:2026-11-25:cash_in",
        f"{OWN}:2026-11-26:cash_in",
        f"{OWN}:2026-11-25:transfer_out",
    }


def test_state_keeps_only_open_days():
    ctx = world()
    state = None
    for d in range(1, 29):
        state, _ = det.detect(ctx, state, OWN, f"m{d}", [cash("60000.00", when=f"2026-11-{d:02d} 10:00:00")])
    assert len(state["days"]) <= 3 + LATE_KEEP // DAY  # open, and sealed ones kept for late records
    assert [f.key for f in det.current(ctx, state, OWN)][-1] == f"{OWN}:2026-11-28:cash_in"


# -- a record dated far ahead ------------------------------------------------------------------


def test_a_record_dated_years_ahead_does_not_blind_the_account():
    """One record booked in 2031 (a typo, or a hostile bank) must not seal every real day: with
    the worker's clock as the ceiling, the account's watermark stays at the plausible now."""
    from dataclasses import replace

    now = bj(f"{DAY1} 12:00:00")
    ctx = replace(world(), event_time_ceiling=now + 3600)
    state, _ = det.detect(ctx, None, OWN, "m1", [cash("10.00", when="2031-01-01 10:00:00")])
    state, findings = det.detect(ctx, state, OWN, "m2", [cash("60000.00", when=f"{DAY1} 11:00:00")])
    assert [f.key for f in findings] == [f"{OWN}:{DAY1}:cash_in"]
    assert findings[0].metrics["late"] is False
    # without the ceiling, the day counts as sealed: the report still comes, marked late
    state, _ = det.detect(world(), None, OWN, "m1", [cash("10.00", when="2031-01-01 10:00:00")])
    late = det.detect(world(), state, OWN, "m2", [cash("60000.00", when=f"{DAY1} 11:00:00")])[1]
    assert [f.key for f in late] == [f"{OWN}:{DAY1}:cash_in"] and late[0].metrics["late"] is True


def test_line_figures_are_the_line_in_cents_and_far_multiple_times_it():
    from fractions import Fraction

    assert det.line_figures("50000.00", "10") == (5_000_000, Fraction(50_000_000))
    assert det.line_figures("50000.00", "2.5") == (5_000_000, Fraction(12_500_000))
    assert det.line_figures(" 200000.00", 3) == (20_000_000, Fraction(60_000_000))


def test_medium_from_exactly_a_fractional_far_multiple():
    cfg = {**det.DEFAULTS, "far_multiple": "2.5"}
    day = bj(f"{DAY1} 00:00:00")

    def severity(total_cents):
        bucket = {"c": total_cents, "n": 1, "top": [[total_cents, day, "r1", None]]}
        signal = det.decide([bucket], None, cfg, day, "cash_in")
        return None if signal is None else signal.severity

    assert severity(12_500_000) == "medium"  # 2.5 x 50,000.00
    assert severity(12_499_999) == "low"
    assert severity(4_999_999) is None
