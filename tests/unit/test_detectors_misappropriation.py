"""models/detectors/misappropriation.py: uninstructed debits and fees beyond the contract."""

from __future__ import annotations

import msgspec

from models.detectors import fold
from models.detectors import misappropriation as det
from models.detectors.common import ALLOWED_LATENESS, LATE_KEEP
from models.findings import alert_id_for
from models.windows import DAY
from tests.unit.test_detectors_common import (
    BORROWER,
    CUSTODY,
    EXTERNAL,
    INVESTOR,
    LISTED,
    OWN,
    OWN_B,
    OWN_P2,
    OWN_PAY,
    RELATED,
    RESERVE,
    assert_explanations_safe,
    assert_no_record_ids,
    bj,
    check_order_independent,
    check_replays_change_nothing,
    txn,
    world,
)

DAY1 = "2026-11-25"


def run(records, account=CUSTODY, state=None):
    return det.detect(world(), state, account, "m1", records)


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def uninstructed(amount, counterparty=EXTERNAL, when=f"{DAY1} 10:00:00", account=CUSTODY, **kw):
    return txn(account, False, amount, when, counterparty, **kw)


def fee(amount, when=f"{DAY1} 17:30:00", account=CUSTODY, counterparty=OWN):
    return txn(account, False, amount, when, counterparty, instruction="FE-1")


def inflow(amount, when=f"{DAY1} 09:00:00", account=CUSTODY):
    return txn(account, True, amount, when, INVESTOR)


# -- uninstructed debits ---------------------------------------------------------------------


def test_an_uninstructed_debit_anywhere_is_a_finding():
    record = uninstructed("5000.00")
    state, findings = run([record])
    f = only(findings)
    assert f.typology == "misappropriation"
    assert f.key == f"{CUSTODY}:{DAY1}" and f.alert_id == alert_id_for("misappropriation", f.key)
    assert f.severity == "medium"
    assert f.rule == "二(一)" and f.detector_version == "misappropriation/1"
    assert f.institution_id == "P1" and f.accounts == (CUSTODY,)
    assert f.amount_cents == 500000 and f.record_ids == (record.record_id,)
    assert f.window_start == f.window_end == record.booked_at
    assert f.metrics["uninstructed_total"] == "5000.00" and f.metrics["uninstructed_count"] == 1
    assert f.metrics["uninstructed_to_other"] == "5000.00"
    assert f.thresholds["fee_share_max"] == "0.05" and f.thresholds["config_version"] == "test-1"
    assert f.extra == {"account_role": "customer_custody", "region": "220102"}
    assert "5,000.00 元" in f.explanation_zh and "CNY 5,000.00" in f.explanation_en
    assert (
        "客户资金存管账户****1001" in f.explanation_zh
        and "customer-custody account ****1001" in f.explanation_en
    )
    assert_explanations_safe(f)
    assert state["wm"] == record.booked_at


def test_severity_at_and_below_the_amount_lines():
    assert only(run([uninstructed("99999.99")])[1]).severity == "medium"
    assert only(run([uninstructed("100000.00")])[1]).severity == "high"
    assert only(run([uninstructed("999999.99")])[1]).severity == "high"
    assert only(run([uninstructed("1000000.00")])[1]).severity == "critical"


def test_the_day_total_decides_the_severity():
    records = [uninstructed("60000.00"), uninstructed("40000.00", when=f"{DAY1} 11:00:00")]
    f = only(run(records)[1])
    assert f.severity == "high" and f.metrics["uninstructed_total"] == "100000.00"


def test_own_or_related_destination_is_at_least_high():
    assert only(run([uninstructed("10.00", OWN)])[1]).severity == "high"
    assert only(run([uninstructed("10.00", RELATED)])[1]).severity == "high"
    assert only(run([uninstructed("10.00", LISTED)])[1]).severity == "high"
    f = only(run([uninstructed("10.00", OWN), uninstructed("20.00", RELATED)])[1])
    assert f.metrics["uninstructed_to_own"] == "10.00" and f.metrics["uninstructed_to_related"] == "20.00"
    assert "划入本机构自有账户10.00 元" in f.explanation_zh and "划入关联方账户20.00 元" in f.explanation_zh
    # another institution's own account is just "other"
    assert only(run([uninstructed("10.00", OWN_P2)])[1]).severity == "medium"


