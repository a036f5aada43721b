"""models/detectors/investor_cap_breach.py: a product sold to more investors than allowed."""

from __future__ import annotations

import msgspec
import pytest

from models import institution_detection
from models.detectors import investor_cap_breach as det
from models.detectors.common import ALLOWED_LATENESS
from models.detectors.context import DetectContext
from models.findings import TYPOLOGIES, alert_id_for
from models.institution_detection import step_institution
from models.thresholds import DEFAULT_FILE, Thresholds, load_thresholds
from tests.unit.test_detectors_common import (
    AM_CUSTODY,
    BORROWER,
    CUSTODY,
    INVESTOR_P2,
    PERSON,
    PRODUCTS,
    RELATED,
    TEST_THRESHOLDS,
    assert_no_record_ids,
    bj,
    check_order_independent,
    check_replays_change_nothing,
    references,
)
from tests.unit.test_detectors_excess_return import DAY1, assert_safe, only, product, ptxn

# -- a world with many investors ---------------------------------------------------------------

INVESTORS = tuple(f"6217000500{i:06d}" for i in range(30))  # role investor of AM
STRANGERS = tuple(f"6217999700{i:06d}" for i in range(300))  # unknown to the reference data
AM_OWN = "6222040100002099"  # AM's own operating account
AM_BORROWER = "6217000600000001"  # a project company AM invests in
PATCH = {
    **{
        a: {"role": "investor", "institution_id": "AM", "holder_name": f"投资人{i}号"}
        for i, a in enumerate(INVESTORS)
    },
    AM_OWN: {"role": "own_operating", "institution_id": "AM", "holder_name": "吉林嘉润资产管理有限公司"},
    AM_BORROWER: {"role": "borrower", "institution_id": "AM", "holder_name": "长春宏远建设有限公司"},
}
NAMES = [fields["holder_name"] for fields in PATCH.values()]

ICB = {"default_cap": 200, "uncapped_types": ["p2p_lending", "payment"], "high_multiple": "1.5",
       "critical_multiple": "3"}  # fmt: skip


def world(*products: dict, icb: dict | None = None, overrides: dict | None = None) -> DetectContext:
    defaults = {**TEST_THRESHOLDS.defaults, "investor_cap_breach": {**ICB, **(icb or {})}}
    thresholds = Thresholds(
        TEST_THRESHOLDS.version, defaults, {**TEST_THRESHOLDS.overrides, **(overrides or {})}
    )
    return DetectContext(references(PATCH, [*PRODUCTS, *products]), thresholds)


def private(pid: str = "PRD-AM-C4", cap: int | None = 4, institution: str = "AM") -> dict:
    return product(pid, "0.065", "0.085", 180, 180, institution=institution, cap=cap)


def pay(
    investor: str,
    minute: int,
    amount: str = "100000.00",
    pid: str = "PRD-AM-C4",
    account: str = AM_CUSTODY,
    **kw,
):
    """A subscription on DAY1 at 09:00 plus ``minute`` minutes."""
    when = f"{DAY1} {9 + minute // 60:02d}:{minute % 60:02d}:00"
    return ptxn(pid, account, True, amount, when, investor, **kw)


def investors(
    n: int, pid: str = "PRD-AM-C4", who=INVESTORS, amount: str = "100000.00", account: str = AM_CUSTODY
):
    return [pay(who[i], i, amount, pid, account) for i in range(n)]


def run(ctx, records, state=None, msg="m1", institution="AM"):
    return det.detect(ctx, state, institution, msg, records)


def assert_private(finding) -> None:
    assert_safe(finding)
    for text in (finding.explanation_zh, finding.explanation_en):
        for name in NAMES:
            assert name not in text
        for account in (*INVESTORS, *STRANGERS, AM_OWN, AM_BORROWER):
            assert account not in text


# -- the rule --------------------------------------------------------------------------------


