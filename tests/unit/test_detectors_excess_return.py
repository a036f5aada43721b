"""models/detectors/excess_return.py (and the shared product_flows.py): a product promising, or
paying, more than its project can."""

from __future__ import annotations

import msgspec
import pytest

from models import institution_detection
from models.detectors import excess_return as det
from models.detectors import product_figures as figures
from models.detectors import product_flows as pf
from models.detectors.common import ALLOWED_LATENESS
from models.detectors.context import DetectContext
from models.detectors.wording import mask
from models.findings import TYPOLOGIES, Finding, alert_id_for
from models.institution_detection import step_institution
from models.thresholds import DEFAULT_FILE, Thresholds, load_thresholds
from models.windows import DAY
from streams.reference import ReferenceView
from tests.unit.test_detectors_common import (
    ALL_ACCOUNTS,
    AM_CUSTODY,
    BORROWER,
    CUSTODY,
    HOLDERS,
    INVESTOR,
    INVESTOR_FREE,
    OWN,
    PRODUCTS,
    RELATED,
    TEST_THRESHOLDS,
    assert_explanations_safe,
    assert_no_record_ids,
    bj,
    check_order_independent,
    check_replays_change_nothing,
    references,
    txn,
)

# -- a world with products -------------------------------------------------------------------

ER = {"robust_z": "3.5", "lpr_one_year": "0.030", "lpr_multiple": 4, "payout_coverage_min": "1.0",
      "min_peers": 5, "min_payout": "100000.00"}  # fmt: skip
MM = {"term_ratio_max": "0.5", "min_payout": "100000.00", "payout_coverage_min": "1.0", "inflow_days": 30}
SALE = "2026-06-01T09:00:00+08:00"
DAY1 = "2026-11-25"


def thresholds(er: dict | None = None, mm: dict | None = None, overrides: dict | None = None) -> Thresholds:
    defaults = {
        **TEST_THRESHOLDS.defaults,
        "excess_return": {**ER, **(er or {})},
        "maturity_mismatch": {**MM, **(mm or {})},
    }
    return Thresholds(TEST_THRESHOLDS.version, defaults, {**TEST_THRESHOLDS.overrides, **(overrides or {})})


def world(*products: dict, er: dict | None = None, mm: dict | None = None, overrides: dict | None = None):
    """The shared world with these products added to its (ordinary) PRODUCTS."""
    return DetectContext(references(products=[*PRODUCTS, *products]), thresholds(er, mm, overrides))


def product(
    pid: str,
    declared: str | None = "0.080",
    project: str | None = "0.110",
    term: int = 90,
    underlying: int | None = 90,
    *,
    institution: str = "P1",
    cap: int | None = None,
    sale: str | None = SALE,
) -> dict:
    return {"product_id": pid, "institution_id": institution, "name": f"鑫汇稳盈{pid}号",
            "declared_annual_yield": declared, "term_days": term, "underlying_project_rate": project,
            "underlying_term_days": underlying, "investor_cap": cap, "sale_start": sale,
            "sale_end": None}  # fmt: skip


# Peers of P1 (p2p_lending): with PRODUCTS' three (0.080, 0.090, 0.085) and one more product
# far above them, the median is 0.085 and the MAD 0.005, so z = (y - 0.085) / 0.007413.
PEERS = [
    product(f"PRD-P2-PEER{i}", y, "0.110", institution="P2")
    for i, y in enumerate(("0.080", "0.085", "0.090"))
]


def ptxn(pid: str | None, account: str, credit: bool, amount: str, when: str, counterparty: str, **kw):
    return msgspec.structs.replace(txn(account, credit, amount, when, counterparty, **kw), product_id=pid)


def payout(
    pid, amount, when=f"{DAY1} 10:00:00", investor=INVESTOR, account=CUSTODY, instruction="PO-1", **kw
):
    """An instructed custody debit to an investor: principal and yield paid back."""
    return ptxn(pid, account, False, amount, when, investor, instruction=instruction, **kw)


def repayment(pid, amount, when=f"{DAY1} 09:00:00", borrower=BORROWER, account=CUSTODY, **kw):
    """A borrower's repayment into custody."""
    return ptxn(pid, account, True, amount, when, borrower, **kw)


def subscription(pid, amount, when=f"{DAY1} 08:00:00", investor=INVESTOR, account=CUSTODY, **kw):
    """An investor paying into custody for the product."""
    return ptxn(pid, account, True, amount, when, investor, **kw)


def run(ctx, records, state=None, msg="m1"):
    return det.detect(ctx, state, "P1", msg, records)


def by_key(findings) -> dict[str, Finding]:
    return {f.key: f for f in findings}


