"""备付金/存管资金缺口: the account holds less than it owes customers (DOMAIN.md; 《方案》二(五)
"挪用、占用客户备付金", 二(一)/二(二)/二(四) custody of customer money, 三(三) "特别要做好对客户资金的
保护工作").

Signal: a balance snapshot (``BalanceRecord``) with ``customer_liabilities_cents`` and
``balance_cents < customer_liabilities_cents``. Snapshots without liabilities say nothing about a
shortfall and are ignored. Gap = liabilities - balance, gap ratio = gap / liabilities (a gap on
zero liabilities, i.e. a negative balance owing nobody, has no ratio and is rated critical).
Severity: below ``gap_ratio_medium`` low; then medium, high at ``gap_ratio_high``, critical at
``gap_ratio_critical``.

The latest snapshot by event time (``as_of``, ties broken by the larger record id) is the
account's position: an older snapshot arriving later does not overwrite it, and a newer snapshot
showing the gap closed means no finding for it. An older snapshot that arrives after the position
and shows a gap the position does not is still judged: the gap was there at its time, and its
finding says ``late: true`` (the alert raised had it come in order); while the position itself
shows a gap, that open alert stands for it. One open shortfall per account: key
``<account>``. Redelivery of the latest snapshot re-emits the same finding.

State (per account): the latest snapshot with liabilities: ``as_of``, ``record_id``,
``balance``, ``liabilities`` (cents). Constant size.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from models.detectors.common import beijing_iso, beijing_time, fraction_of, own_cny_records, score_of
from models.detectors.context import DetectContext
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
from models.findings import Finding
from schemas.messages import BalanceRecord, TxnRecord

NAME = "reserve_shortfall"
VERSION = "1"

DEFAULTS = {"gap_ratio_medium": "0.01", "gap_ratio_high": "0.05", "gap_ratio_critical": "0.20"}
RULE_BY_TYPE = {
    "p2p_lending": "二(一)",
    "equity_crowdfunding": "二(二)",
    "asset_management": "二(四)",
    "payment": "二(五)",
}
DEFAULT_RULE = "三(三)"


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's snapshots of one account; a finding when the latest snapshot (this
    message's newest, if it is at least as new as the one in ``state``) shows a gap."""
    if ctx.role(account_id) is None:
        return {}, []
    st = dict(state) if state else {}
    snapshots = [
        r
        for r in own_cny_records(account_id, records)
        if isinstance(r, BalanceRecord) and r.customer_liabilities_cents is not None
    ]
    if not snapshots:
        return st, []
    newest = max(snapshots, key=lambda r: (r.as_of, r.record_id))
    if st and (newest.as_of, newest.record_id) < (st["as_of"], st["record_id"]):
        return st, _late_gap(ctx, st, account_id, snapshots)
    st = {
        "as_of": newest.as_of,
        "record_id": newest.record_id,
        "balance": newest.balance_cents,
        "liabilities": newest.customer_liabilities_cents,
    }
    finding = _evaluate(ctx, st, account_id)
    return st, [finding] if finding is not None else []


def _late_gap(
    ctx: DetectContext, st: dict[str, Any], account_id: str, snapshots: list[BalanceRecord]
) -> list[Finding]:
    """Snapshots older than the position: the newest of them showing a gap is judged, when the
    position shows none (an older snapshot never overwrites the position)."""
    if st["balance"] < st["liabilities"]:
        return []  # the open shortfall's alert stands for the older ones
    short = [r for r in snapshots if r.balance_cents < r.customer_liabilities_cents]
    if not short:
        return []
    old = max(short, key=lambda r: (r.as_of, r.record_id))
    then = {
        "as_of": old.as_of,
        "record_id": old.record_id,
        "balance": old.balance_cents,
        "liabilities": old.customer_liabilities_cents,
    }
    finding = _evaluate(ctx, then, account_id, late=True)
    return [finding] if finding is not None else []


def current(ctx: DetectContext, state: dict[str, Any] | None, account_id: str) -> list[Finding]:
    """The open shortfall of the account's latest snapshot, if any."""
    if not state or ctx.role(account_id) is None:
        return []
    finding = _evaluate(ctx, state, account_id)
    return [finding] if finding is not None else []


def _evaluate(ctx: DetectContext, st: dict[str, Any], account_id: str, late: bool = False) -> Finding | None:
    balance, liabilities = st["balance"], st["liabilities"]
    if balance >= liabilities:
        return None
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    medium = fraction_of(cfg["gap_ratio_medium"])
    high = fraction_of(cfg["gap_ratio_high"])
    critical = fraction_of(cfg["gap_ratio_critical"])
    gap = liabilities - balance
    ratio = Fraction(gap, liabilities) if liabilities > 0 else None
    if ratio is None or ratio >= critical:
        severity = "critical"
    elif ratio >= high:
        severity = "high"
    elif ratio >= medium:
        severity = "medium"
    else:
        severity = "low"
    role = ctx.role(account_id)
    rule = RULE_BY_TYPE.get(ctx.institution_type(account_id) or "", DEFAULT_RULE)
    when = beijing_time(st["as_of"])
    masked = mask(account_id)
    share_zh = f"（缺口比例{percent(ratio)}）" if ratio is not None else ""
    share_en = f", {percent(ratio)} of what it owes" if ratio is not None else ""
    return Finding(
        typology=NAME,
        key=account_id,
        institution_id=ctx.institution_id(account_id) or "",
        severity=severity,
        score=1.0 if ratio is None else score_of(ratio, critical),
        accounts=(account_id,),
        amount_cents=gap,
        window_start=st["as_of"],
        window_end=st["as_of"],
        record_ids=(st["record_id"],),
        metrics={
            "as_of": beijing_iso(st["as_of"]),
            "balance": money(balance),
            "customer_liabilities": money(liabilities),
            "gap": money(gap),
            "gap_ratio": ratio_text(ratio) if ratio is not None else None,
            "late": late,
        },
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=(
            f"{role_zh(role)}{masked}截至{when}余额{yuan_zh(balance)}，低于应付客户资金{yuan_zh(liabilities)}，"
            f"缺口{yuan_zh(gap)}{share_zh}，客户资金存在缺口{cite_zh(rule)}。"
        ),
        explanation_en=(
            f"At {when} Beijing time the {role_en(role)} {masked} held {yuan_en(balance)}, less than the "
            f"{yuan_en(liabilities)} it owes customers, a shortfall of {yuan_en(gap)}{share_en}: customer money "
            f"is not fully covered {cite_en(rule)}."
        ),
        rule=rule,
        detector_version=f"{NAME}/{VERSION}",
        extra={"account_role": role, "region": ctx.region(account_id)},
    )
