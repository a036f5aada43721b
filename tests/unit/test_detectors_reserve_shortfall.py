"""models/detectors/reserve_shortfall.py: balance below what the account owes customers."""

from __future__ import annotations

from models.detectors import reserve_shortfall as det
from models.findings import alert_id_for
from tests.unit.test_detectors_common import (
    CUSTODY,
    EXTERNAL,
    RESERVE,
    assert_explanations_safe,
    bj,
    check_order_independent,
    snap,
    txn,
    world,
)


def run(records, account=RESERVE, state=None):
    return det.detect(world(), state, account, "m1", records)


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def severity(balance, liabilities="10000.00"):
    return only(run([snap(RESERVE, "2026-11-25 18:00:00", balance, liabilities)])[1]).severity


def test_a_gap_is_a_finding():
    record = snap(RESERVE, "2026-11-25 18:00:00", "9000000.00", "10000000.00")
    f = only(run([record])[1])
    assert f.typology == "reserve_shortfall" and f.key == RESERVE
    assert f.alert_id == alert_id_for("reserve_shortfall", RESERVE)
    assert f.severity == "high" and f.rule == "二(五)" and f.detector_version == "reserve_shortfall/1"
    assert f.amount_cents == 100000000 and f.record_ids == (record.record_id,)
    assert f.window_start == f.window_end == record.as_of
    assert f.metrics == {
        "as_of": "2026-11-25T18:00:00+08:00",
        "balance": "9000000.00",
        "customer_liabilities": "10000000.00",
        "gap": "1000000.00",
        "gap_ratio": "0.100000",
        "late": False,
    }
    assert f.score == 0.5  # 0.10 of a critical 0.20
    assert "缺口1,000,000.00 元" in f.explanation_zh and "10.00%" in f.explanation_zh
    assert "a shortfall of CNY 1,000,000.00" in f.explanation_en
    assert "客户备付金账户****1012" in f.explanation_zh
    assert_explanations_safe(f)


def test_severity_at_and_below_the_ratio_lines():
    assert severity("9900.00") == "medium"  # exactly 1 %
    assert severity("9900.01") == "low"
    assert severity("9500.00") == "high"  # exactly 5 %
    assert severity("9500.01") == "medium"
    assert severity("8000.00") == "critical"  # exactly 20 %
    assert severity("8000.01") == "high"


def test_no_gap_at_or_above_the_liabilities():
    assert run([snap(RESERVE, "2026-11-25 18:00:00", "10000.00", "10000.00")])[1] == []
    assert run([snap(RESERVE, "2026-11-25 18:00:00", "10000.01", "10000.00")])[1] == []
    assert only(run([snap(RESERVE, "2026-11-25 18:00:00", "9999.99", "10000.00")])[1]).severity == "low"


def test_a_negative_balance_owing_nobody_is_critical():
    f = only(run([snap(RESERVE, "2026-11-25 18:00:00", "-5.00", "0")])[1])
    assert f.severity == "critical" and f.metrics["gap_ratio"] is None and f.score == 1.0


def test_custody_accounts_cite_their_section():
    f = only(run([snap(CUSTODY, "2026-11-25 18:00:00", "1.00", "2.00")], account=CUSTODY)[1])
    assert f.rule == "二(一)" and "客户资金存管账户****1001" in f.explanation_zh
    assert_explanations_safe(f)


def test_snapshots_without_liabilities_and_transactions_say_nothing():
    state, findings = run([snap(RESERVE, "2026-11-25 18:00:00", "1.00", None)])
    assert (state, findings) == ({}, [])
    assert run([txn(RESERVE, False, "1.00", "2026-11-25 10:00:00")]) == ({}, [])


def test_unknown_accounts_are_skipped():
    assert run([snap(EXTERNAL, "2026-11-25 18:00:00", "1.00", "2.00")], account=EXTERNAL) == ({}, [])


def test_an_older_snapshot_arriving_later_with_a_gap_is_judged_but_not_the_position():
    """In order, the older snapshot's gap raises the alert and the newer one leaves it as it was;
    out of order the gap is still judged (marked late), and the position stays the newer one."""
    ctx = world()
    newer = snap(RESERVE, "2026-11-25 18:00:00", "10000.00", "10000.00")
    older = snap(RESERVE, "2026-11-25 12:00:00", "1.00", "10000.00")
    state, findings = det.detect(ctx, None, RESERVE, "m1", [newer])
    assert findings == []
    again, findings = det.detect(ctx, state, RESERVE, "m2", [older])
    assert again == state and det.current(ctx, again, RESERVE) == []
    f = only(findings)
    assert f.record_ids == (older.record_id,) and f.metrics["late"] is True and f.amount_cents == 999_900
    in_order = det.detect(ctx, None, RESERVE, "m1", [older])[1]
    assert only(in_order).record_ids == f.record_ids and only(in_order).amount_cents == f.amount_cents