def only(findings) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def assert_safe(finding: Finding) -> None:
    """No holder or product name, no full account number; accounts masked; seed cited; JSON figures."""
    if finding.accounts:
        assert_explanations_safe(finding)
    names = [n for n in HOLDERS.values() if n] + [p["name"] for p in PRODUCTS] + ["鑫汇稳盈"]
    for text in (finding.explanation_zh, finding.explanation_en):
        for name in names:
            assert name not in text, (name, text)
        for account in (*ALL_ACCOUNTS, *finding.accounts):
            assert account not in text, (account, text)
        for account in finding.accounts:
            assert mask(account) in text
        assert text.endswith(("。", "."))
    assert f"（《方案》{finding.rule}）" in finding.explanation_zh
    assert "(rectification plan §" in finding.explanation_en
    assert finding.thresholds["config_version"] == TEST_THRESHOLDS.version
    assert finding.detector_version == f"{finding.typology}/1"
    msgspec.json.encode(finding.metrics)
    msgspec.json.encode(finding.thresholds)


# -- signal 1: the promise above the project's rate --------------------------------------------


def test_a_yield_above_the_project_rate_is_high():
    ctx = world(product("PRD-P1-X", "0.100", "0.099"))
    state, findings = run(ctx, [])
    f = only(findings)
    assert f.typology == "excess_return" and f.key == "product:PRD-P1-X"
    assert f.alert_id == alert_id_for("excess_return", "product:PRD-P1-X")
    assert f.rule == "三(四)" and f.detector_version == "excess_return/1"
    assert f.institution_id == "P1" and f.severity == "high" and f.accounts == () and f.record_ids == ()
    assert f.amount_cents == 0 and f.window_start == f.window_end == bj("2026-06-01 09:00:00")
    assert f.metrics["signals"] == ["project_rate"] and f.metrics["yield_over_project_rate"] is True
    assert (
        f.metrics["declared_annual_yield"] == "0.100000"
        and f.metrics["underlying_project_rate"] == "0.099000"
    )
    assert f.metrics["yield_over_legal_cap"] is False and f.metrics["peer_outlier"] is False
    assert f.metrics["peer_count"] == 4 and f.metrics["robust_z"] is None  # 4 < min_peers
    assert f.metrics["payout_coverage"] is None and f.metrics["payouts"] == "0.00"
    assert f.thresholds["robust_z"] == "3.5" and f.thresholds["term_ratio_max"] == "0.5"
    assert 0.0 < f.score < 0.1  # 0.001 over 0.099
    assert f.extra == {"product_id": "PRD-P1-X"}
    assert "产品PRD-P1-X承诺年化收益率10.00%，高于其底层项目回报率9.90%" in f.explanation_zh
    assert "（《方案》三(四)）。" in f.explanation_zh
    assert (
        "Product PRD-P1-X promises an annual yield of 10.00%, above its underlying project rate of 9.90%"
        in (f.explanation_en)
    )
    assert f.explanation_en.endswith("(rectification plan §3(4)).")
    assert_safe(f)
    assert state == {}  # a review of an institution with no records keeps nothing


def test_a_yield_at_or_below_the_project_rate_is_no_signal():
    assert run(world(product("PRD-P1-X", "0.100", "0.100")), [])[1] == []
    assert run(world(product("PRD-P1-X", "0.099", "0.100")), [])[1] == []
    assert run(world(product("PRD-P1-X", "0.100", None)), [])[1] == []  # project rate unknown


# -- signal 2: the legal protection cap ------------------------------------------------------


def test_the_legal_cap_at_just_below_and_just_above():
    assert run(world(product("PRD-P1-X", "0.120000", "0.150")), [])[1] == []  # 4 x 3.0 % exactly
    assert run(world(product("PRD-P1-X", "0.119999", "0.150")), [])[1] == []
    f = only(run(world(product("PRD-P1-X", "0.120001", "0.150")), [])[1])
    assert f.metrics["signals"] == ["legal_cap"] and f.severity == "high"
    assert f.metrics["legal_cap"] == "0.120000" and f.metrics["yield_over_legal_cap"] is True
    assert "超过一年期LPR 3.00%的4倍即12.00%的民间借贷司法保护上限" in f.explanation_zh
    assert "4 times the one-year LPR of 3.00%, i.e. 12.00%" in f.explanation_en
    assert_safe(f)
    # the cap follows the configuration: 3 x 3.0 % = 9 %
    g = only(run(world(product("PRD-P1-X", "0.0901", "0.150"), er={"lpr_multiple": 3}), [])[1])
    assert g.metrics["legal_cap"] == "0.090000" and g.thresholds["lpr_multiple"] == 3


# -- signal 3: far above the peers -----------------------------------------------------------