def test_repetition_raises_the_severity():
    two = [uninstructed("10.00", when=f"{DAY1} 1{i}:00:00") for i in range(det.REPEAT_BUMP - 1)]
    assert only(run(two)[1]).severity == "medium"
    three = [uninstructed("10.00", when=f"{DAY1} 1{i}:00:00") for i in range(det.REPEAT_BUMP)]
    assert only(run(three)[1]).severity == "high"
    to_own = [uninstructed("10.00", OWN, when=f"{DAY1} 1{i}:00:00") for i in range(det.REPEAT_BUMP)]
    assert only(run(to_own)[1]).severity == "critical"


def test_payment_reserve_cites_the_payment_section():
    f = only(run([uninstructed("10.00", account=RESERVE)], account=RESERVE)[1])
    assert f.rule == "二(五)" and "客户备付金账户****1012" in f.explanation_zh
    assert "payment-reserve account" in f.explanation_en
    assert_explanations_safe(f)


# -- hard negatives --------------------------------------------------------------------------


def test_a_large_instructed_loan_to_a_borrower_is_not_misappropriation():
    records = [txn(CUSTODY, False, "5000000.00", f"{DAY1} 10:00:00", BORROWER, instruction="LN-1")]
    assert run(records)[1] == []


def test_an_instructed_debit_to_a_related_party_is_left_to_self_financing():
    records = [txn(CUSTODY, False, "5000000.00", f"{DAY1} 10:00:00", RELATED, instruction="LN-2")]
    assert run(records)[1] == []


def test_instructed_debit_to_another_institutions_own_account_is_no_fee():
    assert run([inflow("100.00"), fee("1000000.00", counterparty=OWN_P2)])[1] == []


def test_an_empty_instruction_id_is_no_instruction():
    assert only(run([uninstructed("10.00", instruction="")])[1]).severity == "medium"


def test_accounts_other_than_custody_or_reserve_are_not_watched():
    records = [uninstructed("1000000.00", account=OWN)]
    assert run(records, account=OWN) == ({}, [])
    assert run([uninstructed("1.00", account=EXTERNAL)], account=EXTERNAL) == ({}, [])


# -- fees beyond the contractual share -------------------------------------------------------


def test_a_contractual_fee_at_the_share_is_fine():
    assert run([inflow("1000000.00"), fee("50000.00")])[1] == []


def test_one_cent_above_the_fee_share_is_a_finding():
    f = only(run([inflow("1000000.00"), fee("50000.01")])[1])
    assert f.key == f"{CUSTODY}:{DAY1}" and f.severity == "medium"
    assert f.metrics["fees_to_own_in_window"] == "50000.01"
    assert f.metrics["inflow_in_window"] == "1000000.00"
    assert f.metrics["fee_excess"] == "0.01" and f.amount_cents == 1
    assert f.metrics["fee_share"] == "0.05000001"
    assert "5.000001%" in f.explanation_zh and "5.00%" in f.explanation_zh
    assert "above the contractual fee share of 5.00% by CNY 0.01" in f.explanation_en
    assert f.window_start == bj("2026-10-27 00:00:00")  # 30 Beijing days ending with the fee day
    assert_explanations_safe(f)


def test_fee_excess_severity_by_amount():
    assert only(run([inflow("1000000.00"), fee("150000.00")])[1]).severity == "high"  # excess 100,000
    assert only(run([inflow("1000000.00"), fee("149999.99")])[1]).severity == "medium"
    assert only(run([fee("1000000.00")])[1]).severity == "critical"  # no inflow at all


