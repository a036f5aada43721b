"""挪用、占用客户资金/备付金: customer money leaving a custody or reserve account for the
institution's own use (DOMAIN.md; 《方案》二(一) P2P "挪用或占用客户资金", 二(二) crowdfunding,
二(四) asset management "侵占、挪用投资者资金", 二(五) payment "挪用、占用客户备付金"; custody
banks' supervision of these accounts: 三(三)).

Watched accounts: role ``customer_custody`` or ``payment_reserve``. Two signals, one finding per
account and Beijing day (key ``<account>:<YYYY-MM-DD>``):

1. Uninstructed debit: a debit (``credit`` false) with no ``instruction_id``, whatever the
   destination. Severity by the day's uninstructed total: medium; ``high_amount`` or more: high;
   ``critical_amount`` or more: critical. At least high when any of it went to the institution's
   own operating accounts or to a related party's account; one level up when the day holds
   ``REPEAT_BUMP`` uninstructed debits or more.
2. Fees beyond the contractual level: on a day D with an instructed debit to an own_operating
   account of the same institution, the instructed debits to own accounts over the
   ``fee_window_days`` Beijing days ending with D exceed ``fee_share_max`` x the account's inflow
   (credits) over the same days. Exactly at the share is allowed. Severity by the excess:
   medium, high, critical at ``high_amount`` / ``critical_amount``.

Not this typology: an instructed debit to a related party (``self_financing``); an instructed
debit to anyone else (a loan, a repayment, a withdrawal, a settlement).

The finding's ``amount_cents`` is the day's uninstructed total plus the fee excess.

State (per account): ``wm`` the event-time watermark; ``uninstructed`` day buckets (dropped once
their day is sealed); ``fees`` and ``inflow`` day buckets, kept for ``fee_window_days`` before the
oldest open day (their record ids only while the day is open; inflow keeps no evidence list).
Bounded by about ``fee_window_days + 3`` buckets of sums plus the ids of three open days.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from models.detectors.common import (
    add,
    advance,
    at_least,
    beijing_date,
    bucket_in,
    bump,
    cents_of,
    cite_en,
    cite_zh,
    clone,
    fraction_of,
    is_expired,
    is_late,
    is_sealed,
    mask,
    money,
    most_severe,
    own_cny_records,
    percent,
    ratio_text,
    record_ids,
    role_en,
    role_zh,
    score_of,
    seal,
    severity_by_amount,
    top_entries,
    yuan_en,
    yuan_zh,
)
from models.detectors.context import CUSTODY_ROLES, DetectContext
from models.findings import Finding
from models.windows import DAY, beijing_day_start
from schemas.messages import BalanceRecord, TxnRecord

NAME = "misappropriation"
VERSION = "1"
REPEAT_BUMP = 3  # uninstructed debits in one day from which severity goes one level up

DEFAULTS = {
    "fee_share_max": "0.05",
    "fee_window_days": 30,
    "high_amount": "100000.00",
    "critical_amount": "1000000.00",
}
RULE_BY_TYPE = {
    "p2p_lending": "二(一)",
    "equity_crowdfunding": "二(二)",
    "asset_management": "二(四)",
    "payment": "二(五)",
}
DEFAULT_RULE = "三(三)"


def empty_state() -> dict[str, Any]:
    return {"wm": None, "uninstructed": {}, "fees": {}, "inflow": {}}


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one account; return the new state and the findings of every
    day the message touched (re-emitted with unchanged figures when the records were seen before,
    so a redelivered message re-sends the same alerts). ``msg_id`` is not needed: replays are
    recognised by record id."""
    role = ctx.role(account_id)
    if role not in CUSTODY_ROLES:
        return {}, []
    institution_id = ctx.institution_id(account_id)
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    window_days = int(cfg["fee_window_days"])
    st = clone(state) or empty_state()
    wm = st["wm"]
    mine = own_cny_records(account_id, records)

    touched: set[int] = set()  # days whose finding is re-evaluated
    fee_moves: set[int] = set()  # days whose records change the fee windows holding them
    for record in mine:
        if not isinstance(record, TxnRecord):
            continue
        day = beijing_day_start(record.booked_at)
        rid, ts, cents = record.record_id, record.booked_at, record.amount_cents
        late = is_sealed(ts, wm)  # still judged: against the day's figures kept (common.LATE_KEEP)
        if record.credit:
            add(bucket_in(st["inflow"], day), rid, ts, cents, top=False, late=late)
            fee_moves.add(day)
        elif not record.instruction_id:
            destination = ctx.destination(institution_id, record.counterparty_account)
            add(bucket_in(st["uninstructed"], day), rid, ts, cents, tag=destination, late=late)
            touched.add(day)
        elif ctx.destination(institution_id, record.counterparty_account) == "own":
            add(bucket_in(st["fees"], day), rid, ts, cents, tag="own", late=late)
            fee_moves.add(day)
    st["wm"] = wm = advance(wm, mine, ctx.event_time_ceiling)
    for moved in fee_moves:
        for key in st["fees"]:
            if moved <= int(key) < moved + window_days * DAY:
                touched.add(int(key))

    findings = []
    for day in sorted(touched):
        finding = _evaluate(ctx, st, account_id, role, cfg, day)
        if finding is not None:
            findings.append(finding)
    _prune(st, wm, window_days)
    return st, findings