def test_a_peer_outlier_just_above_the_robust_z_is_medium():
    f = only(run(world(*PEERS, product("PRD-P1-HI", "0.110946", "0.130")), [])[1])
    assert f.metrics["signals"] == ["peer_outlier"] and f.severity == "medium"
    assert f.metrics["peer_count"] == 7 and f.metrics["peer_type"] == "p2p_lending"
    assert f.metrics["peer_median"] == "0.085000" and f.metrics["peer_mad"] == "0.005000"
    assert f.metrics["robust_z"] == "3.5001"
    assert "显著高于网络借贷类机构7个产品收益率的中位数8.50%（稳健Z值3.50，阈值3.50）" in f.explanation_zh
    assert "median of 8.50% over the 7 products of P2P lending institutions" in f.explanation_en
    assert_safe(f)


def test_a_peer_z_at_or_below_the_line_is_no_signal():
    assert run(world(*PEERS, product("PRD-P1-HI", "0.1109455", "0.130")), [])[1] == []  # z = 3.5 exactly
    assert run(world(*PEERS, product("PRD-P1-HI", "0.110945", "0.130")), [])[1] == []


def test_peers_need_min_peers_products_and_some_spread():
    outlier = product("PRD-P1-HI", "0.115", "0.130")
    assert only(run(world(*PEERS, outlier, er={"min_peers": 7}), [])[1]).metrics["peer_count"] == 7
    assert run(world(*PEERS, outlier, er={"min_peers": 8}), [])[1] == []
    # every other product promises the same: MAD 0, no z-score
    same = [product(f"PRD-P2-S{i}", "0.080", institution="P2") for i in range(8)]
    flat = [dict(p, declared_annual_yield="0.080") for p in PRODUCTS]
    ctx = DetectContext(references(products=[*flat, *same, outlier]), thresholds())
    assert run(ctx, [])[1] == []


def test_peers_are_products_of_the_same_institution_type_only():
    # asset-management products promising less do not pull the P2P median down
    am = [product(f"PRD-AM-L{i}", "0.010", "0.020", institution="AM") for i in range(10)]
    assert run(world(*PEERS, *am, product("PRD-P1-HI", "0.110945", "0.130")), [])[1] == []


def test_peer_figures_follow_a_change_of_the_workers_reference_view():
    """A worker's view hands out the same peer group until a product changes; the peer figures
    kept for it must not outlive the change."""
    view = ReferenceView()
    for kind, items, key in (
        ("institutions", [{"institution_id": "P1", "type": "p2p_lending"}, {"institution_id": "P2", "type": "p2p_lending"}], "institution_id"),
        ("products", [*PRODUCTS, *PEERS], "product_id"),
    ):  # fmt: skip
        for item in items:
            view.apply(kind, item[key].encode(), msgspec.json.encode(item))
    ctx = DetectContext(view, thresholds())
    first = det.peers_of(ctx, "p2p_lending")
    assert det.peers_of(ctx, "p2p_lending") is first  # kept while the group is the same
    outlier = product("PRD-P1-HI", "0.110946", "0.130")
    view.apply("products", b"PRD-P1-HI", msgspec.json.encode(outlier))
    second = det.peers_of(ctx, "p2p_lending")
    assert second is not first and second.count == first.count + 1
    f = only(run(ctx, [])[1])
    assert f.metrics["peer_count"] == 7 and f.metrics["robust_z"] == "3.5001"


# -- signal 4: payouts not covered by repayments ----------------------------------------------


def test_payouts_above_the_repayments_are_medium():
    ctx = world(product("PRD-P1-PAY"))
    records = [payout("PRD-P1-PAY", "100000.00"), repayment("PRD-P1-PAY", "99999.99")]
    state, findings = run(ctx, records)
    f = only(findings)
    assert f.metrics["signals"] == ["payout_coverage"] and f.severity == "medium"
    assert f.metrics["payouts"] == "100000.00" and f.metrics["repayments"] == "99999.99"
    assert f.metrics["payout_coverage"] == "0.99999990" and f.metrics["uncovered_payouts"] == "0.01"
    assert f.metrics["payout_count"] == 1 and f.metrics["repayment_count"] == 1
    assert f.amount_cents == 1 and f.accounts == (CUSTODY,)
    assert set(f.record_ids) == {r.record_id for r in records}
    assert f.window_start == bj("2026-06-01 09:00:00") and f.window_end == bj(f"{DAY1} 10:00:00")
    assert f.metrics["first_day"] == "2026-06-01" and f.metrics["last_day"] == DAY1
    assert "客户资金账户****1001按指令向该产品投资人兑付1笔、合计100,000.00 元" in f.explanation_zh
    assert (
        "借款人还款仅1笔、合计99,999.99 元，兑付覆盖率100.00%，0.01 元的兑付没有项目回款支撑，涉嫌变相补贴"
        in (f.explanation_zh)
    )
    assert (
        "the customer-fund account(s) ****1001 paid its investors 1 time(s), CNY 100,000.00"
        in f.explanation_en
    )
    assert_safe(f)
    assert state["products"]["PRD-P1-PAY"]["out"]["c"] == 10_000_000


