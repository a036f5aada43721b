"""excess_return: a product promising, or paying, more than its project can (《方案》三(四): 产品承诺或
实际收益水平显著高于项目回报率或行业水平, 显失合理的超高回报率以及变相补贴).

One alert per product, key ``product:<product_id>``, for every product of the institution
(``ctx.references.products_of``). Four signals; any one fires and the metrics show all four:

1. project rate: ``declared_annual_yield > underlying_project_rate`` (when the project rate is
   known): the promise exceeds what the borrowers pay.
2. legal cap: ``declared_annual_yield > lpr_one_year * lpr_multiple`` (four times the one-year
   LPR: the judicial protection cap of private lending).
3. peer outlier: ``z = (y - median) / (1.4826 * MAD) > robust_z`` over the declared yields of every
   product of every institution of the same type (``products_of_type``, the product included),
   only with at least ``min_peers`` such products and ``MAD > 0``.
4. payout coverage: over the product's life seen so far (models/detectors/product_flows.py),
   payouts to investors of at least ``min_payout`` with ``repaid / paid_out <
   payout_coverage_min``: investors were paid more than the borrowers repaid (a subsidy). Only when
   the term is not split (``term_days >= underlying_term_days * term_ratio_max`` of
   maturity_mismatch, or the underlying term unknown): a split product's uncovered payouts are
   rollover, which maturity_mismatch reports. Only when the product's own figures settle it
   (``coverage_basis`` "product" in the metrics): repayments a record does not tag with a product
   are repayments all the same, so while some cannot be attributed a product is short only if it
   would be short with all of them.

Institution coverage. While some payout or repayment of the institution cannot be attributed to a
product, the payout coverage of its custody accounts as a whole is judged too: payouts of at least
``min_payout`` with ``repaid / paid_out < payout_coverage_min`` over every product and none is one
finding, key ``institution:<institution_id>``, ``coverage_basis`` "institution", medium (high
below half the minimum), amount the uncovered payouts, evidence the largest payouts and
repayments, window from the first of them to the latest payout.

Signals 1-3 need only reference data: they are evaluated on every call, reviews (no records)
included, so a product is flagged when it is registered.

Window: ``window_start = window_end =`` the product's ``sale_start``; without one, the event time
of the first record of the product seen; with neither, or a sale starting after the latest record
seen, a reference-only finding waits. With signal 4, ``window_end`` is the latest payout (and
``window_start`` no later than it).

Severity: one signal: high for 1 or 2, medium for 3 or 4 alone. Two or more: critical when 4 is
among them, else high. Score: how far past its line the worst signal is (yield over project rate or
cap relative to it, z over ``robust_z`` relative to it, coverage shortfall relative to the
minimum), capped at 1. ``amount_cents``: the uncovered payouts when 4 holds, else 0;
``record_ids``: the largest payouts and repayments when 4 holds, else none.

State: product_flows' (watermark, per product the first record time and payout and repayment
buckets); plain JSON, bounded per product.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from models.detectors import product_flows as pf
from models.detectors.common import (
    beijing_date,
    cents_of,
    cite_en,
    cite_zh,
    clone,
    fraction_of,
    mask,
    money,
    percent,
    ratio_text,
    score_of,
    yuan_en,
    yuan_zh,
)
from models.detectors.context import DetectContext, _text
from models.findings import Finding
from schemas.messages import TxnRecord

NAME = "excess_return"
VERSION = "1"
SCOPE = "institution"
RULE = "三(四)"
MAD_SCALE = Fraction(14826, 10000)  # MAD to standard deviation under normality

DEFAULTS = {
    "robust_z": "3.5",
    "lpr_one_year": "0.030",
    "lpr_multiple": 4,
    "payout_coverage_min": "1.0",
    "min_peers": 5,
    "min_payout": "100000.00",
}

TYPE_ZH = {
    "p2p_lending": "网络借贷",
    "equity_crowdfunding": "股权众筹",
    "internet_insurance": "互联网保险",
    "asset_management": "资产管理",
    "payment": "支付",
    "real_estate": "房地产",
    "other": "其他",
}
TYPE_EN = {
    "p2p_lending": "P2P lending",
    "equity_crowdfunding": "equity crowdfunding",
    "internet_insurance": "internet insurance",
    "asset_management": "asset management",
    "payment": "payment",
    "real_estate": "real estate",
    "other": "other",
}


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    msg_id: str,
    records: list[TxnRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of the institution; return the new state and the finding of every
    product of the institution that fires (unchanged ones are re-emitted identically)."""
    st = clone(state) or pf.empty_state()
    pf.fold(ctx, st, institution_id, pf.of_institution(ctx, institution_id, records))
    pf.prune(st)
    findings = _findings(ctx, st, institution_id)
    return (st if st["products"] or st["wm"] is not None else {}), findings


