"""models/detectors/disguised_clearing.py: a payment institution paying out at one bank what its
customers paid in at another, through its own accounts."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import msgspec
import pytest

from models.alerting import fold_findings
from models.detectors import disguised_clearing as det
from models.detectors import disguised_clearing_days as clearing_days
from models.detectors import fold
from models.detectors.common import ALLOWED_LATENESS, LATE_KEEP, is_sealed
from models.detectors.context import DetectContext
from models.detectors.wording import mask
from models.findings import TYPOLOGIES, alert_id_for
from models.thresholds import DEFAULT_FILE, Thresholds, load_thresholds
from models.windows import HOUR
from tests.unit.test_detectors_common import (
    CUSTODY,
    OWN_B,
    OWN_PAY,
    OWN_PAY_B,
    PAY_NAME,
    RESERVE,
    TEST_THRESHOLDS,
    assert_explanations_safe,
    assert_no_record_ids,
    bj,
    check_order_independent,
    check_replays_change_nothing,
    references,
    txn,
)

# -- the world: PAY has accounts at three banks ------------------------------------------------

RESERVE_B = "6222030200001031"  # PAY payment_reserve at bank B002
RESERVE_C = "6222030300001032"  # PAY payment_reserve at bank B003
CUSTOMERS = tuple(f"6217999700{i:06d}" for i in range(400))  # payers unknown to the reference data
PAYEES = tuple(f"6217999600{i:06d}" for i in range(400))


def _reserve(account: str, bank: str) -> dict:
    return {"account_id": account, "bank_code": bank, "institution_id": "PAY", "role": "payment_reserve",
            "holder_name": PAY_NAME, "product_id": None}  # fmt: skip


PATCH = {
    RESERVE_B: _reserve(RESERVE_B, "B002"),
    RESERVE_C: _reserve(RESERVE_C, "B003"),
    OWN_PAY_B: {"bank_code": "B002"},
    OWN_B: {"bank_code": "B002"},  # P1, a p2p platform, at two banks too
}

CLEARING = {"max_lag_seconds": 3600, "min_customers": 20, "amount_tolerance": "0.00"}
THRESHOLDS = Thresholds(
    version=TEST_THRESHOLDS.version,
    defaults={**TEST_THRESHOLDS.defaults, "disguised_clearing": CLEARING},
    overrides=TEST_THRESHOLDS.overrides,
)


def world(clearing: dict | None = None) -> DetectContext:
    thresholds = THRESHOLDS
    if clearing is not None:
        defaults = {**THRESHOLDS.defaults, "disguised_clearing": {**CLEARING, **clearing}}
        thresholds = Thresholds("test-1", defaults, THRESHOLDS.overrides)
    return DetectContext(references(PATCH), thresholds)


D = "2026-11-25"


def at(when: str, seconds: int = 0) -> str:
    """A Beijing wall-clock time ``seconds`` after ``when``."""
    moment = datetime.fromisoformat(when) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def pairs(n, start=0, on=D, hour=10, lag=300, credit_to=RESERVE, debit_from=RESERVE_B, amount=None):
    """n customers pay in at ``credit_to``; ``lag`` seconds later the same amounts leave
    ``debit_from`` for n payees. Amounts differ per pair (1000.00 + i yuan and i cents)."""
    records = []
    for i in range(start, start + n):
        cents = amount or f"{1000 + i}.{i % 100:02d}"
        when = at(f"{on} {hour:02d}:00:00", 60 * (i - start))
        records.append(txn(credit_to, True, cents, when, CUSTOMERS[i]))
        records.append(txn(debit_from, False, cents, at(when, lag), PAYEES[i]))
    return records


def run(records, ctx=None, institution="PAY"):
    return det.detect(ctx or world(), None, institution, "m1", records)


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def assert_private(finding):
    assert_explanations_safe(finding)
    for text in (finding.explanation_zh, finding.explanation_en):
        for account in (*CUSTOMERS, *PAYEES, RESERVE_B, RESERVE_C):
            assert account not in text


# -- the rule --------------------------------------------------------------------------------


def test_mirrored_legs_at_two_banks_are_a_finding():
    records = pairs(20)
    state, findings = run(records)
    f = only(findings)
    assert f.typology == "disguised_clearing" and f.key == f"PAY:{D}" and f.institution_id == "PAY"
    assert f.alert_id == alert_id_for("disguised_clearing", f.key)
    assert f.rule == "二(五)" and f.detector_version == "disguised_clearing/1"
    assert f.severity == "medium" and f.accounts == (RESERVE, RESERVE_B)
    total = sum(r.amount_cents for r in records if r.credit)
    assert f.amount_cents == total
    assert f.metrics["customers"] == 20 and f.metrics["customers_capped"] is False
    assert f.metrics["mirrored_credit_count"] == 20 and f.metrics["mirrored_debit_count"] == 20
    assert f.metrics["credit_banks"] == {"B001": f.metrics["mirrored_credits"]}
    assert f.metrics["debit_banks"] == {"B002": f.metrics["mirrored_debits"]}
    assert f.metrics["mirrored_credits"] == f.metrics["mirrored_debits"] == "20191.90"
    assert set(f.record_ids) == {r.record_id for r in records}  # 40 <= TOP_N
    assert f.window_start == bj(f"{D} 10:00:00") and f.window_end == bj(f"{D} 10:24:00")
    assert f.thresholds["max_lag_seconds"] == 3600 and f.thresholds["config_version"] == "test-1"
    assert f.extra == {"region": "220104", "institution_type": "payment"}
    assert f.score == 0.1
    zh, en = f.explanation_zh, f.explanation_en
    assert "该支付机构在B001银行的客户备付金账户****1012收到20个客户的20笔付款、合计20,191.90 元" in zh
    assert "每一笔都在60分钟内由该机构在另一家银行的账户向外付出相同金额的款项" in zh
    assert "（当日在B002银行付出此类款项20笔、合计20,191.90 元）" in zh
    assert "变相开展跨行清算（《方案》二(五)）。" in zh
    assert "payment-reserve account ****1012 at bank(s) B001 received 20 payment(s)" in en
    assert "from 20 customer(s), each mirrored within 60 minute(s) by a payment of the same amount" in en
    assert en.endswith("suspected disguised interbank clearing (rectification plan §2(5)).")
    assert_private(f)
    # nothing is left waiting: every record found its mirror
    assert state["pend"] == {"c": {}, "d": {}}


def test_customers_at_the_minimum_and_one_below():
    assert run(pairs(19))[1] == []
    assert only(run(pairs(19), ctx=world({"min_customers": 19}))[1]).metrics["customers"] == 19
    # 20 mirrored credits from 19 customers (one pays twice): 19 customers
    twice = pairs(19) + [txn(RESERVE, True, "777.00", f"{D} 15:00:00", CUSTOMERS[0])]
    twice.append(txn(RESERVE_C, False, "777.00", f"{D} 15:10:00", PAYEES[0]))
    assert run(twice)[1] == []
    f = only(run(twice + pairs(1, start=30))[1])
    assert f.metrics["customers"] == 20 and f.metrics["mirrored_credit_count"] == 21


@pytest.mark.parametrize(
    ("n", "severity"), [(20, "medium"), (59, "medium"), (60, "high"), (199, "high"), (200, "critical")]
)
def test_severity_by_the_number_of_customers(n, severity):
    f = only(run(pairs(n, lag=30))[1])
    assert f.severity == severity and f.metrics["customers"] == n
    assert f.score == min(1.0, n / 200)
    assert len(f.record_ids) == min(50, 2 * n)


@pytest.mark.parametrize(("lag", "mirrored"), [(3600, True), (3601, False), (-3600, True), (-3601, False)])
def test_lag_at_and_just_beyond_max_lag_seconds(lag, mirrored):
    """19 ordinary pairs and one whose debit is ``lag`` seconds from its credit (before it when
    negative): the 20th customer counts only within max_lag_seconds."""
    records = pairs(19) + pairs(1, start=50, hour=14, lag=lag)
    findings = run(records)[1]
    assert bool(findings) is mirrored
    assert bool(run(records, ctx=world({"max_lag_seconds": 3601}))[1])


@pytest.mark.parametrize(
    ("tolerance", "debit", "mirrored"),
    [
        ("0.00", "1000.00", True),
        ("0.00", "1000.01", False),  # one cent off is no mirror
        ("0.00", "999.99", False),
        ("0.001", "1001.00", True),  # 0.1 % of 1,000.00
        ("0.001", "1001.01", False),
        ("0.001", "999.00", True),
        ("0.001", "998.99", False),
        ("0.5", "1500.00", True),  # a wide tolerance scans the hour's amounts
        ("0.5", "1500.01", False),
    ],
)
def test_amount_tolerance(tolerance, debit, mirrored):
    ctx = world({"amount_tolerance": tolerance})
    odd = [txn(RESERVE, True, "1000.00", f"{D} 14:00:00", CUSTOMERS[50])]
    odd.append(txn(RESERVE_B, False, debit, f"{D} 14:05:00", PAYEES[50]))
    records = pairs(19, hour=9) + odd
    assert bool(run(records, ctx=ctx)[1]) is mirrored
    # the same when the debit comes first, in an earlier message
    state, _ = det.detect(ctx, None, "PAY", "m1", pairs(19, hour=9) + odd[1:])
    assert bool(det.detect(ctx, state, "PAY", "m2", odd[:1])[1]) is mirrored
    if mirrored and tolerance != "0.00":
        f = only(run(records, ctx=ctx)[1])
        assert "金额相差不超过" in f.explanation_zh and "an amount within" in f.explanation_en


def test_one_debit_mirrors_every_credit_of_its_amount_within_the_lag():
    """A relation, not a one-to-one matching: the set of mirrored credits depends only on the set
    of records."""
    credits = [txn(RESERVE, True, "100.00", f"{D} 10:{i:02d}:00", CUSTOMERS[i]) for i in range(20)]
    debit = [txn(RESERVE_B, False, "100.00", f"{D} 10:30:00", PAYEES[0])]
    f = only(run(credits + debit)[1])
    assert f.metrics["customers"] == 20 and f.metrics["mirrored_debit_count"] == 1


# -- hard negatives --------------------------------------------------------------------------


def test_own_money_between_its_own_accounts_at_two_banks_is_no_clearing():
    """Both legs reported (the debit at one bank, the credit at the other), many times a day."""
    records = []
    for i, (source, target) in enumerate(
        [(RESERVE, RESERVE_B), (OWN_PAY, OWN_PAY_B), (RESERVE_B, RESERVE_C)] * 10
    ):
        when = f"{D} 1{i % 10}:{i:02d}:00"
        records.append(txn(source, False, f"{50000 + i}.00", when, target, channel="HVPS"))
        records.append(txn(target, True, f"{50000 + i}.00", at(when, 5), source, channel="HVPS"))
    state, findings = run(records)
    assert findings == [] and state["days"] == {} and state["pend"] == {"c": {}, "d": {}}


def test_mirrored_amounts_at_the_same_bank_are_no_clearing():
    assert run(pairs(40, debit_from=OWN_PAY))[1] == []  # credit and debit both at B001
    assert run(pairs(40, credit_to=RESERVE_B, debit_from=OWN_PAY_B))[1] == []  # both at B002


def test_merchant_settlements_sum_many_payments_and_mirror_none():
    records = []
    for i in range(60):
        records.append(txn(RESERVE, True, f"{100 + 7 * i}.{i % 100:02d}", f"{D} 09:{i:02d}:00", CUSTOMERS[i]))
    for m in range(6):  # six merchants, each paid the sum of its ten sales at the other bank
        total = sum(r.amount_cents for r in records[10 * m : 10 * m + 10])
        records.append(
            txn(RESERVE_B, False, f"{total // 100}.{total % 100:02d}", f"{D} 10:{m:02d}:00", PAYEES[m])
        )
    state, findings = run(records)
    assert findings == [] and state["days"] == {}


def test_only_payment_institutions_are_watched():
    records = pairs(40, credit_to=CUSTODY, debit_from=OWN_B)  # P1 at B001 and B002
    assert run(records, institution="P1") == ({}, [])
    assert det.current(world(), {"days": {}}, "P1") == []
    assert run(pairs(40), institution="NOBODY") == ({}, [])


def test_other_currencies_and_other_institutions_records_do_not_count():
    usd = [msgspec.structs.replace(r, currency="USD") for r in pairs(30)]
    assert run(usd)[1] == []
    foreign = pairs(30, credit_to=CUSTODY, debit_from=OWN_B)  # P1's accounts in PAY's message
    assert run(foreign) == ({}, [])


def test_a_review_without_records_changes_nothing():
    ctx = world()
    assert det.detect(ctx, None, "PAY", "review/1", []) == ({}, [])
    state, _ = run(pairs(20))
    assert det.detect(ctx, state, "PAY", "review/2", []) == (state, [])


# -- days, lateness, re-emission -------------------------------------------------------------


def test_a_pair_across_midnight_counts_on_the_day_of_the_credit():
    late = [txn(RESERVE, True, "888.00", f"{D} 23:50:00", CUSTOMERS[99])]
    late.append(txn(RESERVE_B, False, "888.00", "2026-11-26 00:20:00", PAYEES[99]))
    state, findings = run(pairs(19) + late)
    f = only(findings)
    assert f.key == f"PAY:{D}" and f.metrics["customers"] == 20
    assert f.metrics["mirrored_credit_count"] == 20 and f.metrics["mirrored_debit_count"] == 19
    assert f.window_end == bj(f"{D} 23:50:00")
    assert len(state["days"]) == 2  # the debit is tallied on its own day


def test_late_records_within_the_allowed_lateness_still_count():
    ctx = world()
    state, _ = det.detect(
        ctx, None, "PAY", "m1", pairs(19) + [txn(RESERVE_B, False, "888.00", f"{D} 23:59:00", PAYEES[99])]
    )
    # one bank moving on does not seal a day another bank is still sending: the slowest holds
    ahead, _ = det.detect(
        ctx, state, "PAY", "m2", [txn(OWN_PAY, False, "1.00", "2026-11-27 22:00:00", PAYEES[98])]
    )
    assert ahead["wm"] == bj(f"{D} 23:59:00") and sorted(ahead["src"]) == ["B001", "B002"]  # B002's progress
    state, _ = det.detect(
        ctx,
        state,
        "PAY",
        "m2",
        [
            txn(OWN_PAY, False, "1.00", "2026-11-27 23:00:00", PAYEES[98]),
            txn(RESERVE_B, False, "1.00", "2026-11-27 23:00:00", PAYEES[97]),
        ],
    )
    assert not is_sealed(bj(f"{D} 23:00:00"), state["wm"])
    # the credit the debit mirrors arrives two days late: the day is still open
    state, findings = det.detect(
        ctx, state, "PAY", "m3", [txn(RESERVE, True, "888.00", f"{D} 23:30:00", CUSTOMERS[99])]
    )
    assert only(findings).metrics["customers"] == 20 and only(findings).metrics["late"] is False
    # a record of a sealed day is still judged (it mirrors nothing held)
    sealed = [txn(RESERVE, True, "1010.10", "2026-11-24 23:30:00", CUSTOMERS[200])]
    assert bj("2026-11-25 00:00:00") + ALLOWED_LATENESS <= state["wm"]
    later, again = det.detect(ctx, state, "PAY", "m4", sealed)
    assert again == findings  # D's, unchanged
    assert_no_record_ids({k: v for k, v in later.items() if k not in ("pend", "mir")})


def test_a_late_bank_still_mirrors_what_is_held_and_says_it_came_late():
    ctx = world()
    credits = [txn(RESERVE, True, f"{1000 + i}.00", f"{D} 23:{i:02d}:00", CUSTOMERS[i]) for i in range(25)]
    debits = [txn(RESERVE_B, False, f"{1000 + i}.00", f"{D} 23:{i + 5:02d}:00", PAYEES[i]) for i in range(25)]
    # bank B001 sends its day and three more; bank B002 has sent nothing yet: not a source
    ahead = [txn(RESERVE, False, "1.00", f"2026-11-{26 + k} 12:00:00", PAYEES[300 + k]) for k in range(3)]
    state, findings = det.detect(ctx, None, "PAY", "m1", credits + ahead)
    assert findings == [] and is_sealed(bj(f"{D} 23:00:00"), state["wm"])
    # B002's debits come late, while the credits are still held (a record of the next day, on
    # time, could still mirror them): found, and marked late
    state, findings = det.detect(ctx, state, "PAY", "m2", debits)
    f = only(findings)
    assert f.metrics["customers"] == 25 and f.metrics["late"] is True


def test_a_debit_just_after_midnight_arriving_late_updates_the_day_before():
    ctx = world()
    late_credit = [txn(RESERVE, True, "888.00", f"{D} 23:55:00", CUSTOMERS[99])]
    state, findings = det.detect(ctx, None, "PAY", "m1", pairs(19) + late_credit)
    assert findings == []
    state, findings = det.detect(
        ctx, state, "PAY", "m2", [txn(RESERVE_C, False, "888.00", "2026-11-26 00:05:00", PAYEES[9])]
    )
    f = only(findings)
    assert f.key == f"PAY:{D}" and f.metrics["customers"] == 20
    assert f.metrics["debit_banks"] == {"B002": f.metrics["mirrored_debits"]}  # the B003 debit is on 11-26


def test_re_emission_with_the_same_facts_is_byte_identical():
    ctx = world()
    state, findings = det.detect(ctx, None, "PAY", "m1", pairs(20))
    memory, changed = fold_findings(None, findings, {"PAY": "220104"}, at=bj(f"{D} 12:00:00"))
    assert [kind for kind, _ in changed] == ["created"]
    noise = [txn(RESERVE, True, "5.00", f"{D} 13:00:00", CUSTOMERS[300])]  # mirrors nothing
    state2, again = det.detect(ctx, state, "PAY", "m2", noise)
    assert again == findings
    _, changed = fold_findings(memory, again, {"PAY": "220104"}, at=bj(f"{D} 18:00:00"))
    assert changed == []
    assert findings[0].window_end <= state2["wm"]


# -- replays, order, bounds ------------------------------------------------------------------


def test_replays_change_nothing():
    check_replays_change_nothing(det, world(), "PAY", pairs(20))


def test_state_is_not_mutated():
    ctx = world()
    state, _ = det.detect(
        ctx, None, "PAY", "m1", pairs(10) + [txn(RESERVE, True, "5.00", f"{D} 13:00:00", CUSTOMERS[300])]
    )
    snapshot = copy.deepcopy(state)
    det.detect(
        ctx,
        state,
        "PAY",
        "m2",
        pairs(20, start=10) + [txn(RESERVE_C, False, "5.00", f"{D} 13:10:00", PAYEES[0])],
    )
    assert state == snapshot


def _mixed() -> list:
    records = pairs(15, hour=9)  # credit first
    records += pairs(6, start=20, hour=11, lag=-900, debit_from=RESERVE_C)  # debit first, bank B003
    for i, minute in enumerate((40, 45, 50)):  # across midnight: the debits on 11-26
        records.append(txn(RESERVE, True, f"{30 + i}.00", f"{D} 23:{minute}:00", CUSTOMERS[30 + i]))
        records.append(txn(RESERVE_B, False, f"{30 + i}.00", at(f"{D} 23:{minute}:00", 1200), PAYEES[30 + i]))
    records += pairs(5, start=40, debit_from=OWN_PAY, hour=13)  # same bank: no mirror
    records += [txn(RESERVE, True, "100.00", f"{D} 14:{i:02d}:00", CUSTOMERS[60 + i]) for i in range(6)]
    records += [
        txn(OWN_PAY_B, False, "100.00", f"{D} 14:{20 + 40 * i:02d}:00", PAYEES[60 + i]) for i in range(1)
    ]
    records += [
        txn(RESERVE_B, False, "100.00", f"{D} 16:{i:02d}:00", PAYEES[70 + i]) for i in range(2)
    ]  # too late
    records += [txn(RESERVE, False, "60000.00", f"{D} 15:00:00", RESERVE_B, channel="HVPS")]  # own move
    records += [txn(RESERVE_B, True, "60000.00", f"{D} 15:00:05", RESERVE, channel="HVPS")]
    records += [txn(RESERVE, True, "3.00", f"{D} 17:00:00", CUSTOMERS[90], currency="USD")]
    return records


def test_order_and_split_do_not_matter():
    latest = check_order_independent(det, world(), "PAY", _mixed())
    assert set(latest) == {f"PAY:{D}"}  # 11-26 has mirrored debits only
    f = latest[f"PAY:{D}"]
    assert f.metrics["customers"] == 15 + 6 + 3 + 6
    assert f.metrics["credit_banks"] == {"B001": f.metrics["mirrored_credits"]}
    assert set(f.metrics["debit_banks"]) == {"B002", "B003"}
    assert f.metrics["mirrored_debit_count"] == 15 + 6 + 1  # the night debits are on 11-26
    assert_private(f)


def test_order_does_not_matter_with_a_tolerance():
    latest = check_order_independent(det, world({"amount_tolerance": "0.01"}), "PAY", _mixed(), seeds=10)
    assert latest[f"PAY:{D}"].metrics["customers"] >= 30


def test_customers_are_capped_whatever_the_order(monkeypatch):
    monkeypatch.setattr(clearing_days, "CUSTOMER_CAP", 25)
    latest = check_order_independent(det, world(), "PAY", pairs(40, lag=45), seeds=10)
    f = latest[f"PAY:{D}"]
    assert f.metrics["customers"] == 25 and f.metrics["customers_capped"] is True
    assert f.metrics["mirrored_credit_count"] == 40
    assert "至少25个客户" in f.explanation_zh and "from at least 25 customer(s)" in f.explanation_en
    state = fold(det, world(), "PAY", [("m", pairs(40, lag=45))])[0]
    assert sorted(state["days"][next(iter(state["days"]))]["cust"]) == sorted(CUSTOMERS[:25])


def test_state_stays_bounded():
    ctx = world()
    state = None
    for k in range(12):
        on = (datetime(2026, 11, 10) + timedelta(days=k)).strftime("%Y-%m-%d")
        records = pairs(20, start=k * 20 % 300, on=on) + pairs(
            10, start=300, on=on, hour=15, debit_from=OWN_PAY
        )
        # every bank of PAY's accounts sends each day (B003 a payment it mirrors with nothing)
        records.append(txn(RESERVE_C, True, "7.00", f"{on} 18:00:00", CUSTOMERS[399]))
        state, findings = det.detect(ctx, state, "PAY", f"m{k}", records)
        assert only(findings).key == f"PAY:{on}"
    assert len(state["days"]) <= 4
    lag = CLEARING["max_lag_seconds"]
    for table in ("pend", "mir"):
        for side in ("c", "d"):
            hours = [int(h) for h in state[table][side]]
            assert all(h + HOUR + lag > state["wm"] - 4 * 86400 for h in hours)
    assert msgspec.json.decode(msgspec.json.encode(state)) == state  # plain JSON, str keys
    # pending entries are those that found no mirror (the same-bank ones)
    pending = [
        e for hours in state["pend"].values() for a in hours.values() for b in a.values() for e in b.values()
    ]
    assert pending and all(len(entries) == 1 for entries in pending)


def test_a_bank_that_has_sent_nothing_holds_the_others_legs_at_most_late_keep_longer():
    ctx = world()
    state = None
    for k in range(16):
        on = (datetime(2026, 11, 10) + timedelta(days=k)).strftime("%Y-%m-%d")
        state, _ = det.detect(ctx, state, "PAY", f"m{k}", pairs(20, start=k * 20 % 300, on=on))
    # B003 (RESERVE_C) is registered and silent: days are held for it, LATE_KEEP at most
    held = len(state["days"])
    assert 4 < held <= 4 + LATE_KEEP // 86400


def a_week_at_two_banks(days=6):
    """``days`` days of 20 pairs from 2026-11-10: the credits at B001 (RESERVE), the debits at
    B002 (RESERVE_B), apart so that each bank can push its own."""
    credits, debits = [], []
    for k in range(days):
        on = (datetime(2026, 11, 10) + timedelta(days=k)).strftime("%Y-%m-%d")
        both = pairs(20, start=20 * k, on=on)
        credits += [r for r in both if r.account_id == RESERVE]
        debits += [r for r in both if r.account_id == RESERVE_B]
    return credits, debits


def test_a_bank_pushing_its_week_after_another_bank_still_finds_the_mirrors():
    ctx = world()
    state = None
    credits, debits = a_week_at_two_banks()
    state, findings = det.detect(ctx, state, "PAY", "bank-1", credits)  # B001's week first
    assert findings == []
    state, findings = det.detect(ctx, state, "PAY", "bank-2", debits)  # then B002's, days late
    assert sorted(f.key for f in findings) == [f"PAY:2026-11-{10 + k}" for k in range(6)]
    assert all(f.metrics["customers"] == 20 for f in findings)
    assert any(f.metrics["late"] is True for f in findings)


def test_reads_the_shipped_thresholds():
    assert det.NAME in TYPOLOGIES and det.SCOPE == "institution"
    real = load_thresholds(env={}, path=DEFAULT_FILE)
    assert set(CLEARING) <= set(real.defaults["disguised_clearing"])
    assert set(det.DEFAULTS) == set(CLEARING)
    assert mask(RESERVE) == "****1012"