def test_coverage_at_the_minimum_is_no_signal():
    ctx = world(product("PRD-P1-PAY"))
    assert run(ctx, [payout("PRD-P1-PAY", "100000.00"), repayment("PRD-P1-PAY", "100000.00")])[1] == []
    # the minimum is configuration: 0.9 lets 95 % pass, 1.0 does not
    records = [payout("PRD-P1-PAY", "100000.00"), repayment("PRD-P1-PAY", "95000.00")]
    assert run(world(product("PRD-P1-PAY"), er={"payout_coverage_min": "0.9"}), records)[1] == []
    assert only(run(ctx, records)[1]).metrics["payout_coverage"] == "0.95000000"


def test_payouts_below_min_payout_are_not_judged():
    ctx = world(product("PRD-P1-PAY"))
    assert run(ctx, [payout("PRD-P1-PAY", "99999.99")])[1] == []
    f = only(
        run(ctx, [payout("PRD-P1-PAY", "60000.00"), payout("PRD-P1-PAY", "40000.00", f"{DAY1} 11:00:00")])[1]
    )
    assert f.metrics["payout_count"] == 2 and f.metrics["payout_coverage"] == "0.00000000"
    assert f.window_end == bj(f"{DAY1} 11:00:00") and f.amount_cents == 10_000_000
    assert f.score == 1.0


def test_only_instructed_custody_payouts_to_investors_and_borrower_repayments_count():
    ctx = world(product("PRD-P1-PAY"))
    noise = [
        payout("PRD-P1-PAY", "500000.00", instruction=None),  # uninstructed: misappropriation's
        payout("PRD-P1-PAY", "500000.00", investor=RELATED),  # not an investor: self_financing's
        payout("PRD-P1-PAY", "500000.00", account=OWN),  # not a custody account
        payout("PRD-P2-180", "500000.00"),  # another institution's product
        payout("PRD-P1-090", "50000.00"),  # another product of P1
    ]
    assert run(ctx, noise)[1] == []
    counted = [payout("PRD-P1-PAY", "150000.00"), repayment("PRD-P1-PAY", "120000.00")]
    counted += [repayment("PRD-P1-PAY", "900000.00", borrower=INVESTOR_FREE)]  # an investor: no repayment
    counted += [repayment("PRD-P1-PAY", "900000.00", account=OWN)]  # not custody
    f = only(run(ctx, [*noise, *counted])[1])
    assert f.metrics["payouts"] == "150000.00" and f.metrics["repayments"] == "120000.00"
    assert f.amount_cents == 3_000_000


def test_a_split_product_leaves_its_uncovered_payouts_to_maturity_mismatch():
    split = product("PRD-P1-SPLIT", term=30, underlying=360)
    records = [payout("PRD-P1-SPLIT", "200000.00"), repayment("PRD-P1-SPLIT", "50000.00")]
    assert run(world(split), records)[1] == []
    # at the line the term is not split: excess_return reports it
    half = product("PRD-P1-SPLIT", term=180, underlying=360)
    f = only(run(world(half), records)[1])
    assert f.metrics["term_split"] is False and f.metrics["term_ratio"] == "0.500000"
    assert f.thresholds["term_ratio_max"] == "0.5"
    # maturity_mismatch's threshold decides, for the institution's type
    ctx = world(half, overrides={"p2p_lending": {"maturity_mismatch": {"term_ratio_max": "0.6"}}})
    assert run(ctx, records)[1] == []
    # with the underlying term unknown the term cannot be split
    g = only(run(world(product("PRD-P1-SPLIT", term=30, underlying=None)), records)[1])
    assert g.metrics["term_split"] is False and g.metrics["term_ratio"] is None
    # with another signal the split product's finding shows the uncovered payouts but does not count them
    h = only(run(world(product("PRD-P1-SPLIT", "0.115", "0.110", term=30, underlying=360)), records)[1])
    assert h.metrics["signals"] == ["project_rate"] and h.metrics["payout_coverage_short"] is False
    assert h.metrics["uncovered_payouts"] == "150000.00" and h.amount_cents == 0 and h.record_ids == ()


