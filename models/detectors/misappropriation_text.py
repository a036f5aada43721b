"""What a `misappropriation` finding says of a custody account's day: the metrics and the Chinese
and English clauses of its uninstructed debits and its fees beyond the contractual share, from the
signal ``misappropriation.decide`` returned (models/detectors/misappropriation.py holds the rule
and adds the closing citation)."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from models.detectors.common import is_late
from models.detectors.wording import money, percent, ratio_text, role_en, role_zh, yuan_en, yuan_zh

if TYPE_CHECKING:
    from models.detectors.misappropriation import FeeWindow, MisappropriationSignal


def metrics(signal: MisappropriationSignal, date: str, evidence: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of a day that fires (``evidence``: the buckets behind it)."""
    metrics: dict[str, Any] = {"day": date}
    unins, fees = signal.uninstructed, signal.fees
    if unins is not None:
        metrics.update(
            uninstructed_count=unins.count,
            uninstructed_total=money(unins.total_cents),
            uninstructed_to_own=money(unins.to_own_cents),
            uninstructed_to_related=money(unins.to_related_cents),
            uninstructed_to_other=money(unins.to_other_cents),
            largest_uninstructed=money(unins.largest_cents),
        )
    if fees is not None:
        spent, inflow = fees.fees_to_own_cents, fees.inflow_cents
        metrics.update(
            fee_window_days=fees.window_days,
            fees_to_own_in_window=money(spent),
            inflow_in_window=money(inflow),
            fee_share=ratio_text(Fraction(spent, inflow), 8) if inflow else None,
            fee_excess=money(fees.excess_cents),
        )
    metrics["late"] = any(is_late(b) for b in evidence)
    return metrics


def sentences(signal: MisappropriationSignal, role: str, masked: str, date: str) -> tuple[str, str]:
    """The findings' clauses, joined, without the closing citation (lower-case English start)."""
    parts_zh: list[str] = []
    parts_en: list[str] = []
    unins, fees = signal.uninstructed, signal.fees
    if unins is not None:
        own, related = unins.to_own_cents, unins.to_related_cents
        where_zh, where_en = [], []
        if own:
            where_zh.append(f"划入本机构自有账户{yuan_zh(own)}")
            where_en.append(f"{yuan_en(own)} to the institution's own accounts")
        if related:
            where_zh.append(f"划入关联方账户{yuan_zh(related)}")
            where_en.append(f"{yuan_en(related)} to related-party accounts")
        parts_zh.append(
            f"{date}，{role_zh(role)}{masked}发生{unins.count}笔无客户或合同指令的资金划出，合计"
            f"{yuan_zh(unins.total_cents)}" + (f"（其中{'、'.join(where_zh)}）" if where_zh else "")
        )
        parts_en.append(
            f"on {date} the {role_en(role)} {masked} made {unins.count} debit(s) without a customer "
            f"or contract instruction totalling {yuan_en(unins.total_cents)}"
            + (f" ({' and '.join(where_en)})" if where_en else "")
        )
    if fees is not None and fees.excess_cents > 0:
        zh, en = _fee_clauses(fees, role, masked, date, first_clause=not parts_zh)
        parts_zh.append(zh)
        parts_en.append(en)
    return "；".join(parts_zh), "; ".join(parts_en)


def _fee_clauses(fees: FeeWindow, role: str, masked: str, date: str, first_clause: bool) -> tuple[str, str]:
    """The fees paid to the institution's own accounts beyond the contractual share."""
    spent, inflow, excess, share_max = (
        fees.fees_to_own_cents,
        fees.inflow_cents,
        fees.excess_cents,
        fees.fee_share_max,
    )
    window_days = fees.window_days
    share = Fraction(spent, inflow) if inflow else None
    share_text = percent(share) if share is not None else ""
    if share is not None and share_text == percent(share_max):
        share_text = percent(share, 6)  # just above the limit: show the digits that differ
    share_zh = f"占同期流入{yuan_zh(inflow)}的{share_text}" if inflow else "而同期无资金流入"
    share_en = f"{share_text} of its inflow of {yuan_en(inflow)}" if inflow else "with no inflow"
    subject_zh = f"{role_zh(role)}{masked}" if first_clause else ""
    subject_en = f"the {role_en(role)} {masked}" if first_clause else "it"
    zh = (
        f"截至{date}近{window_days}日{subject_zh}按指令划入本机构自有账户合计{yuan_zh(spent)}，"
        f"{share_zh}，超过约定费用比例上限{percent(share_max)}，超出{yuan_zh(excess)}"
    )
    en = (
        f"in the {window_days} days to {date} {subject_en} paid {yuan_en(spent)} to the "
        f"institution's own accounts on instruction, {share_en}, above the contractual fee "
        f"share of {percent(share_max)} by {yuan_en(excess)}"
    )
    return zh, en