def test_fees_with_no_inflow_are_all_excess():
    f = only(run([fee("10.00")])[1])
    assert f.metrics["fee_share"] is None and f.metrics["fee_excess"] == "10.00"
    assert "同期无资金流入" in f.explanation_zh and "with no inflow" in f.explanation_en


def test_payment_institutions_have_a_lower_fee_share():
    assert run([inflow("1000000.00", account=RESERVE), fee("20000.00", account=RESERVE, counterparty=OWN_PAY)],
               account=RESERVE)[1] == []  # fmt: skip
    f = only(
        run([inflow("1000000.00", account=RESERVE), fee("20000.01", account=RESERVE, counterparty=OWN_PAY)],
            account=RESERVE)[1]
    )  # fmt: skip
    assert f.thresholds["fee_share_max"] == "0.02" and f.rule == "二(五)"


def test_fees_to_any_own_account_of_the_institution_add_up():
    records = [inflow("1000000.00"), fee("30000.00"), fee("20000.01", counterparty=OWN_B)]
    assert only(run(records)[1]).metrics["fees_to_own_in_window"] == "50000.01"


def test_the_fee_window_is_thirty_beijing_days():
    inside = [inflow("1000000.00", when="2026-10-27 00:00:00"), fee("50000.00")]  # day 30 of 30
    outside = [inflow("1000000.00", when="2026-10-26 23:59:59"), fee("50000.00")]  # day 31
    assert fold(det, world(), CUSTODY, [(f"m{i}", [r]) for i, r in enumerate(inside)])[1] == {}
    state, latest = fold(det, world(), CUSTODY, [(f"m{i}", [r]) for i, r in enumerate(outside)])
    assert latest[f"{CUSTODY}:{DAY1}"].metrics["inflow_in_window"] == "0.00"


def test_cumulative_fees_over_the_window():
    records = [inflow("1000000.00", when="2026-11-01 09:00:00")]
    records += [fee("10000.00", when=f"2026-11-{d:02d} 17:30:00") for d in range(20, 26)]  # 6 x 10,000
    state, latest = fold(det, world(), CUSTODY, [(f"m{i}", [r]) for i, r in enumerate(records)])
    assert set(latest) == {f"{CUSTODY}:2026-11-25"}  # the sixth fee crossed 5 %
    assert latest[f"{CUSTODY}:2026-11-25"].metrics["fee_excess"] == "10000.00"
    assert len(latest[f"{CUSTODY}:2026-11-25"].record_ids) == 6


def test_late_inflow_re_evaluates_the_fee_day():
    """A fee day is reported on what is known; inflow arriving later for the same window is folded
    in and the day re-evaluated: still above the share, the alert's figures update; within it, no
    finding is emitted and ``current`` holds nothing for the day."""
    ctx = world()
    state, findings = det.detect(ctx, None, CUSTODY, "m1", [fee("50000.00")])
    assert only(findings).metrics["fee_excess"] == "50000.00"
    state, findings = det.detect(ctx, state, CUSTODY, "m2", [inflow("500000.00")])
    assert only(findings).metrics["fee_excess"] == "25000.00"
    state, findings = det.detect(ctx, state, CUSTODY, "m3", [inflow("500000.00", when=f"{DAY1} 08:00:00")])
    assert findings == [] and det.current(ctx, state, CUSTODY) == []


def test_both_signals_on_one_day_make_one_finding():
    records = [inflow("1000000.00"), fee("60000.00"), uninstructed("1000.00", OWN)]
    f = only(run(records)[1])
    assert f.amount_cents == 100000 + 1000000  # 1,000.00 uninstructed + 10,000.00 fee excess
    assert f.severity == "high"
    assert "；" in f.explanation_zh and "; in the 30 days" in f.explanation_en
    assert_explanations_safe(f)


# -- event time, replays, order --------------------------------------------------------------


def test_beijing_day_boundary():
    before = uninstructed("10.00", when="2026-11-25 23:59:59")
    after = uninstructed("10.00", when="2026-11-26 00:00:00")
    keys = {f.key for f in run([before, after])[1]}
    assert keys == {f"{CUSTODY}:2026-11-25", f"{CUSTODY}:2026-11-26"}


