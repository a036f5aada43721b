"""models/detectors/maturity_mismatch.py: short products for long projects, and earlier investors
paid with later investors' money."""

from __future__ import annotations

import msgspec
import pytest

from models import institution_detection
from models.detectors import excess_return
from models.detectors import maturity_mismatch as det
from models.detectors.common import ALLOWED_LATENESS
from models.findings import TYPOLOGIES, alert_id_for
from models.institution_detection import step_institution
from models.thresholds import DEFAULT_FILE, load_thresholds
from models.windows import DAY
from tests.unit.test_detectors_common import (
    BORROWER,
    CUSTODY,
    INVESTOR_FREE,
    OWN,
    assert_no_record_ids,
    bj,
    check_order_independent,
    check_replays_change_nothing,
)
from tests.unit.test_detectors_excess_return import (
    DAY1,
    assert_safe,
    only,
    payout,
    product,
    ptxn,
    repayment,
    subscription,
    world,
)

SALE_TS = bj("2026-06-01 09:00:00")


def split(pid: str = "PRD-P1-M", term: int = 30, underlying: int | None = 360, **kw) -> dict:
    return product(pid, term=term, underlying=underlying, **kw)


def run(ctx, records, state=None, msg="m1"):
    return det.detect(ctx, state, "P1", msg, records)


def rollover(pid: str = "PRD-P1-M", paid: str = "100000.00", repaid: str = "99999.99") -> list:
    return [repayment(pid, repaid, "2026-11-20 09:00:00"), payout(pid, paid, f"{DAY1} 10:00:00")]


# -- 1. the split term -----------------------------------------------------------------------


def test_a_split_term_is_a_finding_from_the_reference_data_alone():
    state, findings = run(world(split(term=179)), [])
    f = only(findings)
    assert f.typology == "maturity_mismatch" and f.key == "product:PRD-P1-M"
    assert f.alert_id == alert_id_for("maturity_mismatch", "product:PRD-P1-M")
    assert f.rule == "二(一)" and f.detector_version == "maturity_mismatch/1"
    assert f.institution_id == "P1" and f.severity == "medium"  # 0.497 >= 0.25
    assert f.accounts == () and f.record_ids == () and f.amount_cents == 0
    assert f.window_start == f.window_end == SALE_TS
    assert f.metrics["signals"] == ["term_split"] and f.metrics["rollover"] is False
    assert f.metrics["term_days"] == 179 and f.metrics["underlying_term_days"] == 360
    assert f.metrics["term_ratio"] == "0.497222" and f.metrics["terms_per_project"] == 3
    assert "investor_inflow" not in f.metrics
    assert f.thresholds["term_ratio_max"] == "0.5" and f.thresholds["config_version"] == "test-1"
    assert 0.0 < f.score < 0.01
    assert f.explanation_zh == (
        "产品PRD-P1-M期限179天，而其底层项目期限360天，产品期限仅为项目期限的49.72%（阈值50.00%），"
        "一个项目需由约3期产品接续募集。涉嫌期限错配、期限分拆（《方案》二(一)）。"
    )
    assert f.explanation_en == (
        "Product PRD-P1-M runs for 179 days while its underlying project runs for 360 days, 49.72% of it "
        "(line 50.00%), so about 3 successive issues of the product fund one project. Suspected maturity "
        "mismatch and term splitting (rectification plan §2(1))."
    )
    assert_safe(f)
    assert state == {}


def test_the_term_ratio_at_the_line_and_at_half_of_it():
    assert run(world(split(term=180)), [])[1] == []  # 0.5: not below the line
    assert run(world(split(term=181)), [])[1] == []
    assert only(run(world(split(term=90)), [])[1]).severity == "medium"  # 0.25 = half the line
    f = only(run(world(split(term=89)), [])[1])
    assert f.severity == "high" and f.metrics["term_ratio"] == "0.247222"
    assert only(run(world(split(term=30)), [])[1]).score > f.score
    # the line is configuration
    assert run(world(split(term=179), mm={"term_ratio_max": "0.4"}), [])[1] == []
    g = only(run(world(split(term=140), mm={"term_ratio_max": "0.4"}), [])[1])
    assert g.thresholds["term_ratio_max"] == "0.4" and g.severity == "medium"


def test_a_term_equal_to_the_underlying_term_is_no_finding_whatever_the_payouts():
    """Hard negative: the product matches its project; uncovered payouts are excess_return's."""
    ctx = world(split(term=360))
    records = rollover(paid="300000.00", repaid="0.01")
    assert run(ctx, records)[1] == []
    assert only(excess_return.detect(ctx, None, "P1", "m1", records)[1]).metrics["signals"] == [
        "payout_coverage"
    ]