def current(ctx: DetectContext, state: dict[str, Any] | None, account_id: str) -> list[Finding]:
    """The findings of every day still open in ``state`` (for evaluation and tests)."""
    role = ctx.role(account_id)
    if not state or role not in CUSTODY_ROLES:
        return []
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    days = {int(k) for k in (*state["uninstructed"], *state["fees"])}
    open_days = sorted(day for day in days if not is_sealed(day, state["wm"]))
    findings = (_evaluate(ctx, state, account_id, role, cfg, day) for day in open_days)
    return [f for f in findings if f is not None]


def _prune(st: dict[str, Any], wm: int | None, window_days: int) -> None:
    # a sealed day's figures stay LATE_KEEP longer, for late records
    st["uninstructed"] = {k: b for k, b in st["uninstructed"].items() if not is_expired(int(k), wm)}
    # a fee or inflow day counts in the windows of the following ``window_days`` days; keep it
    # while any of those is still kept
    reach = (window_days - 1) * DAY
    for name in ("fees", "inflow"):
        st[name] = {k: b for k, b in st[name].items() if not is_expired(int(k) + reach, wm)}
    for name in ("uninstructed", "fees", "inflow"):
        for bucket in st[name].values():
            seal(bucket, wm)


def _evaluate(
    ctx: DetectContext, st: dict[str, Any], account_id: str, role: str, cfg: dict[str, Any], day: int
) -> Finding | None:
    high, critical = cents_of(cfg["high_amount"]), cents_of(cfg["critical_amount"])
    window_days = int(cfg["fee_window_days"])
    share_max = fraction_of(cfg["fee_share_max"])
    rule = RULE_BY_TYPE.get(ctx.institution_type(account_id) or "", DEFAULT_RULE)
    date = beijing_date(day)
    masked = mask(account_id)

    metrics: dict[str, Any] = {"day": date}
    severities: list[str] = []
    amount = 0
    evidence: list[dict[str, Any]] = []
    window_start: int | None = None
    window_end: int | None = None
    parts_zh: list[str] = []
    parts_en: list[str] = []

    unins = st["uninstructed"].get(str(day))
    if unins is not None and unins["n"] > 0:
        by = unins["x"]
        own, related = by.get("own", 0), by.get("related", 0)
        largest = top_entries([unins], 1)
        metrics.update(
            uninstructed_count=unins["n"],
            uninstructed_total=money(unins["c"]),
            uninstructed_to_own=money(own),
            uninstructed_to_related=money(related),
            uninstructed_to_other=money(by.get("other", 0)),
            largest_uninstructed=money(largest[0][0] if largest else 0),
        )
        severity = severity_by_amount(unins["c"], high, critical)
        if own or related:
            severity = at_least(severity, "high")
        if unins["n"] >= REPEAT_BUMP:
            severity = bump(severity)
        severities.append(severity)
        amount += unins["c"]
        evidence.append(unins)
        window_start, window_end = unins["t0"], unins["t1"]
        where_zh, where_en = [], []
        if own:
            where_zh.append(f"划入本机构自有账户{yuan_zh(own)}")
            where_en.append(f"{yuan_en(own)} to the institution's own accounts")
        if related:
            where_zh.append(f"划入关联方账户{yuan_zh(related)}")
            where_en.append(f"{yuan_en(related)} to related-party accounts")
        parts_zh.append(
            f"{date}，{role_zh(role)}{masked}发生{unins['n']}笔无客户或合同指令的资金划出，合计"
            f"{yuan_zh(unins['c'])}" + (f"（其中{'、'.join(where_zh)}）" if where_zh else "")
        )
        parts_en.append(
            f"on {date} the {role_en(role)} {masked} made {unins['n']} debit(s) without a customer "
            f"or contract instruction totalling {yuan_en(unins['c'])}"
            + (f" ({' and '.join(where_en)})" if where_en else "")
        )

    if str(day) in st["fees"]:
        first = day - (window_days - 1) * DAY
        fee_buckets = [b for k, b in st["fees"].items() if first <= int(k) <= day]
        fees = sum(b["c"] for b in fee_buckets)
        inflow = sum(b["c"] for k, b in st["inflow"].items() if first <= int(k) <= day)
        allowed = share_max.numerator * inflow // share_max.denominator  # floor(share x inflow)
        excess = fees - allowed if fees * share_max.denominator > share_max.numerator * inflow else 0
        metrics.update(
            fee_window_days=window_days,
            fees_to_own_in_window=money(fees),
            inflow_in_window=money(inflow),
            fee_share=ratio_text(Fraction(fees, inflow), 8) if inflow else None,
            fee_excess=money(excess),
        )
        if excess > 0:
            severities.append(severity_by_amount(excess, high, critical))
            amount += excess
            evidence.extend(fee_buckets)
            last = st["fees"][str(day)]["t1"]
            window_start = first if window_start is None else min(window_start, first)
            window_end = last if window_end is None else max(window_end, last)
            share = Fraction(fees, inflow) if inflow else None
            share_text = percent(share) if share is not None else ""
            if share is not None and share_text == percent(share_max):
                share_text = percent(share, 6)  # just above the limit: show the digits that differ
            share_zh = f"占同期流入{yuan_zh(inflow)}的{share_text}" if inflow else "而同期无资金流入"
            share_en = f"{share_text} of its inflow of {yuan_en(inflow)}" if inflow else "with no inflow"
            subject_zh = "" if parts_zh else f"{role_zh(role)}{masked}"
            subject_en = "it" if parts_en else f"the {role_en(role)} {masked}"
            parts_zh.append(
                f"截至{date}近{window_days}日{subject_zh}按指令划入本机构自有账户合计{yuan_zh(fees)}，"
                f"{share_zh}，超过约定费用比例上限{percent(share_max)}，超出{yuan_zh(excess)}"
            )
            parts_en.append(
                f"in the {window_days} days to {date} {subject_en} paid {yuan_en(fees)} to the "
                f"institution's own accounts on instruction, {share_en}, above the contractual fee "
                f"share of {percent(share_max)} by {yuan_en(excess)}"
            )

    if not severities:
        return None
    assert window_start is not None and window_end is not None
    metrics["late"] = any(is_late(b) for b in evidence)
    sentence_en = "; ".join(parts_en)
    return Finding(
        typology=NAME,
        key=f"{account_id}:{date}",
        institution_id=ctx.institution_id(account_id) or "",
        severity=most_severe(*severities),
        score=score_of(amount, critical),
        accounts=(account_id,),
        amount_cents=amount,
        window_start=window_start,
        window_end=window_end,
        record_ids=record_ids(evidence),
        metrics=metrics,
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh="；".join(parts_zh) + f"，涉嫌挪用、占用客户资金{cite_zh(rule)}。",
        explanation_en=sentence_en[0].upper()
        + sentence_en[1:]
        + f": suspected misappropriation of customer funds {cite_en(rule)}.",
        rule=rule,
        detector_version=f"{NAME}/{VERSION}",
        extra={"account_role": role, "region": ctx.region(account_id)},
    )