def test_one_investor_over_the_cap_is_medium():
    ctx = world(private())
    records = investors(5)
    state, findings = run(ctx, records)
    f = only(findings)
    assert f.typology == "investor_cap_breach" and f.key == "product:PRD-AM-C4"
    assert f.alert_id == alert_id_for("investor_cap_breach", "product:PRD-AM-C4")
    assert f.rule == "二(四)" and f.detector_version == "investor_cap_breach/1"
    assert f.institution_id == "AM" and f.severity == "medium" and f.accounts == (AM_CUSTODY,)
    assert f.amount_cents == 50_000_000  # everything the investors paid in
    assert f.window_start == bj(f"{DAY1} 09:00:00")  # the first payment
    assert f.window_end == bj(f"{DAY1} 09:04:00")  # investor number 5 passed the cap of 4
    assert f.record_ids == (records[4].record_id,)  # the payment of the investor beyond the cap
    assert f.metrics == {
        "product_id": "PRD-AM-C4",
        "investor_cap": 4,
        "cap_source": "product",
        "institution_type": "asset_management",
        "distinct_investors": 5,
        "distinct_investors_at_least": False,
        "distinct_investors_unknown": 0,
        "investors_over_cap": 1,
        "investors_to_cap": "1.2500",
        "payments": 5,
        "paid_in": "500000.00",
        "first_payment_at": f"{DAY1} 09:00:00",
        "cap_exceeded_at": f"{DAY1} 09:04:00",
        "late": False,
    }
    assert f.thresholds["default_cap"] == 200 and f.thresholds["config_version"] == "test-1"
    assert f.explanation_zh == (
        "产品PRD-AM-C4自2026-11-25起由5个不同的投资人账户认购，经客户资金账户****1015入账5笔、合计"
        "500,000.00 元；产品登记的投资人数上限为4人，第5个投资人于2026-11-25 09:04:00入账时即已突破，"
        "现超出1人，为上限的125.00%。涉嫌向特定对象销售但突破法定人数限制（《方案》二(四)）。"
    )
    assert f.explanation_en == (
        "Since 2026-11-25 5 distinct investor account(s) have paid into product PRD-AM-C4 through the "
        "customer-fund account(s) ****1015, 5 payment(s) totalling CNY 500,000.00; its registered investor "
        "cap is 4, passed when investor number 5 paid at 2026-11-25 09:04:00, and the product is now 1 over "
        "it, 125.00% of it. Suspected sale beyond the legal limit on the number of investors (rectification "
        "plan §2(4))."
    )
    assert_private(f)
    assert len(state["products"]["PRD-AM-C4"]["inv"]) == 5


def test_a_private_product_at_exactly_its_cap_is_no_finding():
    """Hard negative: 4 investors for a cap of 4, paying again and again."""
    ctx = world(private())
    records = investors(4) + [pay(INVESTORS[i], 100 + i, "5000.00") for i in range(4)]
    state, findings = run(ctx, records)
    assert findings == [] and len(state["products"]["PRD-AM-C4"]["inv"]) == 4


@pytest.mark.parametrize(("count", "severity"), [(5, "medium"), (6, "high"), (11, "high"), (12, "critical")])
def test_severity_at_1_5_and_3_times_the_cap(count, severity):
    f = only(run(world(private()), investors(count))[1])
    assert f.severity == severity and f.metrics["investors_over_cap"] == count - 4
    assert f.score == min(1.0, round((count - 4) / 8, 4))


def test_who_counts_as_an_investor():
    ctx = world(private())
    records = investors(3)
    not_investors = [
        pay(AM_BORROWER, 10),  # a borrower paying back
        pay(BORROWER, 11),  # another institution's borrower
        pay(AM_OWN, 12),  # the institution's own money
        pay(AM_CUSTODY, 13),  # the account itself
        ptxn("PRD-AM-C4", AM_CUSTODY, False, "1000.00", f"{DAY1} 10:16:00", STRANGERS[0]),  # a debit
        pay(STRANGERS[1], 17, pid=None),  # no product
        pay(STRANGERS[2], 18, pid="PRD-AM-180"),  # another product
        pay(STRANGERS[3], 19, account=AM_OWN),  # paid to an own account, not custody
        pay(STRANGERS[4], 20, currency="USD"),  # another currency
    ]
    assert run(ctx, [*records, *not_investors])[1] == []
    # every other subscriber counts: unknown, another platform's investor, a related party of
    # another institution, an account with role other, another institution's own account
    counted = [
        pay(STRANGERS[5], 30),
        pay(INVESTOR_P2, 31),
        pay(RELATED, 32),
        pay(PERSON, 33),
        pay(CUSTODY, 34),
    ]
    f = only(run(ctx, [*records, *not_investors, *counted])[1])
    assert f.metrics["distinct_investors"] == 8 and f.metrics["distinct_investors_unknown"] == 1
    assert "（其中1个未在参考数据中登记）" in f.explanation_zh
    assert " (1 of them not in the reference data)" in f.explanation_en
    assert f.metrics["paid_in"] == "800000.00"  # only the investors' payments
    assert f.severity == "high"  # 8 >= 1.5 x 4
    assert_private(f)


def test_products_without_a_cap_take_the_default_cap():
    ctx = world(private("PRD-AM-D", cap=None))
    assert run(ctx, investors(200, "PRD-AM-D", STRANGERS))[1] == []
    f = only(run(ctx, investors(201, "PRD-AM-D", STRANGERS))[1])
    assert f.metrics["investor_cap"] == 200 and f.metrics["cap_source"] == "default"
    assert f.metrics["distinct_investors_unknown"] == 201 and f.severity == "medium"
    assert "默认投资人数上限为200人，第201个投资人" in f.explanation_zh
    assert "the default investor cap is 200, passed when investor number 201 paid" in f.explanation_en
    g = only(
        run(
            world(private("PRD-AM-D", cap=None), icb={"default_cap": 100}),
            investors(201, "PRD-AM-D", STRANGERS),
        )[1]
    )
    assert g.severity == "high" and g.thresholds["default_cap"] == 100  # 2.01 x the cap