# -- severity and score ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "project", "peers", "short", "signals", "severity"),
    [
        ("0.130", "0.110", False, False, ["project_rate", "legal_cap"], "high"),
        ("0.130", "0.150", True, False, ["legal_cap", "peer_outlier"], "high"),
        ("0.115", "0.110", True, False, ["project_rate", "peer_outlier"], "high"),
        ("0.115", "0.110", False, True, ["project_rate", "payout_coverage"], "critical"),
        ("0.115", "0.130", True, True, ["peer_outlier", "payout_coverage"], "critical"),
        (
            "0.130",
            "0.110",
            True,
            True,
            ["project_rate", "legal_cap", "peer_outlier", "payout_coverage"],
            "critical",
        ),
    ],
)
def test_severity_of_several_signals(declared, project, peers, short, signals, severity):
    products = [*(PEERS if peers else ()), product("PRD-P1-X", declared, project)]
    records = [payout("PRD-P1-X", "300000.00"), repayment("PRD-P1-X", "100000.00")] if short else []
    f = only(run(world(*products), records)[1])
    assert f.metrics["signals"] == signals and f.severity == severity
    assert f.amount_cents == (20_000_000 if short else 0)
    assert 0.0 < f.score <= 1.0
    assert_safe(f)


def test_the_score_grows_with_the_distance_past_the_worst_line():
    def score(declared):
        return only(run(world(product("PRD-P1-X", declared, "0.100")), [])[1]).score

    assert score("0.101") < score("0.110") < score("0.119") < score("0.150") <= 1.0
    assert score("0.300") == 1.0


# -- hard negatives --------------------------------------------------------------------------


def test_a_high_yield_still_covered_below_the_cap_and_not_an_outlier_is_no_finding():
    """The province's highest promise, which its project still pays and which is not far from the
    peers (z about 2.0): ordinary competition, nothing to flag."""
    covered = product("PRD-P1-TOP", "0.100", "0.125")
    ctx = world(*PEERS, covered)
    assert run(ctx, [])[1] == []
    # with covered payouts too
    records = [repayment("PRD-P1-TOP", "300000.00"), payout("PRD-P1-TOP", "280000.00")]
    assert run(ctx, records)[1] == []


def test_the_ordinary_products_of_the_world_give_nothing():
    assert run(world(), [])[1] == []
    assert run(world(*PEERS), [])[1] == []


def test_unreadable_or_missing_yields_are_no_signal():
    assert run(world(product("PRD-P1-X", None, "0.100")), [])[1] == []
    assert run(world(product("PRD-P1-X", "n/a", "0.100")), [])[1] == []
    # the payout signal still works without a yield
    records = [payout("PRD-P1-X", "300000.00")]
    f = only(run(world(product("PRD-P1-X", None, None)), records)[1])
    assert f.metrics["signals"] == ["payout_coverage"] and f.metrics["declared_annual_yield"] is None
    assert f.explanation_zh.startswith("产品PRD-P1-X；截至") and f.explanation_en.startswith(
        "Product PRD-P1-X; by "
    )


# -- windows ---------------------------------------------------------------------------------


def test_without_sale_start_the_first_record_of_the_product_places_the_finding():
    ctx = world(product("PRD-P1-X", "0.130", "0.110", sale=None))
    assert run(ctx, [])[1] == []  # nothing places it yet: it waits
    state, findings = run(ctx, [subscription("PRD-P1-X", "1000.00", f"{DAY1} 08:30:00")])
    assert only(findings).window_start == only(findings).window_end == bj(f"{DAY1} 08:30:00")
    earlier = subscription("PRD-P1-X", "1000.00", f"{DAY1} 07:00:00")
    later = subscription("PRD-P1-X", "1000.00", f"{DAY1} 12:00:00")
    state, findings = run(ctx, [later, earlier], state, "m2")
    assert only(findings).window_end == bj(f"{DAY1} 07:00:00")  # the first, whatever the order


def test_a_sale_starting_after_the_data_waits_for_the_data():
    ctx = world(product("PRD-P1-X", "0.130", "0.110", sale="2026-12-01T09:00:00+08:00"))
    state, findings = run(ctx, [subscription("PRD-P1-090", "1000.00")])
    assert findings == []  # sale_start is after the latest record seen: never a window in the future
    state, findings = run(ctx, [subscription("PRD-P1-090", "1000.00", "2026-12-01 10:00:00")], state, "m2")
    assert only(findings).window_end == bj("2026-12-01 09:00:00")
    # before any record there is no data to compare with: the sale start is taken as given
    assert only(run(ctx, [])[1]).window_end == bj("2026-12-01 09:00:00")


def test_payouts_move_the_window_end_to_the_latest_payout():
    ctx = world(product("PRD-P1-X"))
    state, first = run(ctx, [payout("PRD-P1-X", "150000.00", f"{DAY1} 10:00:00")])
    state, second = run(ctx, [payout("PRD-P1-X", "10000.00", "2026-11-26 10:00:00")], state, "m2")
    assert only(first).alert_id == only(second).alert_id
    assert second[0].window_end == bj("2026-11-26 10:00:00") and second[0].window_start == bj(
        "2026-06-01 09:00:00"
    )
    assert second[0].metrics["payouts"] == "160000.00"


# -- reviews, replays, re-emission, order ----------------------------------------------------


