"""models/detectors/self_financing.py: instructed custody outflows to related parties."""

from __future__ import annotations

from models.detectors import misappropriation
from models.detectors import self_financing as det
from models.detectors.context import DetectContext
from models.findings import alert_id_for
from models.thresholds import Thresholds
from tests.unit.test_detectors_common import (
    AM_CUSTODY,
    BORROWER,
    CUSTODY,
    EXTERNAL,
    LISTED,
    OWN,
    RELATED,
    RELATED_P2,
    TEST_THRESHOLDS,
    assert_explanations_safe,
    assert_no_record_ids,
    check_order_independent,
    check_replays_change_nothing,
    references,
    txn,
    world,
)

DAY1 = "2026-11-25"


def loan(amount, to=RELATED, when=f"{DAY1} 10:00:00", account=CUSTODY, instruction="LN-1", **kw):
    return txn(account, False, amount, when, to, instruction=instruction, **kw)


def run(records, account=CUSTODY, ctx=None):
    return det.detect(ctx or world(), None, account, "m1", records)


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def test_an_instructed_loan_to_a_related_party_is_self_financing():
    record = loan("50000.00")
    f = only(run([record])[1])
    assert f.typology == "self_financing" and f.key == f"{CUSTODY}:{RELATED}"
    assert f.alert_id == alert_id_for("self_financing", f.key)
    assert f.severity == "medium" and f.rule == "二(一)" and f.detector_version == "self_financing/1"
    assert f.accounts == (CUSTODY, RELATED) and f.amount_cents == 5000000
    assert f.record_ids == (record.record_id,)
    assert f.metrics == {
        "total": "50000.00",
        "count": 1,
        "largest": "50000.00",
        "counterparty_role": "related_party",
        "late": False,
    }
    assert f.thresholds["min_amount"] == "0.01" and f.thresholds["high_amount"] == "100000.00"
    assert (
        "****1001" in f.explanation_zh
        and "****9004" in f.explanation_zh
        and "50,000.00 元" in f.explanation_zh
    )
    assert "CNY 50,000.00" in f.explanation_en and "self-financing" in f.explanation_en
    assert_explanations_safe(f)


def test_an_account_listed_in_a_related_party_counts():
    f = only(run([loan("1.00", to=LISTED)])[1])
    assert f.key == f"{CUSTODY}:{LISTED}" and f.metrics["counterparty_role"] == "other"


def test_severity_at_and_below_the_amount_lines():
    assert only(run([loan("99999.99")])[1]).severity == "medium"
    assert only(run([loan("100000.00")])[1]).severity == "high"
    assert only(run([loan("999999.99")])[1]).severity == "high"
    assert only(run([loan("1000000.00")])[1]).severity == "critical"


def test_min_amount_from_the_config():
    defaults = {**TEST_THRESHOLDS.defaults, "self_financing": {"min_amount": "1000.00"}}
    ctx = DetectContext(references(), Thresholds("t-2", defaults, {}))
    assert run([loan("999.99")], ctx=ctx)[1] == []
    f = only(run([loan("1000.00")], ctx=ctx)[1])
    assert f.thresholds["min_amount"] == "1000.00" and f.thresholds["config_version"] == "t-2"


def test_repeats_to_one_counterparty_update_one_alert():
    ctx = world()
    state, first = det.detect(ctx, None, CUSTODY, "m1", [loan("60000.00")])
    state, second = det.detect(ctx, state, CUSTODY, "m2", [loan("50000.00", when="2026-11-26 09:00:00")])
    assert only(first).alert_id == only(second).alert_id
    assert second[0].metrics["total"] == "110000.00" and second[0].metrics["count"] == 2
    assert second[0].severity == "high"
    assert "2026-11-25至2026-11-26" in second[0].explanation_zh
    assert "from 2026-11-25 to 2026-11-26" in second[0].explanation_en


def test_asset_managers_cite_their_section():
    ctx = DetectContext(references({RELATED: {"institution_id": "AM"}}), TEST_THRESHOLDS)
    f = only(det.detect(ctx, None, AM_CUSTODY, "m1", [loan("1.00", account=AM_CUSTODY)])[1])
    assert f.rule == "二(四)"


# -- hard negatives --------------------------------------------------------------------------


def test_uninstructed_debits_to_related_parties_are_left_to_misappropriation():
    record = loan("50000.00", instruction=None)
    assert run([record])[1] == []
    mis = misappropriation.detect(world(), None, CUSTODY, "m1", [record])[1]
    assert len(mis) == 1 and mis[0].severity == "high"


def test_loans_to_borrowers_own_accounts_and_strangers_are_not_self_financing():
    records = [loan("5000000.00", to=BORROWER), loan("1000.00", to=OWN), loan("1.00", to=EXTERNAL)]
    assert run(records)[1] == []


def test_another_institutions_related_party_is_not_ours():
    assert run([loan("5000000.00", to=RELATED_P2)])[1] == []


def test_credits_from_related_parties_are_not_outflows():
    assert run([txn(CUSTODY, True, "5000000.00", f"{DAY1} 10:00:00", RELATED, instruction="R-1")])[1] == []


def test_only_custody_and_reserve_accounts_are_watched():
    assert run([loan("1.00", account=OWN)], account=OWN) == ({}, [])


# -- replays, order, bounds ------------------------------------------------------------------


def test_replays_change_nothing():
    check_replays_change_nothing(det, world(), CUSTODY, [loan("10.00"), loan("20.00", to=LISTED)])


def test_order_and_split_do_not_matter():
    records = [loan(f"{1000 + i}.00", when=f"2026-11-2{4 + i % 3} 1{i % 10}:00:00") for i in range(12)]
    records += [
        loan("7.00", to=LISTED, when="2026-11-25 23:59:59"),
        loan("8.00", to=LISTED, when="2026-11-26 00:00:00"),
    ]
    records += [loan("9.00", to=BORROWER), txn(CUSTODY, True, "100.00", f"{DAY1} 08:00:00")]
    latest = check_order_independent(det, world(), CUSTODY, records)
    assert set(latest) == {f"{CUSTODY}:{RELATED}", f"{CUSTODY}:{LISTED}"}
    assert latest[f"{CUSTODY}:{LISTED}"].metrics["total"] == "15.00"


def test_a_quiet_counterparty_is_forgotten_after_the_retention():
    ctx = world()
    state, _ = det.detect(ctx, None, CUSTODY, "m1", [loan("10.00", when="2026-08-01 10:00:00")])
    state, _ = det.detect(ctx, state, CUSTODY, "m2", [txn(CUSTODY, True, "1.00", "2026-11-25 10:00:00")])
    assert state["counterparties"] == {}
    state, findings = det.detect(ctx, state, CUSTODY, "m3", [loan("5.00")])
    assert only(findings).metrics["total"] == "5.00"


def test_a_counterparty_keeps_sums_and_evidence_not_record_ids():
    ctx = world()
    state, _ = det.detect(ctx, None, CUSTODY, "m1", [loan("10.00", when="2026-11-01 10:00:00")])
    state, _ = det.detect(ctx, state, CUSTODY, "m2", [loan("10.00", when="2026-11-25 10:00:00")])
    bucket = state["counterparties"][RELATED]
    assert bucket["n"] == 2 and len(bucket["top"]) == 2
    assert_no_record_ids(state)