def test_unknown_terms_are_no_finding():
    assert run(world(split(underlying=None)), [])[1] == []
    assert run(world(product("PRD-P1-M", term=30, underlying=360, sale=None)), [])[1] == []  # no place yet


# -- 2. rollover -----------------------------------------------------------------------------


def test_rollover_adds_a_level_the_uncovered_payouts_and_the_investor_inflow():
    ctx = world(split())
    records = rollover()
    records += [subscription(None, "300000.00", f"2026-11-2{d} 08:00:00") for d in (0, 3, 5)]
    state, findings = run(ctx, records)
    f = only(findings)
    assert f.metrics["signals"] == ["term_split", "rollover"] and f.metrics["rollover"] is True
    assert f.severity == "critical"  # high (0.083 < 0.25), one level up
    assert f.amount_cents == 1 and f.accounts == (CUSTODY,)
    assert set(f.record_ids) == {r.record_id for r in records[:2]}
    assert f.window_start == SALE_TS and f.window_end == bj(f"{DAY1} 10:00:00")
    assert f.metrics["payouts"] == "100000.00" and f.metrics["repayments"] == "99999.99"
    assert f.metrics["payout_coverage"] == "0.99999990" and f.metrics["uncovered_payouts"] == "0.01"
    assert f.metrics["investor_inflow"] == "900000.00" and f.metrics["investor_inflow_count"] == 3
    assert (f.metrics["inflow_first_day"], f.metrics["inflow_last_day"]) == ("2026-11-20", DAY1)
    assert "客户资金账户****1001已按指令向该产品投资人兑付1笔、合计100,000.00 元" in f.explanation_zh
    assert "2026-11-20至2026-11-25该机构存管账户共收到投资人资金3笔、合计900,000.00 元" in f.explanation_zh
    assert (
        "疑似以后期投资人资金兑付前期投资人。涉嫌期限错配、期限分拆（《方案》二(一)）。" in f.explanation_zh
    )
    assert (
        "from 2026-11-20 to 2026-11-25 the institution's custody accounts took in 3 investor payment(s)"
        in (f.explanation_en)
    )
    assert_safe(f)
    # a medium split goes to high
    assert only(run(world(split(term=179)), records)[1]).severity == "high"
    # excess_return leaves the split product's uncovered payouts alone: one alert, not two
    assert excess_return.detect(ctx, None, "P1", "m1", records)[1] == []


def test_rollover_needs_coverage_below_the_minimum():
    ctx = world(split())
    f = only(run(ctx, rollover(repaid="100000.00"))[1])  # coverage exactly 1
    assert f.metrics["rollover"] is False and f.severity == "high" and f.amount_cents == 0
    assert f.window_end == SALE_TS and f.metrics["payout_coverage"] == "1.00000000"
    assert "investor_inflow" not in f.metrics and f.record_ids == ()
    g = only(run(world(split(), mm={"payout_coverage_min": "1.1"}), rollover(repaid="100000.00"))[1])
    assert g.metrics["rollover"] is True


def test_rollover_needs_min_payout():
    ctx = world(split())
    assert only(run(ctx, rollover(paid="99999.99", repaid="0.00"))[1]).metrics["rollover"] is False
    assert only(run(ctx, rollover(paid="100000.00", repaid="0.00"))[1]).metrics["rollover"] is True
    assert only(
        run(world(split(), mm={"min_payout": "50000.00"}), rollover(paid="99999.99", repaid="0.00"))[1]
    ).metrics["rollover"]


def test_the_inflow_counts_investor_credits_on_custody_accounts_over_the_payout_period():
    ctx = world(split())
    records = rollover()
    inside = [
        subscription(None, "1000.00", "2026-11-20 00:00:00"),  # the period's first Beijing day
        subscription("PRD-P1-090", "2000.00", "2026-11-23 12:00:00"),  # another product: counts
        subscription(None, "4000.00", f"{DAY1} 23:59:59", investor=INVESTOR_FREE),  # an investor of nobody
    ]
    outside = [
        subscription(None, "10000.00", "2026-11-19 23:59:59"),  # before the period
        subscription(None, "20000.00", "2026-11-26 00:00:00"),  # after the latest payout
        # not an investor (a repayment of another product: one without a product would be a
        # repayment the split product cannot be told apart from)
        subscription("PRD-P1-090", "40000.00", "2026-11-23 12:00:00", investor=BORROWER),
        subscription(None, "80000.00", "2026-11-23 12:00:00", account=OWN),  # not a custody account
    ]
    f = only(run(ctx, [*records, *inside, *outside])[1])
    assert f.metrics["investor_inflow"] == "7000.00" and f.metrics["investor_inflow_count"] == 3
    # at most the last inflow_days days of the period
    g = only(run(world(split(), mm={"inflow_days": 3}), [*records, *inside, *outside])[1])
    assert (g.metrics["inflow_first_day"], g.metrics["inflow_last_day"]) == ("2026-11-23", DAY1)
    assert g.metrics["investor_inflow"] == "6000.00"
    assert g.thresholds["inflow_days"] == 3