def test_a_review_with_no_records_gives_the_reference_only_findings():
    ctx = world(product("PRD-P1-X"))
    state, findings = run(ctx, [subscription("PRD-P1-X", "1000.00")])
    assert findings == []
    changed = world(product("PRD-P1-X", "0.150", "0.110"))  # the product re-registered at 15 %
    again, review = run(changed, [], state, "review/1")
    assert again == state
    f = only(review)
    assert f.metrics["signals"] == ["project_rate", "legal_cap"] and f.severity == "high"
    assert f.window_end == bj("2026-06-01 09:00:00")


def test_a_product_registered_after_its_records_is_judged_on_review():
    records = [payout("PRD-P1-NEW", "300000.00"), repayment("PRD-P1-NEW", "100000.00")]
    state, findings = run(world(), records)  # unknown to the reference data: kept, not judged
    assert findings == [] and "PRD-P1-NEW" in state["products"]
    f = only(run(world(product("PRD-P1-NEW")), [], state, "review/2")[1])
    assert f.metrics["signals"] == ["payout_coverage"] and f.amount_cents == 20_000_000


def test_replays_change_nothing():
    ctx = world(product("PRD-P1-X", "0.130", "0.110"), product("PRD-P1-PAY"))
    records = [
        payout("PRD-P1-PAY", "150000.00"),
        repayment("PRD-P1-PAY", "60000.00"),
        subscription("PRD-P1-X", "5.00"),
    ]
    assert len(run(ctx, records)[1]) == 2
    check_replays_change_nothing(det, ctx, "P1", records)


def test_a_second_call_with_no_new_data_re_emits_equal_findings():
    ctx = world(product("PRD-P1-X", "0.130", "0.110"), product("PRD-P1-PAY"))
    state, first = run(ctx, [payout("PRD-P1-PAY", "150000.00"), repayment("PRD-P1-PAY", "60000.00")])
    _, review = run(ctx, [], state, "review/3")
    assert review == first
    # records of other products and later days move the watermark, not these findings
    other = [subscription("PRD-P1-090", "1000.00", "2026-12-20 10:00:00")]
    _, later = run(ctx, other, state, "m4")
    assert later == first
    assert det.current(ctx, state, "P1") == first


def test_the_alert_is_created_once_and_not_updated_by_repeats(monkeypatch):
    monkeypatch.setattr(institution_detection, "INSTITUTION_DETECTORS", {det.NAME: det})
    ctx = world(product("PRD-P1-X", "0.130", "0.110"))
    state, changed = step_institution(ctx, None, "P1", "m1", [subscription("PRD-P1-X", "5.00")], at=1)
    assert [kind for kind, _ in changed] == ["created"]
    state, changed = step_institution(ctx, state, "P1", "review/1", [], at=2)
    assert changed == []
    state, changed = step_institution(ctx, state, "P1", "m2", [subscription("PRD-P1-090", "5.00")], at=3)
    assert changed == []


def _life() -> list:
    """Three products over two days: an uncovered one, one placed by its first record, a covered one."""
    records = [subscription("PRD-P1-PAY", "50000.00", f"{DAY1} 08:{i:02d}:00") for i in range(5)]
    records += [
        payout("PRD-P1-PAY", "80000.00", f"{DAY1} 1{i}:00:00", instruction=f"PO-{i}") for i in range(3)
    ]
    records += [repayment("PRD-P1-PAY", "70000.00", f"2026-11-26 0{i + 1}:00:00") for i in range(2)]
    records += [subscription("PRD-P1-NOSALE", "1000.00", f"2026-11-26 0{i + 2}:30:00") for i in range(3)]
    records += [payout("PRD-P1-NOSALE", "20000.00", "2026-11-26 15:00:00")]
    records += [repayment("PRD-P1-OK", "200000.00", f"{DAY1} 09:00:00"), payout("PRD-P1-OK", "150000.00")]
    return records


def _life_world() -> DetectContext:
    return world(
        product("PRD-P1-PAY"), product("PRD-P1-NOSALE", "0.130", "0.110", sale=None), product("PRD-P1-OK")
    )


def test_order_and_split_do_not_matter():
    latest = check_order_independent(det, _life_world(), "P1", _life(), monotone=False)
    assert set(latest) == {"product:PRD-P1-PAY", "product:PRD-P1-NOSALE"}
    pay = latest["product:PRD-P1-PAY"]
    assert pay.metrics["payouts"] == "240000.00" and pay.metrics["repayments"] == "140000.00"
    assert pay.window_end == bj(f"{DAY1} 12:00:00") and pay.amount_cents == 10_000_000
    assert len(pay.record_ids) == 5
    nosale = latest["product:PRD-P1-NOSALE"]
    assert nosale.window_start == nosale.window_end == bj("2026-11-26 02:30:00")
    assert nosale.metrics["payouts"] == "20000.00" and nosale.severity == "high"
    assert nosale.metrics["signals"] == ["project_rate", "legal_cap", "peer_outlier"]  # 6 peers now
    for f in latest.values():
        assert_safe(f)


