"""models/detectors/commingling.py: investors into own accounts, own funds into custody."""

from __future__ import annotations

from models.detectors import commingling as det
from models.detectors.context import DetectContext
from models.findings import alert_id_for
from models.thresholds import Thresholds
from tests.unit.test_detectors_common import (
    BORROWER,
    CUSTODY,
    EXTERNAL,
    INVESTOR,
    INVESTOR_FREE,
    INVESTOR_P2,
    OWN,
    OWN_B,
    OWN_P2,
    OWN_PAY,
    OWN_PAY_B,
    RELATED,
    RESERVE,
    STAFF,
    TEST_THRESHOLDS,
    assert_explanations_safe,
    bj,
    check_order_independent,
    check_replays_change_nothing,
    references,
    txn,
    world,
)

DAY1 = "2026-11-25"


def credit(account, amount, payer, when=f"{DAY1} 10:00:00", **kw):
    return txn(account, True, amount, when, payer, **kw)


def run(records, account, ctx=None):
    return det.detect(ctx or world(), None, account, "m1", records)


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


# -- the two signals -------------------------------------------------------------------------


def test_investors_paying_into_an_own_account():
    records = [
        credit(OWN, "30000.00", INVESTOR),
        credit(OWN, "20000.00", INVESTOR_FREE, when=f"{DAY1} 11:00:00"),
    ]
    f = only(run(records, OWN)[1])
    assert f.typology == "commingling" and f.key == f"{OWN}:{DAY1}"
    assert f.alert_id == alert_id_for("commingling", f.key)
    assert f.severity == "medium" and f.rule == "二(一)" and f.detector_version == "commingling/1"
    assert f.amount_cents == 5000000 and f.accounts == (OWN,)
    assert f.metrics["investor_to_own"] == "50000.00" and f.metrics["own_to_custody"] == "0.00"
    assert f.metrics["distinct_payers"] == 2 and f.metrics["count"] == 2
    assert f.window_start == bj(f"{DAY1} 10:00:00") and f.window_end == bj(f"{DAY1} 11:00:00")
    assert set(f.record_ids) == {r.record_id for r in records}
    assert "自有运营账户****2002" in f.explanation_zh and "50,000.00 元" in f.explanation_zh
    assert "2个投资人账户" in f.explanation_zh and "CNY 50,000.00" in f.explanation_en
    assert_explanations_safe(f)


def test_own_funds_into_custody_and_reserve():
    f = only(run([credit(CUSTODY, "80000.00", OWN)], CUSTODY)[1])
    assert f.key == f"{CUSTODY}:{DAY1}" and f.metrics["own_to_custody"] == "80000.00"
    assert "本机构自有账户转入" in f.explanation_zh and "own funds mixed" in f.explanation_en
    assert_explanations_safe(f)
    g = only(run([credit(RESERVE, "1.00", OWN_PAY_B)], RESERVE)[1])
    assert g.institution_id == "PAY" and g.extra["region"] == "220104"


def test_severity_and_min_amount_lines():
    assert only(run([credit(OWN, "999999.99", INVESTOR)], OWN)[1]).severity == "medium"
    assert only(run([credit(OWN, "1000000.00", INVESTOR)], OWN)[1]).severity == "high"
    assert only(run([credit(OWN, "9999999.99", INVESTOR)], OWN)[1]).severity == "high"
    assert only(run([credit(OWN, "10000000.00", INVESTOR)], OWN)[1]).severity == "critical"
    defaults = {**TEST_THRESHOLDS.defaults, "commingling": {"min_amount": "500.00"}}
    ctx = DetectContext(references(), Thresholds("t-3", defaults, {}))
    assert run([credit(OWN, "499.99", INVESTOR)], OWN, ctx)[1] == []
    assert only(run([credit(OWN, "500.00", INVESTOR)], OWN, ctx)[1]).thresholds["min_amount"] == "500.00"


# -- hard negatives --------------------------------------------------------------------------


def test_own_to_own_between_two_banks_is_not_commingling():
    """A payment institution moving its own money between its own accounts at two banks."""
    assert run([credit(OWN_PAY_B, "5000000.00", OWN_PAY)], OWN_PAY_B)[1] == []
    assert run([credit(OWN_B, "5000000.00", OWN)], OWN_B)[1] == []


def test_payroll_fan_out_from_an_own_account_is_not_commingling():
    records = [txn(OWN, False, "8000.00", f"{DAY1} 10:00:00", staff, channel="INTERNAL") for staff in STAFF]
    assert run(records, OWN)[1] == []