def test_a_public_p2p_product_with_more_than_200_investors_is_no_finding():
    """Hard negative: public lending products have no investor cap."""
    ctx = world(private("PRD-P1-PUB", cap=None, institution="P1"))
    records = investors(250, "PRD-P1-PUB", STRANGERS, account=CUSTODY)
    state, findings = run(ctx, records, institution="P1")
    assert findings == [] and state["products"] == {}  # not even watched
    # a P2P product that registers a cap is watched
    capped = world(private("PRD-P1-PUB", cap=240, institution="P1"))
    assert only(run(capped, records, institution="P1")[1]).metrics["investor_cap"] == 240
    # uncapped types are configuration (an environment override gives a comma-separated string)
    ctx = world(private("PRD-P1-PUB", cap=None, institution="P1"), icb={"uncapped_types": "payment"})
    assert only(run(ctx, records, institution="P1")[1]).metrics["cap_source"] == "default"


def test_uncapped_types_per_institution_type():
    overrides = {"asset_management": {"investor_cap_breach": {"uncapped_types": ["asset_management"]}}}
    ctx = world(private("PRD-AM-D", cap=None), overrides=overrides)
    assert run(ctx, investors(201, "PRD-AM-D", STRANGERS))[1] == []


# -- windows and evidence ----------------------------------------------------------------------


def test_the_window_ends_when_the_cap_was_first_passed_and_stays_there():
    ctx = world(private())
    state, first = run(ctx, investors(5))
    more = [pay(INVESTORS[i], 100 + i) for i in range(5, 9)]
    state, second = run(ctx, more, state, "m2")
    assert only(first).window_end == only(second).window_end == bj(f"{DAY1} 09:04:00")
    assert second[0].metrics["distinct_investors"] == 9 and second[0].severity == "high"
    # an earlier first payment of a new investor (within the lateness) moves it to the set's answer
    early = pay(INVESTORS[20], -30)  # 08:30
    state, third = run(ctx, [early], state, "m3")
    assert third[0].window_start == bj(f"{DAY1} 08:30:00") and third[0].window_end == bj(f"{DAY1} 09:03:00")


def test_an_investor_is_ranked_by_the_first_payment():
    ctx = world(private())
    records = investors(5)
    again = pay(INVESTORS[4], -60, "1.00")  # investor 5 had paid at 08:00 already
    f = only(run(ctx, [*records, again])[1])
    assert f.window_start == bj(f"{DAY1} 08:00:00")
    assert f.window_end == bj(f"{DAY1} 09:03:00")  # now investor 4 is the fifth
    assert f.record_ids == (records[3].record_id,) and f.metrics["payments"] == 6


def test_evidence_is_the_largest_payments_beyond_the_cap(monkeypatch):
    monkeypatch.setattr(det, "TOP_N", 3)
    amounts = ["100.00", "900.00", "300.00", "900.00", "50.00", "700.00", "800.00", "10.00"]
    records = [pay(INVESTORS[i], i, a) for i, a in enumerate(amounts)]
    f = only(run(world(private()), records)[1])
    # beyond the cap of 4: investors 5..8 with 50, 700, 800, 10: the largest three, in time order
    assert f.record_ids == tuple(r.record_id for r in (records[4], records[5], records[6]))


def test_order_and_split_do_not_matter():
    records = investors(9) + [pay(INVESTORS[i], 200 + i, "30.00") for i in range(3)]
    records += investors(3, "PRD-AM-C2", STRANGERS[20:])
    ctx = world(private(), private("PRD-AM-C2", cap=2))
    latest = check_order_independent(det, ctx, "AM", records)
    assert set(latest) == {"product:PRD-AM-C4", "product:PRD-AM-C2"}
    f = latest["product:PRD-AM-C4"]
    assert f.metrics["distinct_investors"] == 9 and f.metrics["payments"] == 12 and f.severity == "high"
    assert f.window_end == bj(f"{DAY1} 09:04:00") and len(f.record_ids) == 5
    for finding in latest.values():
        assert_private(finding)