def test_order_does_not_matter_for_findings_that_only_grow():
    records = [r for r in _life() if r.product_id == "PRD-P1-NOSALE"]
    records += [
        payout("PRD-P1-PAY", "60000.00", f"{DAY1} 1{i}:00:00", instruction=f"PO-{i}") for i in range(3)
    ]
    latest = check_order_independent(det, _life_world(), "P1", records)
    assert latest["product:PRD-P1-PAY"].metrics["payout_coverage"] == "0.00000000"


# -- lateness, bounds, state -----------------------------------------------------------------


def test_records_later_than_the_allowed_lateness_are_judged_and_marked_late():
    ctx = world(product("PRD-P1-PAY"))
    state, _ = run(ctx, [subscription("PRD-P1-090", "1.00", "2026-11-30 12:00:00")])
    assert bj("2026-11-28 00:00:00") + ALLOWED_LATENESS <= state["wm"]
    late = only(run(ctx, [payout("PRD-P1-PAY", "300000.00", f"{DAY1} 10:00:00")], state, "m2")[1])
    assert late.metrics["payouts"] == "300000.00" and late.metrics["late"] is True
    on_time = only(run(ctx, [payout("PRD-P1-PAY", "300000.00", "2026-11-28 10:00:00")], state, "m3")[1])
    assert on_time.metrics["late"] is False
    # a second late record, after the first was folded, adds to the same figures
    state, _ = run(ctx, [payout("PRD-P1-PAY", "300000.00", f"{DAY1} 10:00:00")], state, "m4")
    state, findings = run(
        ctx, [payout("PRD-P1-PAY", "300000.00", f"{DAY1} 11:00:00", rid="late-1")], state, "m5"
    )
    assert only(findings).metrics["payouts"] == "600000.00" and only(findings).metrics["late"] is True


# -- repayments and payouts without a product ------------------------------------------------


def test_untagged_repayments_are_repayments_not_a_coverage_of_zero():
    """Payouts name their product, repayments name none: the product is not judged alone, and the
    custody account as a whole is covered."""
    ctx = world(product("PRD-P1-PAY"))
    records = [payout("PRD-P1-PAY", "150000.00"), repayment(None, "900000.00")]
    state, findings = run(ctx, records)
    assert findings == []
    assert state["un"]["in"]["c"] == 90_000_000
    # the product's figures cannot settle it: its finding (if any) says so
    hi = world(product("PRD-P1-PAY", "0.120", "0.110"))
    f = only(run(hi, records)[1])
    assert f.metrics["signals"] == ["project_rate"] and f.metrics["coverage_basis"] == "institution"
    assert f.metrics["unattributed_repayments"] == "900000.00" and f.metrics["payout_coverage_short"] is False


def test_an_untagged_repayment_goes_to_the_only_product_its_borrower_borrowed_from():
    ctx = world(product("PRD-P1-PAY"))
    loan = ptxn("PRD-P1-PAY", CUSTODY, False, "200000.00", f"{DAY1} 08:30:00", BORROWER, instruction="LN-1")
    records = [loan, payout("PRD-P1-PAY", "150000.00"), repayment(None, "120000.00")]
    f = only(run(ctx, records)[1])
    assert f.key == "product:PRD-P1-PAY" and f.metrics["coverage_basis"] == "product"
    assert f.metrics["repayments"] == "120000.00" and f.metrics["payout_coverage"] == "0.80000000"
    # the repayment may come before the loan that names its product: the accounts as a whole are
    # short until then (a ratio over a growing set, docs/detection.md "Known limits")
    check_order_independent(det, ctx, "P1", records, seeds=10, monotone=False)
    # a borrower of two products: the repayment is attributed to neither, so the product is short
    # only because it would be even with it, and the accounts as a whole are short too
    other = ptxn("PRD-P1-090", CUSTODY, False, "200000.00", f"{DAY1} 08:40:00", BORROWER, instruction="LN-2")
    findings = by_key(run(ctx, [other, *records])[1])
    assert set(findings) == {"product:PRD-P1-PAY", "institution:P1"}
    assert findings["product:PRD-P1-PAY"].metrics["repayments"] == "0.00"
    whole = findings["institution:P1"]
    assert (
        whole.metrics["coverage_basis"] == "institution" and whole.metrics["payout_coverage"] == "0.80000000"
    )
    assert whole.amount_cents == 3_000_000 and whole.severity == "medium"
    assert_safe(whole)


