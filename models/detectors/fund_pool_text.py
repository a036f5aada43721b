"""What a `fund_pool` finding says of the window that fired: the metrics and the Chinese and English
sentences, from the signal ``fund_pool.decide`` returned (models/detectors/fund_pool.py holds the
rule)."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from models.detectors.common import beijing_date, is_late
from models.detectors.wording import (
    cite_en,
    cite_zh,
    mask,
    money,
    percent,
    ratio_text,
    role_en,
    role_zh,
    yuan_en,
    yuan_zh,
)
from models.windows import DAY

if TYPE_CHECKING:
    from models.detectors.fund_pool import FundPoolSignal

RULE = "二(一)"  # P2P: 设立资金池


def metrics(
    signal: FundPoolSignal, period: int, n_credits: int, n_debits: int, buckets: list[dict[str, Any]]
) -> dict[str, Any]:
    """The figures of a pool's finding (``buckets``: the window's non-empty credit and debit days)."""
    first, day = signal.window_first_day, signal.window_last_day
    credits, debits, closing = signal.credit_cents, signal.debit_cents, signal.closing_balance_cents
    return {
        "period": beijing_date(period),
        "window_first_day": beijing_date(first),
        "window_last_day": beijing_date(day),
        "window_days": (day - first) // DAY + 1,
        "distinct_in": signal.distinct_in,
        "distinct_in_investor": signal.distinct_in_investor,
        "distinct_in_unknown": signal.distinct_in_unknown,
        "distinct_in_capped": signal.distinct_in_capped,
        "distinct_out": signal.distinct_out,
        "distinct_out_borrower": signal.distinct_out_borrower,
        "distinct_out_investor": signal.distinct_out_investor,
        "distinct_out_unknown": signal.distinct_out_unknown,
        "distinct_out_capped": signal.distinct_out_capped,
        "credits": money(credits),
        "credit_count": n_credits,
        "debits": money(debits),
        "debit_count": n_debits,
        "passed_through": money(signal.passed_through_cents),
        "pass_through": ratio_text(Fraction(debits, credits), 8),
        "closing_balance": money(closing),
        "end_balance_source": signal.end_balance_source,
        "end_balance_ratio": ratio_text(Fraction(closing, credits), 8),
        "late": any(is_late(b) for b in buckets),
    }


def _dwell(signal: FundPoolSignal) -> tuple[str, str]:
    """The fourth line's figure in both languages, saying how the closing balance was known."""
    end_date, closing = beijing_date(signal.window_last_day), signal.closing_balance_cents
    end_ratio = Fraction(closing, signal.credit_cents)
    if signal.end_balance_source == "balance":
        dwell_zh = f"{end_date}日终余额{yuan_zh(closing)}，为期间转入资金的{percent(end_ratio)}"
        dwell_en = (
            f"its balance at the end of {end_date} was {yuan_en(closing)}, {percent(end_ratio)} of the inflow"
        )
    elif signal.end_balance_source == "balance_and_flows":
        dwell_zh = f"未报送{end_date}日终余额，按此前最近一次余额加其后收支推算为{yuan_zh(closing)}，为期间转入资金的{percent(end_ratio)}"
        dwell_en = (
            f"no balance was reported for {end_date}, so its closing balance, estimated from the last "
            f"balance reported before it and the money in and out since, was {yuan_en(closing)}, "
            f"{percent(end_ratio)} of the inflow"
        )
    else:
        dwell_zh = f"未报送{end_date}日终余额，按期间净流入估算为{yuan_zh(closing)}，为期间转入资金的{percent(end_ratio)}"
        dwell_en = (
            f"no balance was reported for {end_date}, so the net inflow over the window, {yuan_en(closing)} "
            f"or {percent(end_ratio)} of the inflow, stands in for it as an estimate"
        )
    return dwell_zh, dwell_en


def sentences(
    signal: FundPoolSignal, account_id: str, role: str, n_credits: int, n_debits: int
) -> tuple[str, str]:
    """The Chinese and English sentences of a pool."""
    first, day = signal.window_first_day, signal.window_last_day
    window_days = (day - first) // DAY + 1
    credits, debits = signal.credit_cents, signal.debit_cents
    distinct_in, distinct_out = signal.distinct_in, signal.distinct_out
    unknown_in = signal.distinct_in_unknown
    pass_through = Fraction(debits, credits)
    start_date, end_date = beijing_date(first), beijing_date(day)
    masked = mask(account_id)
    span_zh = start_date if window_days == 1 else f"{start_date}至{end_date}"
    span_en = f"On {start_date}" if window_days == 1 else f"From {start_date} to {end_date}"
    in_zh = f"至少{distinct_in}" if signal.distinct_in_capped else str(distinct_in)
    in_en = f"at least {distinct_in}" if signal.distinct_in_capped else str(distinct_in)
    out_zh = f"至少{distinct_out}" if signal.distinct_out_capped else str(distinct_out)
    out_en = f"at least {distinct_out}" if signal.distinct_out_capped else str(distinct_out)
    unknown_zh = f"（其中{unknown_in}个未在参考数据中登记）" if unknown_in else ""
    unknown_en = f" ({unknown_in} of them not in the reference data)" if unknown_in else ""
    dwell_zh, dwell_en = _dwell(signal)
    zh = (
        f"{role_zh(role)}{masked}在{span_zh}（{window_days}个北京日）内有{in_zh}个投资人账户{unknown_zh}"
        f"向其转入资金；期间共转入{n_credits}笔、合计{yuan_zh(credits)}，共转出{n_debits}笔、合计"
        f"{yuan_zh(debits)}，转出为转入的{percent(pass_through)}，收款方中有{out_zh}个借款人或投资人账户；"
        f"{dwell_zh}。资金从众多投资人归集后快进快出、不在账户沉淀，涉嫌设立资金池{cite_zh(RULE)}。"
    )
    en = (
        f"{span_en} ({window_days} Beijing day(s)) {in_en} investor account(s){unknown_en} paid into "
        f"the {role_en(role)} {masked}; in all it received {n_credits} payment(s) totalling "
        f"{yuan_en(credits)} and made {n_debits} payment(s) totalling {yuan_en(debits)}, "
        f"{percent(pass_through)} of what came in, {out_en} borrower or investor account(s) among the "
        f"payees; {dwell_en}. Money collected from many investors passes straight through without "
        f"staying: suspected fund pool {cite_en(RULE)}."
    )
    return zh, en