def test_an_older_snapshot_arriving_later_does_not_overwrite_an_open_gap():
    ctx = world()
    newer = snap(RESERVE, "2026-11-25 18:00:00", "5000.00", "10000.00")
    older = snap(RESERVE, "2026-11-25 12:00:00", "9999.00", "10000.00")
    state, first = det.detect(ctx, None, RESERVE, "m1", [newer])
    state, findings = det.detect(ctx, state, RESERVE, "m2", [older])
    assert findings == [] and det.current(ctx, state, RESERVE) == first


def test_a_newer_snapshot_closing_the_gap_leaves_no_finding():
    ctx = world()
    state, first = det.detect(
        ctx, None, RESERVE, "m1", [snap(RESERVE, "2026-11-25 12:00:00", "1.00", "2.00")]
    )
    assert only(first).key == RESERVE
    state, findings = det.detect(
        ctx, state, RESERVE, "m2", [snap(RESERVE, "2026-11-25 18:00:00", "2.00", "2.00")]
    )
    assert findings == [] and det.current(ctx, state, RESERVE) == []
    assert state["as_of"] == bj("2026-11-25 18:00:00")


def test_a_growing_gap_updates_one_alert():
    ctx = world()
    state, first = det.detect(
        ctx, None, RESERVE, "m1", [snap(RESERVE, "2026-11-25 12:00:00", "99.00", "100.00")]
    )
    state, second = det.detect(
        ctx, state, RESERVE, "m2", [snap(RESERVE, "2026-11-26 12:00:00", "50.00", "100.00")]
    )
    assert only(first).alert_id == only(second).alert_id
    assert (first[0].severity, second[0].severity) == ("medium", "critical")


def test_the_newest_of_one_message_wins_whatever_its_place():
    records = [
        snap(RESERVE, "2026-11-25 18:00:00", "1.00", "100.00"),
        snap(RESERVE, "2026-11-25 09:00:00", "100.00", "100.00"),
    ]
    assert only(run(records)[1]).metrics["gap"] == "99.00"
    assert only(run(records[::-1])[1]).metrics["gap"] == "99.00"


def test_same_time_ties_are_broken_by_record_id():
    a = snap(RESERVE, "2026-11-25 18:00:00", "1.00", "100.00", rid="snap-a")
    b = snap(RESERVE, "2026-11-25 18:00:00", "100.00", "100.00", rid="snap-b")
    ctx = world()
    one, _ = det.detect(ctx, det.detect(ctx, None, RESERVE, "m1", [a])[0], RESERVE, "m2", [b])
    two, _ = det.detect(ctx, det.detect(ctx, None, RESERVE, "m1", [b])[0], RESERVE, "m2", [a])
    assert one == two and one["record_id"] == "snap-b"


def test_replays_change_nothing():
    ctx = world()
    record = snap(RESERVE, "2026-11-25 18:00:00", "1.00", "100.00")
    state, first = det.detect(ctx, None, RESERVE, "m1", [record])
    assert det.detect(ctx, state, RESERVE, "m1", [record]) == (state, first)  # re-emitted, same figures
    assert det.detect(ctx, state, RESERVE, "m7", [record]) == (state, first)


def test_state_is_not_mutated():
    ctx = world()
    state, _ = det.detect(ctx, None, RESERVE, "m1", [snap(RESERVE, "2026-11-25 18:00:00", "1.00", "100.00")])
    before = dict(state)
    det.detect(ctx, state, RESERVE, "m2", [snap(RESERVE, "2026-11-26 18:00:00", "5.00", "100.00")])
    assert state == before


def test_order_and_split_do_not_matter():
    records = [
        snap(RESERVE, f"2026-11-2{5 + i % 2} {8 + i:02d}:00:00", f"{90 + i}.00", "100.00") for i in range(10)
    ]
    records.append(snap(RESERVE, "2026-11-26 23:59:59", "80.00", "100.00"))
    latest = check_order_independent(det, world(), RESERVE, records, monotone=False)
    assert latest[RESERVE].metrics["gap"] == "20.00" and latest[RESERVE].severity == "critical"