def test_replays_change_nothing():
    check_replays_change_nothing(
        det, world(), CUSTODY, [inflow("1000000.00"), fee("60000.00"), uninstructed("1000.00")]
    )


def test_state_is_not_mutated():
    ctx = world()
    state, _ = det.detect(ctx, None, CUSTODY, "m1", [uninstructed("1.00")])
    snapshot = repr(state)
    det.detect(ctx, state, CUSTODY, "m2", [uninstructed("2.00"), inflow("5.00")])
    assert repr(state) == snapshot


def test_order_and_split_do_not_matter():
    records = [inflow("400000.00", when=f"2026-11-24 {h:02d}:00:00") for h in range(8, 12)]
    records += [inflow("100000.00", when="2026-11-25 23:59:59"), inflow("1.00", when="2026-11-26 00:00:00")]
    records += [fee("60000.00", when="2026-11-24 17:30:00"), fee("40000.00", when="2026-11-25 17:30:00")]
    records += [fee("30000.00", when="2026-11-26 17:30:00")]
    records += [
        uninstructed("500.00", when="2026-11-25 10:00:00"),
        uninstructed("700.00", OWN, when="2026-11-26 01:00:00"),
    ]
    records += [txn(CUSTODY, False, "9000.00", "2026-11-25 12:00:00", BORROWER, instruction="LN-9")]
    latest = check_order_independent(det, world(), CUSTODY, records, monotone=False)
    assert set(latest) == {f"{CUSTODY}:2026-11-25", f"{CUSTODY}:2026-11-26"}


def test_records_later_than_the_allowed_lateness_are_judged_and_marked_late():
    ctx = world()
    state, _ = det.detect(ctx, None, CUSTODY, "m1", [inflow("1.00", when="2026-11-30 12:00:00")])
    late = uninstructed("10.00", when="2026-11-27 23:59:59")  # its day ended 2.5 days before the watermark
    assert bj("2026-11-28 00:00:00") + ALLOWED_LATENESS <= state["wm"]
    later, findings = det.detect(ctx, state, CUSTODY, "m2", [late])
    f = only(findings)
    assert f.key == f"{CUSTODY}:2026-11-27" and f.metrics["late"] is True
    on_time = uninstructed("10.00", when="2026-11-28 00:00:00")
    g = only(det.detect(ctx, state, CUSTODY, "m3", [on_time])[1])
    assert g.key == f"{CUSTODY}:2026-11-28" and g.metrics["late"] is False


def test_state_stays_bounded():
    ctx = world()
    state = None
    for d in range(90):
        records = [
            txn(CUSTODY, True, "100000.00", "2026-09-01 10:00:00", INVESTOR, rid=f"in{d}"),
            txn(CUSTODY, False, "1000.00", "2026-09-01 17:30:00", OWN, rid=f"fee{d}", instruction=f"FE{d}"),
        ]
        records = [msgspec.structs.replace(r, booked_at=r.booked_at + d * DAY) for r in records]
        state, _ = det.detect(ctx, state, CUSTODY, f"m{d}", records)
    kept = 30 + 3 + LATE_KEEP // DAY  # the fee window, the open days, and LATE_KEEP for late records
    assert len(state["inflow"]) <= kept and len(state["fees"]) <= kept
    assert state["uninstructed"] == {}
    assert_no_record_ids(state)
    assert det.current(ctx, state, CUSTODY) == []  # 1 % fees: nothing to report


def test_amounts_in_another_currency_are_never_added_to_the_cny_total():
    """CONTRACT.md §3: 1,000.00 CNY and 10.00 USD are not 1,010.00 of anything."""
    records = [uninstructed("1000.00"), uninstructed("10.00", when=f"{DAY1} 11:00:00", currency="USD")]
    f = only(run(records)[1])
    assert f.metrics["uninstructed_total"] == "1000.00" and f.amount_cents == 100000