def test_one_day_of_inflow_is_named_as_one_day():
    records = [repayment("PRD-P1-M", "1.00", f"{DAY1} 08:00:00"), payout("PRD-P1-M", "100000.00")]
    f = only(run(world(split()), records)[1])
    assert "；2026-11-25该机构存管账户共收到投资人资金0笔" in f.explanation_zh
    assert "while on 2026-11-25 the institution's custody accounts" in f.explanation_en


# -- reviews, replays, re-emission, order ----------------------------------------------------


def test_a_review_gives_the_split_of_a_product_changed_since():
    ctx = world(split(term=360))
    state, findings = run(ctx, [subscription("PRD-P1-M", "1000.00")])
    assert findings == []
    again, review = run(world(split(term=60)), [], state, "review/1")
    assert again == state and only(review).metrics["term_ratio"] == "0.166667"


def test_replays_change_nothing():
    records = [*rollover(), subscription(None, "5000.00", "2026-11-22 10:00:00")]
    check_replays_change_nothing(det, world(split()), "P1", records)


def test_a_second_call_with_no_new_data_re_emits_equal_findings():
    ctx = world(split(), split("PRD-P1-N", term=60))
    state, first = run(ctx, rollover())
    assert len(first) == 2
    assert run(ctx, [], state, "review/2")[1] == first
    assert run(ctx, [subscription("PRD-P1-090", "1.00", "2026-11-27 10:00:00")], state, "m3")[1] == first
    assert det.current(ctx, state, "P1") == first


def test_the_alert_is_created_once_and_not_updated_by_repeats(monkeypatch):
    monkeypatch.setattr(institution_detection, "INSTITUTION_DETECTORS", {det.NAME: det})
    ctx = world(split())
    state, changed = step_institution(ctx, None, "P1", "m1", rollover(), at=1)
    assert [kind for kind, _ in changed] == ["created"]
    assert step_institution(ctx, state, "P1", "review/1", [], at=2)[1] == []
    later = subscription("PRD-P1-090", "5.00", "2026-11-26 10:00:00")  # after the period
    assert step_institution(ctx, state, "P1", "m2", [later], at=3)[1] == []
    # an investor payment within the period changes the inflow figure: an update, once
    within = subscription("PRD-P1-090", "5.00", "2026-11-24 10:00:00")
    state, changed = step_institution(ctx, state, "P1", "m3", [within], at=4)
    assert [kind for kind, _ in changed] == ["updated"]
    assert step_institution(ctx, state, "P1", "m3", [within], at=5)[1] == []


def _two_days() -> list:
    records = [repayment("PRD-P1-M", "30000.00", f"{DAY1} 0{h}:00:00") for h in range(1, 4)]
    records += [
        payout("PRD-P1-M", "50000.00", f"2026-11-26 1{h}:00:00", instruction=f"PO-{h}") for h in range(3)
    ]
    records += [
        subscription(None, "20000.00", f"{d} 08:{m:02d}:00") for d in (DAY1, "2026-11-26") for m in range(4)
    ]
    records += [subscription("PRD-P1-N", "100.00", "2026-11-26 07:00:00")]
    return records


def test_order_and_split_do_not_matter():
    ctx = world(split(), split("PRD-P1-N", term=170, sale=None))
    latest = check_order_independent(det, ctx, "P1", _two_days())
    assert set(latest) == {"product:PRD-P1-M", "product:PRD-P1-N"}
    m = latest["product:PRD-P1-M"]
    assert m.metrics["payouts"] == "150000.00" and m.metrics["repayments"] == "90000.00"
    assert m.metrics["investor_inflow"] == "160100.00" and m.amount_cents == 6_000_000  # with N's 100
    assert m.window_end == bj("2026-11-26 12:00:00") and m.severity == "critical"
    n = latest["product:PRD-P1-N"]
    assert n.window_start == n.window_end == bj("2026-11-26 07:00:00") and n.severity == "medium"
    for f in latest.values():
        assert_safe(f)


# -- lateness and bounds ---------------------------------------------------------------------


