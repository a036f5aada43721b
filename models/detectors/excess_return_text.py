"""What an `excess_return` finding says: the metrics of a product's or the institution's payout
coverage and the Chinese and English sentences, from the signal ``excess_return.decide`` or
``decide_institution`` returned (models/detectors/excess_return.py holds the rule)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.detectors import product_figures as figures
from models.detectors.common import beijing_date
from models.detectors.wording import cite_en, cite_zh, mask, money, percent, ratio_text, yuan_en, yuan_zh

if TYPE_CHECKING:
    from models.detectors.excess_return import ExcessReturnSignal, InstitutionCoverageSignal
    from models.detectors.peer_yields import Peers

RULE = "三(四)"


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


def metrics(signal: ExcessReturnSignal, institution_type: str | None, peers: Peers) -> dict[str, Any]:
    """The figures of a product's finding."""
    flows, uncovered = signal.flows, signal.payout_coverage_short
    return {
        "product_id": signal.product_id,
        "signals": list(signal.signals),
        "declared_annual_yield": figures.fixed(signal.declared_annual_yield),
        "underlying_project_rate": figures.fixed(signal.underlying_project_rate),
        "yield_over_project_rate": signal.yield_over_project_rate,
        "legal_cap": figures.fixed(signal.legal_cap),
        "yield_over_legal_cap": signal.yield_over_legal_cap,
        "peer_type": institution_type,
        "peer_count": peers.count,
        "peer_median": figures.fixed(peers.median),
        "peer_mad": figures.fixed(peers.mad),
        "robust_z": figures.fixed(signal.peer_z, 4),
        "peer_outlier": signal.peer_outlier,
        **figures.coverage_metrics(flows, signal.coverage_judged),
        "payout_coverage_short": uncovered,
        "late": uncovered and flows.late,
        "term_days": signal.term_days,
        "underlying_term_days": signal.underlying_term_days,
        "term_ratio": figures.fixed(signal.term_ratio),
        "term_split": signal.term_split,
        "first_day": beijing_date(signal.window_start),
        "last_day": beijing_date(signal.window_end),
    }


def institution_metrics(signal: InstitutionCoverageSignal, st: dict[str, Any]) -> dict[str, Any]:
    """The figures of the institution's finding, with the flows no product could be named for."""
    flows = signal.flows
    un = st["un"]
    return {
        "signals": ["payout_coverage"],
        "coverage_basis": "institution",
        "payouts": money(flows.paid_out),
        "payout_count": flows.payouts,
        "repayments": money(flows.repaid),
        "repayment_count": flows.repayments,
        "payout_coverage": figures.fixed(flows.coverage, 8),
        "uncovered_payouts": money(flows.uncovered),
        "unattributed_payouts": money(un["out"]["c"]),
        "unattributed_repayments": money(un["in"]["c"]),
        "products": sorted(st["products"]),
        "late": flows.late,
        "first_day": beijing_date(signal.window_start),
        "last_day": beijing_date(signal.window_end),
    }


def institution_sentences(flows: figures.Flows, accounts: tuple[str, ...], last: str) -> tuple[str, str]:
    """The Chinese and English sentences of the institution's payouts beyond its repayments."""
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


def sentences(
    signal: ExcessReturnSignal, institution_type: str | None, peers: Peers, accounts: tuple[str, ...]
) -> tuple[str, str]:
    """The Chinese and English sentences of a product that fires: the lines its yield crossed and,
    when its payouts are short of repayments, by how much."""
    pid, declared = signal.product_id, signal.declared_annual_yield
    zh_parts, en_parts = _rate_clauses(signal, institution_type, peers)
    promise_zh = f"产品{pid}承诺年化收益率{percent(declared)}" if declared is not None else f"产品{pid}"
    promise_en = (
        f"Product {pid} promises an annual yield of {percent(declared)}"
        if declared is not None
        else f"Product {pid}"
    )
    zh = promise_zh + ("，" + "，".join(zh_parts) if zh_parts else "")
    en = promise_en + (", " + "; ".join(en_parts) if en_parts else "")
    if signal.payout_coverage_short:
        coverage_zh, coverage_en = _coverage_clauses(signal.flows, accounts)
        zh += coverage_zh
        en += coverage_en
    zh += f"。涉嫌承诺或实际收益显著高于项目回报率或行业水平{cite_zh(RULE)}。"
    en += f". Suspected promised or actual returns well above the project's or the industry's level {cite_en(RULE)}."
    return zh, en


def _rate_clauses(
    signal: ExcessReturnSignal, institution_type: str | None, peers: Peers
) -> tuple[list[str], list[str]]:
    """What the promised yield is above: the project rate, the legal cap, the peers."""
    project, lpr, multiple, legal_cap = (
        signal.underlying_project_rate, signal.lpr_one_year, signal.lpr_multiple, signal.legal_cap
    )  # fmt: skip
    z, robust_z = signal.peer_z, signal.peer_z_line
    times = f"{multiple.numerator}" if multiple.denominator == 1 else ratio_text(multiple, 2)
    zh_parts, en_parts = [], []
    if signal.yield_over_project_rate:
        zh_parts.append(f"高于其底层项目回报率{percent(project)}")
        en_parts.append(f"above its underlying project rate of {percent(project)}")
    if signal.yield_over_legal_cap:
        zh_parts.append(
            f"超过一年期LPR {percent(lpr)}的{times}倍即{percent(legal_cap)}的民间借贷司法保护上限"
        )
        en_parts.append(
            f"above the judicial protection cap for private lending of {times} times the one-year LPR "
            f"of {percent(lpr)}, i.e. {percent(legal_cap)}"
        )
    if signal.peer_outlier:
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
    return zh_parts, en_parts


def _coverage_clauses(flows: figures.Flows, accounts: tuple[str, ...]) -> tuple[str, str]:
    """The product's payouts beyond its repayments (signal 4)."""
    masked_zh = "、".join(mask(a) for a in accounts)
    masked_en = ", ".join(mask(a) for a in accounts)
    last = beijing_date(flows.last_payout)
    coverage = percent(flows.coverage)
    zh = (
        f"；截至{last}，客户资金账户{masked_zh}按指令向该产品投资人兑付{flows.payouts}笔、合计"
        f"{yuan_zh(flows.paid_out)}，而借款人还款仅{flows.repayments}笔、合计{yuan_zh(flows.repaid)}，"
        f"兑付覆盖率{coverage}，{yuan_zh(flows.uncovered)}的兑付没有项目回款支撑，涉嫌变相补贴"
    )
    en = (
        f"; by {last} the customer-fund account(s) {masked_en} paid its investors {flows.payouts} "
        f"time(s), {yuan_en(flows.paid_out)} in all, while borrowers repaid {flows.repayments} time(s), "
        f"{yuan_en(flows.repaid)}: a payout coverage of {coverage}, {yuan_en(flows.uncovered)} paid "
        f"out with no project repayment behind it, a suspected hidden subsidy"
    )
    return zh, en
