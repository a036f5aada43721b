"""models/detectors/fund_pool.py: many investors in, many borrowers or investors out, nothing stays."""

from __future__ import annotations

import msgspec
import pytest

from models.detectors import DETECTORS, fold
from models.detectors import fund_pool as det
from models.detectors import fund_pool_days as pool_days
from models.detectors.common import ALLOWED_LATENESS, LATE_KEEP, beijing_date
from models.detectors.context import DetectContext
from models.detectors.wording import mask
from models.findings import TYPOLOGIES, alert_id_for
from models.thresholds import DEFAULT_FILE, Thresholds, load_thresholds
from models.windows import DAY
from tests.unit.test_detectors_common import (
    BORROWER,
    CUSTODY,
    OWN,
    OWN_B,
    OWN_PAY,
    PERSON,
    RELATED,
    RESERVE,
    TEST_THRESHOLDS,
    assert_explanations_safe,
    assert_no_record_ids,
    bj,
    check_order_independent,
    check_replays_change_nothing,
    references,
    snap,
    txn,
)

# -- a world with enough investors and borrowers ----------------------------------------------

_SURNAMES = "赵钱孙李周吴郑王冯陈"
_GIVEN = "伟芳娜敏静丽强磊军洋"


def _name(i: int) -> str:
    return _SURNAMES[i % 10] + _GIVEN[i // 10 % 10] + _GIVEN[(i * 7) % 10]


INVESTORS = tuple(f"6217000300{i:06d}" for i in range(40))  # role investor of P1
BORROWERS = tuple(f"6217000400{i:06d}" for i in range(30))  # role borrower of P1
STRANGERS = tuple(f"6217999800{i:06d}" for i in range(40))  # unknown to the reference data
SETTLEMENT = "6222030100003022"  # PAY's merchant-settlement account, role other
MANAGED = "6222020100004023"  # an account registered to P1 with role other
NAMES = {
    **{acct: _name(i) for i, acct in enumerate(INVESTORS)},
    **{acct: _name(i + 40) for i, acct in enumerate(BORROWERS)},
    SETTLEMENT: "长春恒通支付有限公司商户结算专户",
    MANAGED: "吉林鑫汇资产运营有限公司",
}
PATCH = {
    **{a: {"role": "investor", "institution_id": "P1", "holder_name": NAMES[a]} for a in INVESTORS},
    **{a: {"role": "borrower", "institution_id": "P1", "holder_name": NAMES[a]} for a in BORROWERS},
    SETTLEMENT: {"role": "other", "institution_id": "PAY", "holder_name": NAMES[SETTLEMENT]},
    MANAGED: {"role": "other", "institution_id": "P1", "holder_name": NAMES[MANAGED]},
}

POOL = {"window_days": 3, "min_distinct_in": 20, "min_distinct_out": 10,
        "pass_through_min": "0.8", "end_balance_ratio_max": "0.10"}  # fmt: skip
THRESHOLDS = Thresholds(
    version=TEST_THRESHOLDS.version,
    defaults={**TEST_THRESHOLDS.defaults, "fund_pool": POOL},
    overrides=TEST_THRESHOLDS.overrides,
)


def world(pool: dict | None = None, overrides: dict | None = None) -> DetectContext:
    thresholds = THRESHOLDS
    if pool is not None or overrides is not None:
        defaults = {**THRESHOLDS.defaults, "fund_pool": {**POOL, **(pool or {})}}
        thresholds = Thresholds("test-1", defaults, {**THRESHOLDS.overrides, **(overrides or {})})
    return DetectContext(references(PATCH), thresholds)


# The periods of three Beijing days that hold these days: 11-24..11-26, 11-27..11-29.
DAY1 = "2026-11-25"
PERIOD = "2026-11-24"


def credits(payers, amount, day=DAY1, hour=9, account=OWN):
    return [txn(account, True, amount, f"{day} {hour:02d}:{i % 60:02d}:00", p) for i, p in enumerate(payers)]


def debits(payees, amount, day=DAY1, hour=15, account=OWN):
    return [txn(account, False, amount, f"{day} {hour:02d}:{i % 60:02d}:00", p) for i, p in enumerate(payees)]


def pool(
    n_in=20, n_out=10, paid_in="10000.00", paid_out="19000.00", balance="10000.00", day=DAY1, account=OWN
):
    """n_in investors pay in, n_out borrowers are paid, and the day ends with ``balance`` (a
    snapshot); with the defaults: 200,000 in, 190,000 out (95 %), 10,000 left (5 %)."""
    records = credits(INVESTORS[:n_in], paid_in, day, account=account)
    records += debits(BORROWERS[:n_out], paid_out, day, account=account)
    if balance is not None:
        records.append(snap(account, f"{day} 23:30:00", balance, None))
    return records


def run(records, account=OWN, ctx=None):
    return det.detect(ctx or world(), None, account, "m1", records)


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def assert_private(finding):
    assert_explanations_safe(finding)
    for text in (finding.explanation_zh, finding.explanation_en):
        for account, name in NAMES.items():
            assert account not in text and name not in text, (account, text)
        for account in (*INVESTORS, *BORROWERS, *STRANGERS):
            assert account not in text


# -- the rule --------------------------------------------------------------------------------


def test_a_pool_on_an_own_account_is_a_finding():
    records = pool()
    state, findings = run(records)
    f = only(findings)
    assert f.typology == "fund_pool" and f.key == f"{OWN}:{PERIOD}"
    assert f.alert_id == alert_id_for("fund_pool", f.key)
    assert f.rule == "二(一)" and f.detector_version == "fund_pool/1"
    assert f.institution_id == "P1" and f.accounts == (OWN,) and f.severity == "medium"
    assert f.amount_cents == 19_000_000  # passed through: min(in, out)
    assert f.metrics["distinct_in"] == 20 and f.metrics["distinct_in_investor"] == 20
    assert f.metrics["distinct_out"] == 10 and f.metrics["distinct_out_borrower"] == 10
    assert f.metrics["credits"] == "200000.00" and f.metrics["debits"] == "190000.00"
    assert f.metrics["pass_through"] == "0.95000000" and f.metrics["end_balance_ratio"] == "0.05000000"
    assert f.metrics["end_balance_source"] == "balance" and f.metrics["closing_balance"] == "10000.00"
    # the window as far back as it holds records: the one day
    assert (f.metrics["window_first_day"], f.metrics["window_last_day"]) == (DAY1, DAY1)
    assert f.metrics["period"] == PERIOD and f.metrics["window_days"] == 1
    assert f.thresholds["min_distinct_in"] == 20 and f.thresholds["config_version"] == "test-1"
    assert f.extra == {"account_role": "own_operating", "region": "220102"}
    assert f.window_start == bj(f"{DAY1} 09:00:00") and f.window_end == bj(f"{DAY1} 15:09:00")
    assert set(f.record_ids) == {r.record_id for r in records[:30]}  # the transactions, not the snapshot
    assert 0.0 <= f.score <= 1.0
    zh, en = f.explanation_zh, f.explanation_en
    assert "自有运营账户****2002" in zh and "2026-11-25（1个北京日）" in zh
    assert "20个投资人账户" in zh and "10个借款人或投资人账户" in zh and "200,000.00 元" in zh
    assert "190,000.00 元" in zh and "95.00%" in zh and "日终余额10,000.00 元" in zh and "5.00%" in zh
    assert "设立资金池（《方案》二(一)）" in zh
    assert "own operating account ****2002" in en and "20 investor account(s)" in en
    assert "CNY 200,000.00" in en and "10 borrower or investor account(s)" in en
    assert "suspected fund pool (rectification plan §2(1))." in en
    assert_private(f)
    assert state["wm"] == bj(f"{DAY1} 23:30:00")


def test_fan_in_at_the_minimum_and_one_below():
    assert only(run(pool(n_in=20))[1]).metrics["distinct_in"] == 20
    fewer = pool(n_in=19, paid_in="10526.32")  # about the same money, one investor fewer
    assert run(fewer)[1] == []
    assert only(run(fewer, ctx=world({"min_distinct_in": 19}))[1]).metrics["distinct_in"] == 19


def test_fan_out_at_the_minimum_and_one_below():
    assert only(run(pool(n_out=10))[1]).metrics["distinct_out"] == 10
    fewer = pool(n_out=9, paid_out="21111.11", balance="0.01")
    assert run(fewer)[1] == []
    assert only(run(fewer, ctx=world({"min_distinct_out": 9}))[1]).metrics["distinct_out"] == 9


def test_pass_through_at_the_minimum_and_just_below():
    at = pool(paid_out="16000.00", balance="0.00")  # 160,000 / 200,000 = 0.8
    assert only(run(at)[1]).metrics["pass_through"] == "0.80000000"
    below = pool(paid_out="16000.00", balance="0.00")
    below[-2] = txn(OWN, False, "15999.99", f"{DAY1} 15:09:00", BORROWERS[9])  # one cent short
    assert run(below)[1] == []
    assert (
        only(run(below, ctx=world({"pass_through_min": "0.79"}))[1]).metrics["pass_through"] == "0.79999995"
    )


def test_end_balance_ratio_at_the_maximum_and_just_above():
    at = only(run(pool(balance="20000.00"))[1])  # 20,000 / 200,000 = 0.10
    assert at.metrics["end_balance_ratio"] == "0.10000000" and "10.00%" in at.explanation_zh
    assert run(pool(balance="20000.01"))[1] == []
    assert only(run(pool(balance="20000.01"), ctx=world({"end_balance_ratio_max": "0.11"}))[1])


def test_the_latest_balance_of_the_last_day_is_the_closing_balance():
    records = pool(balance=None)
    # an early balance_after (all the money still there) is superseded by the last one
    records[19] = msgspec.structs.replace(records[19], balance_after_cents=20_000_000)
    records[-1] = msgspec.structs.replace(records[-1], balance_after_cents=500_000)
    f = only(run(records)[1])
    assert f.metrics["closing_balance"] == "5000.00" and f.metrics["end_balance_source"] == "balance"
    # a later snapshot wins over the transaction's balance_after
    late = snap(OWN, f"{DAY1} 23:59:59", "50000.00", None)
    assert run([*records, late])[1] == []
    # a snapshot before the last transaction does not
    early = snap(OWN, f"{DAY1} 12:00:00", "50000.00", None)
    assert only(run([*records, early])[1]).metrics["closing_balance"] == "5000.00"


def test_without_balances_the_net_flow_stands_in_and_says_so():
    f = only(run(pool(balance=None))[1])  # net inflow 10,000 of 200,000
    assert f.metrics["end_balance_source"] == "net_flow" and f.metrics["closing_balance"] == "10000.00"
    assert f.metrics["end_balance_ratio"] == "0.05000000"
    assert "未报送2026-11-25日终余额，按期间净流入估算" in f.explanation_zh
    assert "stands in for it as an estimate" in f.explanation_en
    assert_private(f)
    assert run(pool(paid_out="17000.00", balance=None))[1] == []  # 85 % out: 15 % stays


def test_unknown_payers_are_investor_like_and_known_other_roles_are_not():
    records = credits(INVESTORS[:10], "10000.00") + credits(STRANGERS[:10], "10000.00", hour=10)
    records += debits(BORROWERS[:5], "19000.00") + debits(STRANGERS[20:25], "19000.00", hour=16)
    f = only(run(records)[1])
    assert f.metrics["distinct_in_investor"] == 10 and f.metrics["distinct_in_unknown"] == 10
    assert f.metrics["distinct_out_borrower"] == 5 and f.metrics["distinct_out_unknown"] == 5
    assert "（其中10个未在参考数据中登记）" in f.explanation_zh
    assert "(10 of them not in the reference data)" in f.explanation_en
    # own, custody, related-party and 'other' payers are not investors
    known = credits(INVESTORS[:19], "10000.00")
    known += credits([OWN_B, CUSTODY, RELATED, PERSON, BORROWER], "10000.00", hour=10)
    known += debits(BORROWERS[:10], "22000.00")
    assert run(known)[1] == []


def test_investors_paid_back_count_in_the_fan_out():
    records = credits(INVESTORS[:20], "10000.00") + debits(INVESTORS[20:30], "19000.00")
    f = only(run(records)[1])
    assert f.metrics["distinct_out_investor"] == 10 and f.metrics["distinct_out"] == 10


def test_payees_with_other_roles_do_not_count_in_the_fan_out():
    records = credits(INVESTORS[:20], "10000.00") + debits(BORROWERS[:9], "19000.00")
    records += debits([OWN_B, RELATED, PERSON, CUSTODY], "5000.00", hour=16)
    assert run(records)[1] == []


def test_related_party_and_other_registered_accounts_are_watched():
    f = only(run(pool(account=RELATED), account=RELATED)[1])
    assert f.extra["account_role"] == "related_party" and "关联方账户****9004" in f.explanation_zh
    assert_private(f)
    g = only(run(pool(account=MANAGED), account=MANAGED)[1])
    assert g.extra["account_role"] == "other" and g.institution_id == "P1"
    assert_private(g)


def test_severity_by_money_passed_through_and_fan_sizes():
    at_high = pool(paid_in="50000.00", paid_out="100000.00", balance="0.00")  # 1,000,000 through
    assert only(run(at_high)[1]).severity == "high"
    just_below = pool(paid_in="50000.00", paid_out="100000.00", balance="0.00")
    just_below[29] = txn(OWN, False, "99999.99", f"{DAY1} 15:09:00", BORROWERS[9])  # 999,999.99 out
    assert only(run(just_below)[1]).severity == "medium"
    huge = pool(paid_in="500000.00", paid_out="1000000.00", balance="0.00")  # 10,000,000 through
    f = only(run(huge)[1])
    assert f.severity == "critical" and f.amount_cents == 1_000_000_000
    wide = pool(n_in=40, n_out=30, paid_in="5000.00", paid_out="6000.00", balance="0.00")  # 2x, 3x
    assert only(run(wide)[1]).severity == "medium"
    ctx = world({"min_distinct_in": 10})  # now 4x and 3x their minimum
    g = only(run(wide, ctx=ctx)[1])
    assert g.severity == "high" and g.thresholds["min_distinct_in"] == 10
    assert 0.0 < only(run(pool())[1]).score < g.score <= 1.0


# -- hard negatives --------------------------------------------------------------------------


def test_custody_and_reserve_accounts_are_not_watched():
    """Many investors in, many borrowers out: that is the custody account's lawful job."""
    assert run(pool(account=CUSTODY), account=CUSTODY) == ({}, [])
    assert run(pool(account=RESERVE), account=RESERVE) == ({}, [])


def test_payroll_fan_out_from_an_own_account_is_no_pool():
    records = [txn(OWN, True, "300000.00", f"{DAY1} 08:00:00", OWN_B, channel="INTERNAL")]
    records += [txn(OWN, True, "20000.00", f"{DAY1} 08:30:00", CUSTODY, instruction="FE-1")]
    records += debits(STRANGERS[:30], "10000.00", hour=10)  # 30 employees, 100 % out
    records.append(snap(OWN, f"{DAY1} 23:30:00", "20000.00", None))
    assert run(records)[1] == []


def test_merchant_settlement_of_a_payment_institution_is_no_pool():
    for account in (SETTLEMENT, OWN_PAY):
        records = [txn(account, True, "3000000.00", f"{DAY1} 08:00:00", RESERVE, instruction="ST-1")]
        records += debits(STRANGERS[:30], "100000.00", account=account)  # 30 merchants
        records.append(snap(account, f"{DAY1} 23:30:00", "0.00", None))
        assert run(records, account=account)[1] == []


def test_many_investors_but_the_money_stays_is_no_pool():
    records = credits(INVESTORS[:30], "10000.00") + debits(BORROWERS[:10], "9000.00")  # 30 % out
    assert run(records)[1] == []
    records.append(snap(OWN, f"{DAY1} 23:30:00", "210000.00", None))
    assert run(records)[1] == []


def test_customers_and_unregistered_accounts_are_not_watched():
    for account in (INVESTORS[0], BORROWERS[0], PERSON, "6217999900000099"):
        assert run(pool(account=account), account=account) == ({}, [])


# -- windows, periods, keys ------------------------------------------------------------------


def test_collected_one_day_and_paid_out_two_days_later_is_one_window():
    records = credits(INVESTORS[:20], "10000.00", day="2026-11-25")
    records += debits(BORROWERS[:10], "19000.00", day="2026-11-27")
    records.append(snap(OWN, "2026-11-27 23:30:00", "10000.00", None))
    latest = fold(det, world(), OWN, [("m1", records)])[1]
    f = latest[f"{OWN}:2026-11-27"]  # the window 11-25..11-27 ends in the period 11-27..11-29
    assert set(latest) == {f"{OWN}:2026-11-27"}
    assert (f.metrics["window_first_day"], f.metrics["window_last_day"]) == ("2026-11-25", "2026-11-27")
    # a day later the collection falls outside the window
    later = records[:20] + debits(BORROWERS[:10], "19000.00", day="2026-11-28")
    assert fold(det, world(), OWN, [("m1", later)])[1] == {}


def test_beijing_day_boundary():
    out = debits(BORROWERS[:10], "19000.00", day="2026-11-27") + [
        snap(OWN, "2026-11-27 23:30:00", "0.00", None)
    ]
    inside = [txn(OWN, True, "10000.00", "2026-11-25 00:00:00", p) for p in INVESTORS[:20]]
    outside = [txn(OWN, True, "10000.00", "2026-11-24 23:59:59", p) for p in INVESTORS[:20]]
    assert only(run(inside + out)[1]).metrics["window_first_day"] == "2026-11-25"
    assert run(outside + out)[1] == []


def test_period_starts_every_window_days_beijing_days():
    assert det.period_start(bj("2026-11-24 00:00:00"), 3) == bj("2026-11-24 00:00:00")
    assert det.period_start(bj("2026-11-26 00:00:00"), 3) == bj("2026-11-24 00:00:00")
    assert det.period_start(bj("2026-11-27 00:00:00"), 3) == bj("2026-11-27 00:00:00")
    assert det.period_start(bj("2026-11-25 00:00:00"), 1) == bj("2026-11-25 00:00:00")


def test_a_pool_going_on_for_days_is_one_alert_per_period():
    ctx = world()
    state = None
    keys = []
    for d in range(24, 30):  # six days: two periods
        state, findings = det.detect(ctx, state, OWN, f"m{d}", pool(day=f"2026-11-{d}"))
        keys.append(only(findings).key)
    assert keys == [f"{OWN}:2026-11-24"] * 3 + [f"{OWN}:2026-11-27"] * 3


def test_repeats_in_a_period_update_one_alert():
    ctx = world()
    state, first = det.detect(ctx, None, OWN, "m1", pool())
    more = credits(INVESTORS[20:25], "10000.00", day="2026-11-26") + debits(
        BORROWERS[10:12], "25000.00", day="2026-11-26"
    )
    state, second = det.detect(ctx, state, OWN, "m2", more)
    assert only(first).alert_id == only(second).alert_id
    f = second[0]
    assert f.metrics["window_last_day"] == "2026-11-26" and f.metrics["distinct_in"] == 25
    # no balance reported on 11-26: the 10,000 of 11-25 and the day's money in and out
    assert f.metrics["distinct_out"] == 12 and f.metrics["end_balance_source"] == "balance_and_flows"
    assert (
        "按此前最近一次余额加其后收支推算" in f.explanation_zh
        and "estimated from the last" in f.explanation_en
    )


def test_the_alert_shows_the_latest_window_that_fires():
    """A later day in the period whose window does not fire leaves the earlier window as the
    finding."""
    ctx = world()
    state, _ = det.detect(ctx, None, OWN, "m1", pool())
    keep = credits(INVESTORS[:1], "500000.00", day="2026-11-26")  # money that stays on 11-26
    state, findings = det.detect(ctx, state, OWN, "m2", keep)
    assert only(findings).metrics["window_last_day"] == DAY1
    assert [f.metrics["window_last_day"] for f in det.current(ctx, state, OWN)] == [DAY1]


def test_window_days_from_the_institution_type_config():
    ctx = world(overrides={"p2p_lending": {"fund_pool": {"window_days": 1}}})
    records = credits(INVESTORS[:20], "10000.00", day="2026-11-25")
    records += debits(BORROWERS[:10], "19000.00", day="2026-11-26")
    assert fold(det, ctx, OWN, [("m1", records)])[1] == {}
    f = only(run(pool(), ctx=ctx)[1])
    assert f.key == f"{OWN}:{DAY1}" and f.thresholds["window_days"] == 1
    assert f"在{DAY1}（1个北京日）" in f.explanation_zh and f.explanation_en.startswith(
        f"On {DAY1} (1 Beijing"
    )


def test_other_currencies_are_ignored():
    records = pool(balance="0.00")
    records += [txn(OWN, True, "1000000.00", f"{DAY1} 12:00:00", INVESTORS[0], currency="USD")]
    assert only(run(records)[1]).metrics["credits"] == "200000.00"


# -- replays, order, lateness, bounds --------------------------------------------------------


def test_replays_change_nothing():
    check_replays_change_nothing(det, world(), OWN, pool())


def test_state_is_not_mutated():
    ctx = world()
    state, _ = det.detect(ctx, None, OWN, "m1", pool())
    snapshot = repr(state)
    det.detect(ctx, state, OWN, "m2", pool(day="2026-11-26"))
    assert repr(state) == snapshot


def _three_days() -> list:
    """Two periods: the window 11-24..11-26 fires on 11-26, the window 11-25..11-27 on 11-27."""
    records = credits(INVESTORS[:15], "10000.00", day="2026-11-25")
    records.append(snap(OWN, "2026-11-25 23:00:00", "150000.00", None))  # nothing paid out yet
    records += credits(STRANGERS[:10], "8000.00", day="2026-11-26")
    records += debits(BORROWERS[:6], "20000.00", day="2026-11-26")
    records += debits(INVESTORS[30:36], "20000.00", day="2026-11-26", hour=16)
    records += credits(INVESTORS[:5], "3000.00", day="2026-11-26", hour=20)  # repeat payers
    records[-1] = msgspec.structs.replace(records[-1], balance_after_cents=4_000_000)  # superseded:
    records.append(snap(OWN, "2026-11-26 23:00:00", "5000.00", None))
    records += pool(n_in=25, n_out=12, day="2026-11-27", balance=None)
    return records


def test_order_and_split_do_not_matter():
    latest = check_order_independent(det, world(), OWN, _three_days())
    assert set(latest) == {f"{OWN}:2026-11-24", f"{OWN}:2026-11-27"}
    first = latest[f"{OWN}:2026-11-24"]
    assert first.metrics["window_last_day"] == "2026-11-26" and first.metrics["distinct_in"] == 25
    assert first.metrics["distinct_out"] == 12 and first.metrics["closing_balance"] == "5000.00"
    second = latest[f"{OWN}:2026-11-27"]
    assert second.metrics["distinct_in"] == 35 and second.metrics["distinct_out"] == 18
    # no balance on 11-27: the 5,000 of 11-26 and the day's net inflow of 22,000
    assert second.metrics["end_balance_source"] == "balance_and_flows"
    assert second.metrics["closing_balance"] == "27000.00"
    assert_private(first)
    assert_private(second)


def test_records_later_than_the_allowed_lateness_are_judged_and_marked_late():
    ctx = world()
    state, _ = det.detect(ctx, None, OWN, "m1", [snap(OWN, "2026-11-30 12:00:00", "0.00", None)])
    assert bj("2026-11-28 00:00:00") + ALLOWED_LATENESS <= state["wm"]
    records = pool(day="2026-11-27")
    later, findings = det.detect(ctx, state, OWN, "m2", records)
    late = only(findings)
    assert late.key == f"{OWN}:2026-11-27" and late.metrics["late"] is True
    assert late.metrics["distinct_in"] == 20 and late.metrics["credits"] == "200000.00"
    on_time = only(det.detect(ctx, state, OWN, "m3", pool(day="2026-11-28"))[1])
    assert on_time.key == f"{OWN}:2026-11-27" and on_time.metrics["late"] is False


def test_state_stays_bounded():
    ctx = world()
    state = None
    for d in range(60):
        records = [
            msgspec.structs.replace(r, record_id=f"d{d}-{i}", booked_at=r.booked_at + d * DAY)
            if hasattr(r, "booked_at")
            else msgspec.structs.replace(r, record_id=f"d{d}-{i}", as_of=r.as_of + d * DAY)
            for i, r in enumerate(pool(day="2026-09-01"))
        ]
        state, findings = det.detect(ctx, state, OWN, f"m{d}", records)
        assert len(findings) == 1
    assert len(state["days"]) <= 3 + 3 + LATE_KEEP // DAY  # and those kept for late records
    assert_no_record_ids(state)
    assert findings[0] in det.current(ctx, state, OWN)


def test_fans_are_capped_per_day_whatever_the_order(monkeypatch):
    monkeypatch.setattr(pool_days, "DISTINCT_CAP", 25)
    records = credits(INVESTORS[:30], "10000.00") + credits(STRANGERS[:10], "10000.00", hour=11)
    records += debits(BORROWERS[:12], "30000.00") + [snap(OWN, f"{DAY1} 23:00:00", "0.00", None)]
    latest = check_order_independent(det, world(), OWN, records, seeds=10)
    f = latest[f"{OWN}:{PERIOD}"]
    assert f.metrics["distinct_in"] == 25 and f.metrics["distinct_in_capped"] is True
    assert f.metrics["distinct_out"] == 12 and f.metrics["distinct_out_capped"] is False
    assert "至少25个投资人账户" in f.explanation_zh and "at least 25 investor account(s)" in f.explanation_en
    state = fold(det, world(), OWN, [("m", records)])[0]
    assert all(len(e["fin"]) <= 25 for e in state["days"].values())


# -- registry and configuration ---------------------------------------------------------------


def test_registered_and_reads_the_shipped_thresholds():
    assert DETECTORS["fund_pool"] is det and det.NAME in TYPOLOGIES
    real = load_thresholds(env={}, path=DEFAULT_FILE)
    assert set(POOL) <= set(real.defaults["fund_pool"])
    assert mask(OWN) == "****2002"


@pytest.mark.parametrize("account", [OWN, RELATED])
def test_explanations_stay_private(account):
    records = pool(account=account)
    records += credits(STRANGERS[:5], "1000.00", account=account, hour=11)
    f = only(run(records, account=account)[1])
    assert_private(f)


# -- windows of one to window_days days --------------------------------------------------------


def test_a_pool_collecting_three_days_and_paying_out_over_two_more_is_found():
    """In over three days, out over the next two: wider than three days, inside a week."""
    records = []
    for n, day in enumerate(("2026-11-23", "2026-11-24", "2026-11-25")):
        records += credits(INVESTORS[7 * n : 7 * n + 7], "10000.00", day=day)
    for n, day in enumerate(("2026-11-26", "2026-11-27")):
        records += debits(BORROWERS[5 * n : 5 * n + 5], "20000.00", day=day)
    records.append(snap(OWN, "2026-11-28 00:00:00", "10000.00", None))  # the day-end snapshot
    assert fold(det, world(), OWN, [("m1", records)])[1] == {}  # three-day windows see half of it
    latest = fold(det, world({"window_days": 7}), OWN, [("m1", records)])[1]
    f = only(list(latest.values()))
    assert (f.metrics["window_first_day"], f.metrics["window_last_day"]) == ("2026-11-23", "2026-11-27")
    assert (
        f.metrics["window_days"] == 5 and f.metrics["distinct_in"] == 21 and f.metrics["distinct_out"] == 10
    )
    assert f.metrics["end_balance_source"] == "balance" and f.metrics["closing_balance"] == "10000.00"
    assert f.key == f"{OWN}:{beijing_date(det.period_start(bj('2026-11-27 00:00:00'), 7))}"
    # day by day, as a bank sends it, the same finding
    by_day = [(f"d{i}", [r]) for i, r in enumerate(records)]
    assert fold(det, world({"window_days": 7}), OWN, by_day)[1] == latest


def test_the_longest_window_that_fires_is_reported_and_shorter_ones_still_fire():
    ctx = world({"window_days": 7})
    f = only(run(pool(), ctx=ctx)[1])  # all on one day: every window holds it, shown as that day
    assert (
        f.metrics["window_days"] == 1
        and f.metrics["window_first_day"] == f.metrics["window_last_day"] == DAY1
    )
    # money that stayed four days before does not hide a pool that passed through in one day
    stayed = credits(STRANGERS[:30], "100000.00", day="2026-11-21")
    g = only(run(stayed + pool(), ctx=ctx)[1])
    assert g.metrics["window_first_day"] == DAY1 and g.metrics["credits"] == "200000.00"


def test_a_midnight_snapshot_closes_the_day_before():
    records = pool(balance=None) + [snap(OWN, "2026-11-26 00:00:00", "10000.00", None)]
    f = only(run(records)[1])
    assert f.metrics["end_balance_source"] == "balance" and f.metrics["window_last_day"] == DAY1
    # a snapshot at the start of the day closes the day before: the day ends with it and the
    # day's flows, 900,000 + 10,000, which stayed: no pool
    opening = pool(balance=None) + [snap(OWN, f"{DAY1} 00:00:00", "900000.00", None)]
    assert run(opening)[1] == []
    emptied = pool(balance=None) + [snap(OWN, f"{DAY1} 00:00:00", "0.00", None)]
    g = only(run(emptied)[1])
    assert (
        g.metrics["end_balance_source"] == "balance_and_flows" and g.metrics["closing_balance"] == "10000.00"
    )


def test_payroll_and_expenses_over_a_week_are_no_pool():
    """An own account paying staff and suppliers all week, fed by the institution's own accounts
    and a few customers: no investors in, so no pool, however wide the window."""
    ctx = world({"window_days": 7})
    records = []
    for d in range(20, 27):
        day = f"2026-11-{d}"
        records += credits(STRANGERS[d - 20 : d - 18], "3000.00", day=day)  # a few customers a day
        records += [txn(OWN, True, "50000.00", f"{day} 08:00:00", CUSTODY)]  # fees from custody
        records += debits(STRANGERS[10 + (d - 20) * 3 : 13 + (d - 20) * 3], "15000.00", day=day)
    assert fold(det, ctx, OWN, [("m1", records)])[1] == {}