def test_beyond_the_bound_the_count_is_at_least_the_bound_whatever_the_order(monkeypatch):
    monkeypatch.setattr(det, "BOUND_MULTIPLE", 2)
    monkeypatch.setattr(det, "BOUND_EXTRA", 0)
    ctx = world(private("PRD-AM-C3", cap=3))
    records = investors(10, "PRD-AM-C3")
    latest = check_order_independent(det, ctx, "AM", records, seeds=10)
    f = latest["product:PRD-AM-C3"]
    assert f.metrics["distinct_investors"] == 6 and f.metrics["distinct_investors_at_least"] is True
    assert f.metrics["investors_over_cap"] == 3 and f.metrics["payments"] == 10  # the money stays exact
    assert f.severity == "high"  # 6 >= 1.5 x 3: the bound only ever understates
    assert "由至少6个不同的投资人账户" in f.explanation_zh and "现超出至少3人" in f.explanation_zh
    assert (
        "Since 2026-11-25 at least 6 distinct" in f.explanation_en
        and "now at least 3 over" in f.explanation_en
    )
    state = run(ctx, records)[0]
    assert sorted(state["products"]["PRD-AM-C3"]["inv"]) == sorted(INVESTORS[:6])  # the first six


# -- reviews, replays, re-emission -------------------------------------------------------------


def test_a_review_after_the_cap_was_lowered_gives_the_finding():
    state, findings = run(world(private()), investors(4))
    assert findings == []
    again, review = run(world(private(cap=3)), [], state, "review/1")
    assert again == state and only(review).metrics["investor_cap"] == 3
    assert run(world(private()), [], None, "review/2") == ({}, [])  # nothing seen: nothing to say


def test_replays_change_nothing():
    check_replays_change_nothing(det, world(private()), "AM", investors(6))


def test_a_second_call_with_no_new_data_re_emits_equal_findings():
    ctx = world(private())
    state, first = run(ctx, investors(6))
    assert run(ctx, [], state, "review/3")[1] == first
    assert run(ctx, [pay(STRANGERS[0], 0, pid="PRD-AM-180")], state, "m2")[1] == first
    assert det.current(ctx, state, "AM") == first


def test_the_alert_is_created_once_and_not_updated_by_repeats(monkeypatch):
    monkeypatch.setattr(institution_detection, "INSTITUTION_DETECTORS", {det.NAME: det})
    ctx = world(private())
    state, changed = step_institution(ctx, None, "AM", "m1", investors(5), at=1)
    assert [kind for kind, _ in changed] == ["created"]
    assert step_institution(ctx, state, "AM", "review/1", [], at=2)[1] == []
    state, changed = step_institution(ctx, state, "AM", "m2", [pay(INVESTORS[9], 50)], at=3)
    assert [kind for kind, _ in changed] == ["updated"]  # one more investor: new figures


def test_records_later_than_the_allowed_lateness_are_judged_and_marked_late():
    ctx = world(private())
    late = ptxn("PRD-AM-180", AM_CUSTODY, True, "1.00", "2026-11-30 12:00:00", STRANGERS[0])
    state, _ = run(ctx, [late])
    assert bj("2026-11-28 00:00:00") + ALLOWED_LATENESS <= state["wm"]
    f = only(run(ctx, investors(5), state, "m2")[1])
    assert f.metrics["distinct_investors"] == 5 and f.metrics["late"] is True


def test_payments_without_a_product_count_where_the_reference_data_places_them():
    untagged = [msgspec.structs.replace(r, product_id=None) for r in investors(5)]
    # the institution's only product
    others = [p for p in PRODUCTS if p["institution_id"] != "AM"]
    single = DetectContext(references(PATCH, [*others, private()]), world().thresholds)
    assert only(run(single, untagged)[1]).metrics["distinct_investors"] == 5
    # two products and nothing to tell them apart: no product's count, never a breach read from it
    assert run(world(private()), untagged)[1] == []


def test_state_is_json_and_not_mutated_and_keeps_no_record_ids():
    ctx = world(private())
    state, _ = run(ctx, investors(6))
    assert msgspec.json.decode(msgspec.json.encode(state)) == state
    snapshot = repr(state)
    later = ptxn("PRD-AM-180", AM_CUSTODY, True, "1.00", "2026-12-10 12:00:00", STRANGERS[0])
    newer, findings = run(ctx, [later], state, "m2")
    assert repr(state) == snapshot
    assert len(newer["products"]["PRD-AM-C4"]["inv"]) == 6
    assert_no_record_ids(newer)
    assert only(findings).metrics["distinct_investors"] == 6


def test_module_contract_and_the_shipped_thresholds():
    assert det.NAME in TYPOLOGIES and det.SCOPE == "institution" and det.VERSION == "1"
    real = load_thresholds(env={}, path=DEFAULT_FILE)
    assert set(det.DEFAULTS) <= set(real.defaults["investor_cap_breach"])
    assert set(real.get("investor_cap_breach")["uncapped_types"]) == {"p2p_lending", "payment"}
    # investors kept per product: enough to reach the critical multiple (3) exactly
    assert det.bound(200) == 1200 and det.bound(1000) == 3000 and det.bound(1) == 1001