def test_an_untagged_repayment_goes_to_the_product_of_an_account_or_of_the_institution():
    ctx = DetectContext(
        references({BORROWER: {"product_id": "PRD-P1-PAY"}}, products=[*PRODUCTS, product("PRD-P1-PAY")]),
        thresholds(),
    )
    records = [payout("PRD-P1-PAY", "150000.00"), repayment(None, "120000.00")]
    assert only(run(ctx, records)[1]).metrics["repayments"] == "120000.00"
    # an institution with one product: everything untagged is that product's
    am = world()
    untagged = [
        ptxn(None, AM_CUSTODY, False, "150000.00", f"{DAY1} 10:00:00", INVESTOR, instruction="PO-1"),
        ptxn(None, AM_CUSTODY, True, "150000.00", f"{DAY1} 09:00:00", BORROWER),
    ]
    assert det.detect(am, None, "AM", "m1", untagged)[1] == []
    state, findings = det.detect(am, None, "AM", "m1", untagged[:1])
    assert only(findings).key == "product:PRD-AM-180" and "un" not in state


def test_an_untagged_payout_is_a_payout_of_the_institution():
    ctx = world(product("PRD-P1-PAY"))
    records = [payout(None, "500000.00"), repayment("PRD-P1-PAY", "120000.00")]
    f = only(run(ctx, records)[1])
    assert f.key == "institution:P1" and f.metrics["unattributed_payouts"] == "500000.00"
    assert f.metrics["payout_coverage"] == "0.24000000" and f.severity == "high"


def test_state_is_json_bounded_and_keeps_no_record_ids():
    ctx = world(product("PRD-P1-PAY"))
    state = None
    for d in range(40):
        day = f"2026-10-{d + 1:02d}" if d < 31 else f"2026-11-{d - 30:02d}"
        records = [
            payout("PRD-P1-PAY", "1000.00", f"{day} 10:00:00", instruction=f"PO-{d}-{i}") for i in range(60)
        ]
        state, findings = run(ctx, records, state, f"m{d}")
    assert msgspec.json.decode(msgspec.json.encode(state)) == state
    out = state["products"]["PRD-P1-PAY"]["out"]
    assert out["n"] == 2400 and len(out["top"]) == 50
    assert_no_record_ids(state)
    assert only(findings).metrics["payouts"] == "2400000.00" and len(only(findings).record_ids) == 50


def test_products_kept_are_the_smallest_ids_whatever_the_order(monkeypatch):
    monkeypatch.setattr(pf, "MAX_PRODUCTS", 2)
    records = [payout(f"PRD-Z{i}", "1000.00", f"{DAY1} 1{i}:00:00") for i in range(4)]
    ctx = world()
    check_order_independent(det, ctx, "P1", records, seeds=10)
    state, _ = run(ctx, records)
    assert sorted(state["products"]) == ["PRD-Z0", "PRD-Z1"]


def test_state_is_not_mutated():
    ctx = world(product("PRD-P1-PAY"))
    state, _ = run(ctx, [payout("PRD-P1-PAY", "150000.00")])
    snapshot = repr(state)
    run(ctx, [payout("PRD-P1-PAY", "150000.00", "2026-11-26 10:00:00")], state, "m2")
    assert repr(state) == snapshot


# -- configuration ---------------------------------------------------------------------------


def test_thresholds_per_institution_type_through_institution_config():
    ctx = world(
        *PEERS,
        product("PRD-P1-HI", "0.100", "0.130"),
        overrides={"p2p_lending": {"excess_return": {"robust_z": "2.0"}}},
    )
    f = only(run(ctx, [])[1])
    assert f.metrics["signals"] == ["peer_outlier"] and f.thresholds["robust_z"] == "2.0"
    assert ctx.institution_config("excess_return", "P1", det.DEFAULTS)["robust_z"] == "2.0"
    assert ctx.institution_config("excess_return", "AM", det.DEFAULTS)["robust_z"] == "3.5"
    assert ctx.institution_config("excess_return", "nope", {"x": 1})["x"] == 1


def test_module_contract_and_the_shipped_thresholds():
    assert det.NAME in TYPOLOGIES and det.SCOPE == "institution" and det.VERSION == "1"
    real = load_thresholds(env={}, path=DEFAULT_FILE)
    assert set(det.DEFAULTS) <= set(real.defaults["excess_return"])
    assert real.defaults["maturity_mismatch"]["term_ratio_max"] == pf.TERM_RATIO_MAX


def test_product_flow_helpers():
    assert pf.rate_of("0.085") is not None and pf.rate_of("x") is None and pf.rate_of(None) is None
    assert pf.rate_of("NaN") is None and pf.rate_of(True) is None
    assert pf.days_of(30) == 30 and pf.days_of(0) is None and pf.days_of("x") is None
    assert pf.time_of("2026-06-01T09:00:00+08:00") == bj("2026-06-01 09:00:00") and pf.time_of("junk") is None
    assert figures.flows_of({}, "nope") == figures.NO_FLOWS and figures.NO_FLOWS.coverage is None
    assert DAY == 86400