def current(ctx: DetectContext, state: dict[str, Any] | None, institution_id: str) -> list[Finding]:
    """The findings the state and the reference data hold now."""
    return _findings(ctx, state or pf.empty_state(), institution_id)


# -- peers ----------------------------------------------------------------------------------


def _median(values: list[Decimal]) -> Decimal:
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


class Peers:
    """The declared yields of every product of the institution's type: median and MAD."""

    def __init__(self, products: Iterable[dict[str, Any]]) -> None:
        yields = sorted(
            y for y in (pf.rate_of(p.get("declared_annual_yield")) for p in products) if y is not None
        )
        self.count = len(yields)
        self.median = _median(yields) if yields else None
        self.mad = _median(sorted(abs(y - self.median) for y in yields)) if yields else None

    def z(self, value: Decimal, min_peers: int) -> Fraction | None:
        """The robust z-score of a yield, or None when the group is too small or has no spread."""
        if self.count < min_peers or self.median is None or not self.mad:
            return None
        return Fraction(value - self.median) / (MAD_SCALE * Fraction(self.mad))


# The peer figures of a group, kept while the reference view hands out the same group object
# (streams/reference.py: until a product or institution changes): an institution's every
# message re-judges its products, and the group of a type holds every product of that type.
# Each entry holds its group, so the group's id is not reused while the entry lives.
_PEERS: dict[tuple[int, str], tuple[Sequence[dict[str, Any]], Peers]] = {}


def peers_of(ctx: DetectContext, institution_type: str | None) -> Peers:
    products = ctx.references.products_of_type(institution_type) if institution_type else ()
    key = (id(products), institution_type or "")
    found = _PEERS.get(key)
    if found is None or found[0] is not products:
        if len(_PEERS) > 256:  # groups made anew per call (a review's overlay, tests): start over
            _PEERS.clear()
        found = _PEERS[key] = (products, Peers(products))
    return found[1]


# -- evaluation -----------------------------------------------------------------------------


def _findings(ctx: DetectContext, st: dict[str, Any], institution_id: str) -> list[Finding]:
    products = ctx.references.products_of(institution_id)
    if not products:
        return []
    cfg = ctx.institution_config(NAME, institution_id, DEFAULTS)
    ratio_max = pf.term_ratio_max(ctx, institution_id)
    institution = ctx.references.institution(institution_id) or {}
    institution_type = _text(institution.get("type"))
    peers = peers_of(ctx, institution_type)
    extra = pf.attributed(st)
    findings = []
    for product in products:
        finding = _evaluate(ctx, st, institution_id, institution_type, cfg, ratio_max, peers, product, extra)
        if finding is not None:
            findings.append(finding)
    finding = _institution_coverage(ctx, st, institution_id, cfg)
    if finding is not None:
        findings.append(finding)
    return findings