def test_records_later_than_the_allowed_lateness_are_judged_and_marked_late():
    ctx = world(split())
    state, _ = run(ctx, [subscription("PRD-P1-090", "1.00", "2026-11-30 12:00:00")])
    assert bj("2026-11-28 00:00:00") + ALLOWED_LATENESS <= state["wm"]
    f = only(run(ctx, rollover(), state, "m2")[1])
    assert f.metrics["rollover"] is True and f.metrics["payouts"] == "100000.00"
    assert f.metrics["late"] is True and f.metrics["coverage_basis"] == "product"


def test_an_untagged_repayment_leaves_the_rollover_to_what_can_be_told():
    records = [
        repayment(None, "150000.00", "2026-11-20 09:00:00"),
        payout("PRD-P1-M", "100000.00", f"{DAY1} 10:00:00"),
    ]
    f = only(run(world(split()), records)[1])
    # it may be the split product's, and then covers its payouts: the split alone
    assert f.metrics["rollover"] is False and f.metrics["coverage_basis"] == "institution"
    assert f.metrics["unattributed_repayments"] == "150000.00"
    # its borrower borrowed from another product only: the split product had no repayment
    loan = ptxn(
        "PRD-P1-090", CUSTODY, False, "200000.00", "2026-11-19 09:00:00", BORROWER, instruction="LN-1"
    )
    g = only(run(world(split()), [loan, *records])[1])
    assert g.metrics["rollover"] is True and g.metrics["repayments"] == "0.00"
    assert g.metrics["coverage_basis"] == "product" and g.metrics["unattributed_repayments"] == "0.00"
    # less than the payouts, it cannot cover them whoever's it is: short for certain
    h = only(run(world(split()), [repayment(None, "99999.99", "2026-11-20 09:00:00"), records[1]])[1])
    assert h.metrics["rollover"] is True and h.metrics["coverage_basis"] == "product"


def _daily_inflow(day_number: int) -> list:
    when = bj("2026-11-26 10:00:00") + day_number * DAY
    record = subscription(None, "1000.00", "2026-11-26 10:00:00", rid=f"in-{day_number}")
    return [msgspec.structs.replace(record, booked_at=when)]


def test_an_old_rollover_is_re_emitted_unchanged_months_later():
    """The inflow days behind a rollover are dropped after inflow_days + 3 days; the figures of
    its (sealed) period are frozen first, so the finding does not drift as the data moves on."""
    ctx = world(split())
    base = [*rollover(), subscription(None, "7000.00", "2026-11-22 10:00:00")]
    state, first = run(ctx, base)
    f = only(first)
    assert f.metrics["investor_inflow"] == "7000.00"
    for d in range(90):
        state, findings = run(ctx, _daily_inflow(d), state, f"d{d}")
        assert findings == first, d
    assert len(state["inflow"]) <= 30 + 4 and state["frozen"]["PRD-P1-M"][2:] == [700_000, 1]
    assert msgspec.json.decode(msgspec.json.encode(state)) == state
    # the same records in one message end in the same state
    everything = [*base, *(r for d in range(90) for r in _daily_inflow(d))]
    assert run(ctx, everything)[0] == state
    # a new payout opens a new period: the frozen figures go
    late = payout("PRD-P1-M", "10.00", "2027-02-23 10:00:00")
    state, findings = run(ctx, [late], state, "late")
    g = only(findings)
    assert g.window_end == bj("2027-02-23 10:00:00") and "PRD-P1-M" not in state["frozen"]
    assert g.metrics["inflow_first_day"] == "2027-01-25" and g.metrics["investor_inflow"] == "30000.00"


def test_state_keeps_no_record_ids():
    ctx = world(split())
    state, _ = run(ctx, [*rollover(), subscription(None, "1.00", "2026-11-22 10:00:00")])
    state, _ = run(ctx, [subscription("PRD-P1-090", "1.00", "2026-12-10 10:00:00")], state, "m2")
    entry = state["products"]["PRD-P1-M"]
    assert entry["out"]["n"] == 1 and entry["in"]["n"] == 1
    assert_no_record_ids(state)


# -- configuration ---------------------------------------------------------------------------


def test_module_contract_and_the_shipped_thresholds():
    assert det.NAME in TYPOLOGIES and det.SCOPE == "institution" and det.VERSION == "1"
    real = load_thresholds(env={}, path=DEFAULT_FILE)
    assert set(det.DEFAULTS) <= set(real.defaults["maturity_mismatch"])


@pytest.mark.parametrize("institution", ["P1", "AM"])
def test_products_of_other_institutions_are_not_judged(institution):
    ctx = world(split("PRD-X", institution=institution))
    findings = run(ctx, [])[1]
    assert (findings != []) == (institution == "P1")
    if institution == "AM":
        assert only(det.detect(ctx, None, "AM", "m1", [])[1]).institution_id == "AM"