def test_contractual_fee_from_custody_to_own_is_not_commingling():
    fee_debit = txn(CUSTODY, False, "5000.00", f"{DAY1} 17:30:00", OWN, instruction="FE-1")
    assert run([fee_debit], CUSTODY)[1] == []
    fee_credit = credit(OWN, "5000.00", CUSTODY, when=f"{DAY1} 17:30:00", instruction="FE-1")
    assert run([fee_credit], OWN)[1] == []


def test_other_payers_are_not_commingling():
    assert run([credit(CUSTODY, "100000.00", INVESTOR)], CUSTODY)[1] == []  # what custody is for
    assert run([credit(CUSTODY, "100000.00", OWN_P2)], CUSTODY)[1] == []  # another institution's money
    assert run([credit(OWN, "100000.00", INVESTOR_P2)], OWN)[1] == []  # another platform's investor
    assert run([credit(OWN, "100000.00", BORROWER)], OWN)[1] == []
    assert run([credit(OWN, "100000.00", RELATED)], OWN)[1] == []
    assert run([credit(OWN, "100000.00", EXTERNAL)], OWN)[1] == []


def test_debits_are_not_looked_at():
    """Only the receiving account's credit leg counts, so a movement is never counted twice."""
    assert run([txn(OWN, False, "100000.00", f"{DAY1} 10:00:00", CUSTODY)], OWN)[1] == []


def test_other_roles_are_not_watched():
    assert run([credit(INVESTOR, "1.00", OWN)], INVESTOR) == ({}, [])
    assert run([credit(EXTERNAL, "1.00", OWN)], EXTERNAL) == ({}, [])


# -- event time, replays, order --------------------------------------------------------------


def test_beijing_day_boundary():
    records = [
        credit(OWN, "10.00", INVESTOR, when="2026-11-25 23:59:59"),
        credit(OWN, "10.00", INVESTOR, when="2026-11-26 00:00:00"),
    ]
    assert {f.key for f in run(records, OWN)[1]} == {f"{OWN}:2026-11-25", f"{OWN}:2026-11-26"}


def test_repeats_on_one_day_update_one_alert():
    ctx = world()
    state, first = det.detect(ctx, None, OWN, "m1", [credit(OWN, "10.00", INVESTOR)])
    state, second = det.detect(
        ctx, state, OWN, "m2", [credit(OWN, "15.00", INVESTOR, when=f"{DAY1} 15:00:00")]
    )
    assert only(first).alert_id == only(second).alert_id
    assert second[0].metrics["total"] == "25.00" and second[0].metrics["distinct_payers"] == 1


def test_replays_change_nothing():
    check_replays_change_nothing(
        det, world(), OWN, [credit(OWN, "10.00", INVESTOR), credit(OWN, "20.00", INVESTOR_FREE)]
    )


def test_order_and_split_do_not_matter():
    investors = [INVESTOR, INVESTOR_FREE]
    records = [
        credit(OWN, f"{100 + i}.00", investors[i % 2], when=f"2026-11-2{4 + i % 3} {i % 24:02d}:00:00")
        for i in range(15)
    ]
    records += [credit(OWN, "5.00", INVESTOR, when="2026-11-25 23:59:59"), credit(OWN, "5.00", OWN_B)]
    records += [txn(OWN, False, "3.00", f"{DAY1} 09:00:00", STAFF[0])]
    latest = check_order_independent(det, world(), OWN, records)
    assert set(latest) == {f"{OWN}:2026-11-24", f"{OWN}:2026-11-25", f"{OWN}:2026-11-26"}


def test_sealed_days_are_kept_for_late_records_then_dropped():
    ctx = world()
    state, _ = det.detect(ctx, None, OWN, "m1", [credit(OWN, "10.00", INVESTOR, when="2026-11-10 10:00:00")])
    state, _ = det.detect(ctx, state, OWN, "m2", [credit(OWN, "10.00", INVESTOR, when="2026-11-20 10:00:00")])
    state, _ = det.detect(ctx, state, OWN, "m3", [credit(OWN, "10.00", INVESTOR, when="2026-11-25 10:00:00")])
    # 11-20 is sealed but kept (LATE_KEEP); 11-10 is gone
    assert list(state["days"]) == [str(bj("2026-11-20 00:00:00")), str(bj("2026-11-25 00:00:00"))]
    assert [f.key for f in det.current(ctx, state, OWN)] == [f"{OWN}:2026-11-25"]
    # a late record of 11-20 adds to what the day holds, and says it came late
    state, findings = det.detect(
        ctx, state, OWN, "m4", [credit(OWN, "5.00", INVESTOR, when="2026-11-20 11:00:00")]
    )
    f = only(findings)
    assert f.key == f"{OWN}:2026-11-20" and f.metrics["total"] == "15.00" and f.metrics["late"] is True
