"""What a `rapid_growth` finding says of a day that grew far above the institution's trend: the
metrics and the Chinese and English sentences, from the signal ``rapid_growth.decide`` returned
(models/detectors/rapid_growth.py holds the rule)."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from models.detectors.common import beijing_date
from models.detectors.context import DetectContext
from models.detectors.wording import (
    cite_en,
    cite_zh,
    mask,
    money,
    ratio_text,
    role_en,
    role_zh,
    yuan_en,
    yuan_zh,
)

if TYPE_CHECKING:
    from models.detectors.rapid_growth import RapidGrowthSignal

RULE = "四(二)4"


def metrics(
    signal: RapidGrowthSignal, entry: dict[str, Any], per_account: list[tuple[str, int]]
) -> dict[str, Any]:
    """The figures of a day that fires (``entry``: the day's figures; ``per_account``: its inflow
    per account, the largest first)."""
    fired = (("inflow", signal.inflow_fires), ("new_investors", signal.new_investors_fire))
    history = zip(signal.history_days, signal.history_inflow_cents, signal.history_new_investors, strict=True)
    return {
        "day": beijing_date(signal.day),
        "signals": [name for name, fires in fired if fires],
        "inflow": money(signal.inflow_cents),
        "inflow_count": entry["in"]["n"],
        "inflow_by_account": {account: money(cents) for account, cents in per_account},
        "baseline_inflow": ratio_text(signal.baseline_inflow_cents / 100, 2),
        "inflow_ratio": ratio_text(signal.inflow_ratio),
        "new_investors": signal.new_investors,
        "baseline_new_investors": ratio_text(signal.baseline_new_investors, 1),
        "new_investors_ratio": ratio_text(signal.new_investors_ratio),
        "new_investors_estimated": signal.new_investors_estimated,
        "sample_level": entry["ls"],
        "late": entry.get("ln", 0) > 0,
        "distinct_payers": len(entry["pay"]) << entry["lv"],
        "growth_ratio": ratio_text(signal.growth_ratio),
        "history_days": len(signal.history_days),
        "history": [{"day": beijing_date(d), "inflow": money(c), "new_investors": n} for d, c, n in history],
    }


def _multiple(value: Fraction) -> str:
    return ratio_text(value, 2)


def _count_text(value: Fraction) -> str:
    """A median of counts: "3" or "2.5"."""
    return str(value.numerator) if value.denominator == 1 else ratio_text(value, 1)


def _inflow_text(signal: RapidGrowthSignal) -> tuple[str, str]:
    """The inflow against its trend, in both languages."""
    baseline = signal.baseline_inflow_cents
    baseline_cents = int(baseline + Fraction(1, 2))  # half up, as ratio_text
    n_days = len(signal.history_days)
    if baseline >= signal.guarded_baseline_inflow_cents:
        ratio = _multiple(signal.inflow_ratio)
        inflow_zh = f"，为此前{n_days}个北京日单日转入中位数{yuan_zh(baseline_cents)}的{ratio}倍"
        inflow_en = (
            f", {ratio} times the median daily inflow of {yuan_en(baseline_cents)} "
            f"over the previous {n_days} Beijing day(s)"
        )
    else:
        inflow_zh = f"，而此前{n_days}个北京日单日转入中位数仅为{yuan_zh(baseline_cents)}"
        inflow_en = (
            f", while the median daily inflow over the previous {n_days} Beijing day(s) was only "
            f"{yuan_en(baseline_cents)}"
        )
    return inflow_zh, inflow_en


def _new_text(signal: RapidGrowthSignal) -> tuple[str, str]:
    """The new investors against their trend, in both languages, when that signal fires."""
    if not signal.new_investors_fire:
        return "", ""
    new, n_days = signal.new_investors, len(signal.history_days)
    about_zh = "约" if signal.new_investors_estimated else ""
    about_en = "about " if signal.new_investors_estimated else ""
    typical = _count_text(signal.baseline_new_investors)
    if signal.baseline_new_investors >= 1:
        ratio = _multiple(signal.new_investors_ratio)
        new_zh = (
            f"；当日新增付款账户{about_zh}{new}个，为此前{n_days}个北京日单日中位数{typical}个的{ratio}倍"
        )
        new_en = (
            f"; {about_en}{new} new payer account(s) paid in that day, {ratio} times the "
            f"median of {typical} a day over the previous {n_days} Beijing day(s)"
        )
    else:
        new_zh = f"；当日新增付款账户{about_zh}{new}个，而此前{n_days}个北京日单日中位数仅为{typical}个"
        new_en = (
            f"; {about_en}{new} new payer account(s) paid in that day, while the median over the "
            f"previous {n_days} Beijing day(s) was only {typical} a day"
        )
    return new_zh, new_en


def sentences(
    signal: RapidGrowthSignal, ctx: DetectContext, accounts: tuple[str, ...], count: int
) -> tuple[str, str]:
    """The Chinese and English sentences of a day that fires (``accounts``: the largest first;
    ``count``: its inflow credits)."""
    date, inflow = beijing_date(signal.day), signal.inflow_cents
    main = accounts[0]
    main_role = ctx.role(main)
    others_zh = f"等{len(accounts)}个账户" if len(accounts) > 1 else ""
    others_en = f" and {len(accounts) - 1} other account(s)" if len(accounts) > 1 else ""
    inflow_zh, inflow_en = _inflow_text(signal)
    new_zh, new_en = _new_text(signal)
    zh = (
        f"{date}（北京时间），该机构{role_zh(main_role)}{mask(main)}{others_zh}收到外部转入资金"
        f"{count}笔、合计{yuan_zh(inflow)}{inflow_zh}{new_zh}。资金规模或投资人数在短时间内"
        f"迅速增长，应立即报告并核查是否涉嫌非法集资{cite_zh(RULE)}。"
    )
    en = (
        f"On {date} (Beijing time) the institution's {role_en(main_role)} {mask(main)}{others_en} "
        f"received {count} payment(s) from outside totalling {yuan_en(inflow)}{inflow_en}"
        f"{new_en}. Money or investors growing rapidly in a short time must be reported at once and "
        f"checked for illegal fund-raising {cite_en(RULE)}."
    )
    return zh, en