def _evaluate(
    ctx: DetectContext,
    st: dict[str, Any],
    institution_id: str,
    institution_type: str | None,
    cfg: dict[str, Any],
    ratio_max_value: Any,
    peers: Peers,
    product: dict[str, Any],
    extra: dict[str, list[int]],
) -> Finding | None:
    pid = str(product["product_id"])
    declared = pf.rate_of(product.get("declared_annual_yield"))
    project = pf.rate_of(product.get("underlying_project_rate"))
    lpr = fraction_of(cfg["lpr_one_year"])
    multiple = fraction_of(cfg["lpr_multiple"])
    legal_cap = lpr * multiple
    robust_z = fraction_of(cfg["robust_z"])
    min_peers = int(cfg["min_peers"])
    coverage_min = fraction_of(cfg["payout_coverage_min"])
    ratio_max = fraction_of(ratio_max_value)

    over_project = declared is not None and project is not None and declared > project
    over_cap = declared is not None and Fraction(declared) > legal_cap
    z = peers.z(declared, min_peers) if declared is not None else None
    outlier = z is not None and z > robust_z
    flows = pf.flows_of(st, pid, extra)
    split = pf.is_split(product, ratio_max)
    min_payout = cents_of(cfg["min_payout"])
    judged = flows.judged(min_payout, coverage_min)
    uncovered = judged and flows.short(min_payout, coverage_min) and not split
    fired = [
        name
        for name, on in (
            ("project_rate", over_project),
            ("legal_cap", over_cap),
            ("peer_outlier", outlier),
            ("payout_coverage", uncovered),
        )
        if on
    ]
    if not fired:
        return None

    base = pf.window_time(st, product)
    if uncovered:
        window_end = flows.last_payout
        window_start = min(base if base is not None else flows.first, window_end)
    elif base is None:
        return None  # a reference-only finding with no place in time yet waits
    else:
        window_start = window_end = base

    if len(fired) == 1:
        severity = "high" if (over_project or over_cap) else "medium"
    else:
        severity = "critical" if uncovered else "high"
    scores = []
    if over_project:
        scores.append(score_of(Fraction(declared) - Fraction(project), Fraction(project)))
    if over_cap:
        scores.append(score_of(Fraction(declared) - legal_cap, legal_cap))
    if outlier:
        scores.append(score_of(z - robust_z, robust_z))
    if uncovered:
        scores.append(score_of(coverage_min - flows.coverage, coverage_min))
    score = max(scores)

    coverage = flows.coverage
    ratio = pf.term_ratio(product)
    metrics = {
        "product_id": pid,
        "signals": fired,
        "declared_annual_yield": pf.fixed(declared),
        "underlying_project_rate": pf.fixed(project),
        "yield_over_project_rate": over_project,
        "legal_cap": pf.fixed(legal_cap),
        "yield_over_legal_cap": over_cap,
        "peer_type": institution_type,
        "peer_count": peers.count,
        "peer_median": pf.fixed(peers.median),
        "peer_mad": pf.fixed(peers.mad),
        "robust_z": pf.fixed(z, 4),
        "peer_outlier": outlier,
        "payouts": money(flows.paid_out),
        "payout_count": flows.payouts,
        "repayments": money(flows.repaid),
        "repayment_count": flows.repayments,
        "payout_coverage": pf.fixed(coverage, 8),
        "uncovered_payouts": money(flows.uncovered),
        "payout_coverage_short": uncovered,
        "coverage_basis": "product" if judged else "institution",
        "unattributed_repayments": money(flows.open_repaid),
        "unattributed_payouts": money(flows.open_paid),
        "late": uncovered and flows.late,
        "term_days": pf.days_of(product.get("term_days")),
        "underlying_term_days": pf.days_of(product.get("underlying_term_days")),
        "term_ratio": pf.fixed(ratio),
        "term_split": split,
        "first_day": beijing_date(window_start),
        "last_day": beijing_date(window_end),
    }
    accounts = flows.accounts if uncovered else ()
    zh, en = _sentences(
        pid, declared, project, lpr, multiple, legal_cap, institution_type, peers, z, robust_z, flows, accounts,
        over_project, over_cap, outlier, uncovered,
    )  # fmt: skip
    return Finding(
        typology=NAME,
        key=f"product:{pid}",
        institution_id=institution_id,
        severity=severity,
        score=score,
        accounts=accounts,
        amount_cents=flows.uncovered if uncovered else 0,
        window_start=window_start,
        window_end=window_end,
        record_ids=flows.record_ids if uncovered else (),
        metrics=metrics,
        thresholds={**cfg, "term_ratio_max": ratio_max_value, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={"product_id": pid},
    )


def _institution_coverage(
    ctx: DetectContext, st: dict[str, Any], institution_id: str, cfg: dict[str, Any]
) -> Finding | None:
    """The payout coverage of the institution's custody accounts as a whole, while some of their
    payouts or repayments cannot be attributed to a product."""
    if not pf.has_unattributed(st):
        return None
    coverage_min = fraction_of(cfg["payout_coverage_min"])
    flows = pf.institution_flows(st)
    if not flows.short(cents_of(cfg["min_payout"]), coverage_min):
        return None
    coverage = flows.coverage
    severity = "high" if coverage < coverage_min / 2 else "medium"
    window_end = flows.last_payout
    window_start = min(flows.first, window_end)
    accounts = flows.accounts
    un = st["un"]
    metrics = {
        "signals": ["payout_coverage"],
        "coverage_basis": "institution",
        "payouts": money(flows.paid_out),
        "payout_count": flows.payouts,
        "repayments": money(flows.repaid),
        "repayment_count": flows.repayments,
        "payout_coverage": pf.fixed(coverage, 8),
        "uncovered_payouts": money(flows.uncovered),
        "unattributed_payouts": money(un["out"]["c"]),
        "unattributed_repayments": money(un["in"]["c"]),
        "products": sorted(st["products"]),
        "late": flows.late,
        "first_day": beijing_date(window_start),
        "last_day": beijing_date(window_end),
    }
    zh, en = _institution_sentences(flows, accounts, beijing_date(window_end))
    return Finding(
        typology=NAME,
        key=f"institution:{institution_id}",
        institution_id=institution_id,
        severity=severity,
        score=score_of(coverage_min - coverage, coverage_min),
        accounts=accounts,
        amount_cents=flows.uncovered,
        window_start=window_start,
        window_end=window_end,
        record_ids=flows.record_ids,
        metrics=metrics,
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={},
    )


def _institution_sentences(flows: pf.Flows, accounts: tuple[str, ...], last: str) -> tuple[str, str]:
    masked_zh, masked_en = "、".join(mask(a) for a in accounts), ", ".join(mask(a) for a in accounts)
    ratio = percent(flows.coverage)
    zh = (
        f"截至{last}，该机构客户资金账户{masked_zh}按指令向投资人兑付{flows.payouts}笔、合计"
        f"{yuan_zh(flows.paid_out)}，而借款人还款仅{flows.repayments}笔、合计{yuan_zh(flows.repaid)}"
        f"（部分记录未标明产品，按账户整体计算），兑付覆盖率{ratio}，{yuan_zh(flows.uncovered)}的兑付没有项目"
        f"回款支撑，涉嫌变相补贴。涉嫌承诺或实际收益显著高于项目回报率或行业水平{cite_zh(RULE)}。"
    )
    en = (
        f"By {last} the institution's customer-fund account(s) {masked_en} paid investors {flows.payouts} "
        f"time(s), {yuan_en(flows.paid_out)} in all, while borrowers repaid {flows.repayments} time(s), "
        f"{yuan_en(flows.repaid)} (some records name no product, so the accounts are judged as a whole): a "
        f"payout coverage of {ratio}, {yuan_en(flows.uncovered)} paid out with no project repayment behind "
        f"it, a suspected hidden subsidy. Suspected actual returns well above the project's level {cite_en(RULE)}."
    )
    return zh, en


def _sentences(
    pid: str,
    declared: Decimal | None,
    project: Decimal | None,
    lpr: Fraction,
    multiple: Fraction,
    legal_cap: Fraction,
    institution_type: str | None,
    peers: Peers,
    z: Fraction | None,
    robust_z: Fraction,
    flows: pf.Flows,
    accounts: tuple[str, ...],
    over_project: bool,
    over_cap: bool,
    outlier: bool,
    uncovered: bool,
) -> tuple[str, str]:
    times = f"{multiple.numerator}" if multiple.denominator == 1 else ratio_text(multiple, 2)
    zh_parts, en_parts = [], []
    if over_project:
        zh_parts.append(f"高于其底层项目回报率{percent(project)}")
        en_parts.append(f"above its underlying project rate of {percent(project)}")
    if over_cap:
        zh_parts.append(
            f"超过一年期LPR {percent(lpr)}的{times}倍即{percent(legal_cap)}的民间借贷司法保护上限"
        )
        en_parts.append(
            f"above the judicial protection cap for private lending of {times} times the one-year LPR "
            f"of {percent(lpr)}, i.e. {percent(legal_cap)}"
        )
    if outlier:
        kind_zh = TYPE_ZH.get(institution_type or "", "同类")
        kind_en = TYPE_EN.get(institution_type or "", "same-type")
        zh_parts.append(
            f"显著高于{kind_zh}类机构{peers.count}个产品收益率的中位数{percent(peers.median)}"
            f"（稳健Z值{ratio_text(z, 2)}，阈值{ratio_text(robust_z, 2)}）"
        )
        en_parts.append(
            f"far above the median of {percent(peers.median)} over the {peers.count} products of "
            f"{kind_en} institutions (robust z {ratio_text(z, 2)}, line {ratio_text(robust_z, 2)})"
        )
    promise_zh = f"产品{pid}承诺年化收益率{percent(declared)}" if declared is not None else f"产品{pid}"
    promise_en = (
        f"Product {pid} promises an annual yield of {percent(declared)}"
        if declared is not None
        else f"Product {pid}"
    )
    zh = promise_zh + ("，" + "，".join(zh_parts) if zh_parts else "")
    en = promise_en + (", " + "; ".join(en_parts) if en_parts else "")
    if uncovered:
        masked_zh = "、".join(mask(a) for a in accounts)
        masked_en = ", ".join(mask(a) for a in accounts)
        last = beijing_date(flows.last_payout)
        coverage = percent(flows.coverage)
        zh += (
            f"；截至{last}，客户资金账户{masked_zh}按指令向该产品投资人兑付{flows.payouts}笔、合计"
            f"{yuan_zh(flows.paid_out)}，而借款人还款仅{flows.repayments}笔、合计{yuan_zh(flows.repaid)}，"
            f"兑付覆盖率{coverage}，{yuan_zh(flows.uncovered)}的兑付没有项目回款支撑，涉嫌变相补贴"
        )
        en += (
            f"; by {last} the customer-fund account(s) {masked_en} paid its investors {flows.payouts} "
            f"time(s), {yuan_en(flows.paid_out)} in all, while borrowers repaid {flows.repayments} time(s), "
            f"{yuan_en(flows.repaid)}: a payout coverage of {coverage}, {yuan_en(flows.uncovered)} paid "
            f"out with no project repayment behind it, a suspected hidden subsidy"
        )
    zh += f"。涉嫌承诺或实际收益显著高于项目回报率或行业水平{cite_zh(RULE)}。"
    en += f". Suspected promised or actual returns well above the project's or the industry's level {cite_en(RULE)}."
    return zh, en
