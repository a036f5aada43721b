"""What a `maturity_mismatch` finding says: its metrics and the Chinese and English sentences of a
split term and, with a rollover, of the payouts no repayment covered while new investors paid in
(models/detectors/maturity_mismatch.py holds the rule)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from models.detectors import product_figures as figures
from models.detectors.common import beijing_date
from models.detectors.wording import cite_en, cite_zh, mask, percent, yuan_en, yuan_zh

if TYPE_CHECKING:
    from models.detectors.maturity_mismatch import MaturityMismatchSignal

RULE = "二(一)"


def metrics(signal: MaturityMismatchSignal) -> dict[str, Any]:
    flows, rollover = signal.flows, signal.rollover
    term, underlying = signal.term_days, signal.underlying_term_days
    return {
        "product_id": signal.product_id,
        "signals": ["term_split", "rollover"] if rollover else ["term_split"],
        "term_days": term,
        "underlying_term_days": underlying,
        "term_ratio": figures.fixed(signal.term_ratio),
        "terms_per_project": math.ceil(Fraction(underlying, term)),
        **figures.coverage_metrics(flows, signal.coverage_judged),
        "rollover": rollover,
        "late": rollover and flows.late,
        "first_day": beijing_date(signal.window_start),
        "last_day": beijing_date(signal.window_end),
    }


def rollover_clauses(
    flows: figures.Flows, first_day: int, last_day: int, inflow: int, inflow_count: int
) -> tuple[str, str]:
    coverage = flows.coverage
    masked_zh = "、".join(mask(a) for a in flows.accounts)
    masked_en = ", ".join(mask(a) for a in flows.accounts)
    if first_day == last_day:
        span_zh, span_en = beijing_date(last_day), f"on {beijing_date(last_day)}"
    else:
        span_zh = f"{beijing_date(first_day)}至{beijing_date(last_day)}"
        span_en = f"from {beijing_date(first_day)} to {beijing_date(last_day)}"
    rollover_zh = (
        f"；客户资金账户{masked_zh}已按指令向该产品投资人兑付{flows.payouts}笔、合计{yuan_zh(flows.paid_out)}，"
        f"而借款人还款仅{flows.repayments}笔、合计{yuan_zh(flows.repaid)}（覆盖率{percent(coverage)}），"
        f"{yuan_zh(flows.uncovered)}的兑付没有项目回款支撑；{span_zh}该机构存管账户共收到投资人资金"
        f"{inflow_count}笔、合计{yuan_zh(inflow)}，疑似以后期投资人资金兑付前期投资人"
    )
    rollover_en = (
        f"; the customer-fund account(s) {masked_en} paid its investors {flows.payouts} time(s), "
        f"{yuan_en(flows.paid_out)} in all, while borrowers repaid {flows.repayments} time(s), "
        f"{yuan_en(flows.repaid)} (a coverage of {percent(coverage)}), so {yuan_en(flows.uncovered)} "
        f"was paid with no project repayment behind it, while {span_en} the institution's custody "
        f"accounts took in {inflow_count} investor payment(s) totalling {yuan_en(inflow)}: earlier "
        f"investors suspected to be paid with later investors' money"
    )
    return rollover_zh, rollover_en


def sentences(
    signal: MaturityMismatchSignal, terms_per_project: int, rollover_zh: str, rollover_en: str
) -> tuple[str, str]:
    pid, term, underlying = signal.product_id, signal.term_days, signal.underlying_term_days
    ratio, ratio_max = signal.term_ratio, signal.term_ratio_max
    zh = (
        f"产品{pid}期限{term}天，而其底层项目期限{underlying}天，产品期限仅为项目期限的{percent(ratio)}"
        f"（阈值{percent(ratio_max)}），一个项目需由约{terms_per_project}期产品接续募集"
        f"{rollover_zh}。涉嫌期限错配、期限分拆{cite_zh(RULE)}。"
    )
    en = (
        f"Product {pid} runs for {term} days while its underlying project runs for {underlying} days, "
        f"{percent(ratio)} of it (line {percent(ratio_max)}), so about {terms_per_project} "
        f"successive issues of the product fund one project{rollover_en}. Suspected maturity mismatch "
        f"and term splitting {cite_en(RULE)}."
    )
    return zh, en
