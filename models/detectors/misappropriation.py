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

The rule apart from its explanation: ``decide`` reads the day's buckets and returns a
``MisappropriationSignal`` (the uninstructed debits and the fee window that decided, severity,
score and amount) or None; ``render`` builds the finding from it: window and evidence here, the
metrics and the Chinese and English clauses in models/detectors/misappropriation_text.py.

State (per account): ``wm`` the event-time watermark; ``uninstructed`` day buckets (dropped once
their day is sealed); ``fees`` and ``inflow`` day buckets, kept for ``fee_window_days`` before the
oldest open day (inflow keeps no evidence list). Bounded by about ``fee_window_days + 3``
buckets of sums and evidence.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import msgspec

from models.detectors.bucket_fold import add_all
from models.detectors.common import (
    advance,
    at_least,
    beijing_date,
    bucket_in,
    bump,
    cents_of,
    clone,
    fraction_of,
    is_expired,
    is_sealed,
    most_severe,
    own_cny_records,
    record_ids,
    score_of,
    severity_by_amount,
    top_entries,
)
from models.detectors.context import CUSTODY_ROLES, DetectContext
from models.detectors.misappropriation_text import metrics, sentences
from models.detectors.wording import cite_en, cite_zh, mask
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
    day the message touched. ``msg_id`` is not needed: a message delivered again is recognised by
    its id before any detector sees it (models/account_state)."""
    role = ctx.role(account_id)
    if role not in CUSTODY_ROLES:
        return {}, []
    institution_id = ctx.institution_id(account_id)
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    window_days = int(cfg["fee_window_days"])
    st = clone(state) or empty_state()
    wm = st["wm"]
    mine = own_cny_records(account_id, records)

    touched, fee_moves = _fold(ctx, st, institution_id, mine, wm)
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


def _fold(
    ctx: DetectContext,
    st: dict[str, Any],
    institution_id: str | None,
    records: list[TxnRecord | BalanceRecord],
    wm: int | None,
) -> tuple[set[int], set[int]]:
    """Count the transactions in their days' buckets: credits as inflow, debits without an
    instruction as uninstructed (tagged with their destination), instructed debits to the
    institution's own accounts as fees. Returns the days whose finding is re-evaluated and the
    days whose records change the fee windows holding them. Grouped by bucket first, in the order
    the buckets are first met, so each is updated once (bucket_fold.add_all)."""
    groups: dict[tuple[str, int], tuple[list[TxnRecord], list[str]]] = {}
    # counterparty -> its destination: a custody account's debits go to a few accounts, again
    # and again
    destination_of: dict[str, str] = {}
    for record in records:
        if not isinstance(record, TxnRecord):
            continue
        if record.credit:
            name, tag = "inflow", ""
        else:
            counterparty = record.counterparty_account
            destination = destination_of.get(counterparty)
            if destination is None:
                destination = destination_of[counterparty] = ctx.destination(institution_id, counterparty)
            if not record.instruction_id:
                name, tag = "uninstructed", destination
            elif destination == "own":
                name, tag = "fees", "own"
            else:
                continue
        key = (name, beijing_day_start(record.booked_at))
        group = groups.get(key)
        if group is None:
            group = groups[key] = ([], [])
        group[0].append(record)
        group[1].append(tag)
    touched: set[int] = set()
    fee_moves: set[int] = set()
    for (name, day), (group, tags) in groups.items():
        # still judged when late: against the day's figures kept (common.LATE_KEEP)
        late = is_sealed(day, wm)
        if name == "inflow":
            add_all(bucket_in(st["inflow"], day), group, top=False, late=late)
        else:
            add_all(bucket_in(st[name], day), group, tags=tags, late=late)
        (touched if name == "uninstructed" else fee_moves).add(day)
    return touched, fee_moves


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


class UninstructedDebits(msgspec.Struct, frozen=True, kw_only=True):
    """The day's debits without a customer or contract instruction."""

    count: int
    total_cents: int
    to_own_cents: int  # to the institution's own operating accounts
    to_related_cents: int  # to related parties' accounts
    to_other_cents: int
    largest_cents: int
    severity: str


class FeeWindow(msgspec.Struct, frozen=True, kw_only=True):
    """Instructed debits to own accounts over the fee window ending with the day, against inflow."""

    window_days: int
    first_day: int  # the window's first Beijing day's start, epoch seconds
    fees_to_own_cents: int
    inflow_cents: int
    fee_share_max: Fraction
    excess_cents: int  # 0 when the fees are within the share
    severity: str | None  # None when the fees are within the share


class MisappropriationSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that an account's day fires: either signal, or both."""

    day: int  # the Beijing day's start, epoch seconds
    uninstructed: UninstructedDebits | None  # None: no uninstructed debit that day
    fees: FeeWindow | None  # None: no instructed debit to own accounts that day
    severity: str
    score: float
    amount_cents: int  # the uninstructed total plus the fee excess


def _evaluate(
    ctx: DetectContext, st: dict[str, Any], account_id: str, role: str, cfg: dict[str, Any], day: int
) -> Finding | None:
    signal = decide(st, cfg, day)
    return None if signal is None else render(signal, ctx, st, account_id, role, cfg)


def decide(st: dict[str, Any], cfg: dict[str, Any], day: int) -> MisappropriationSignal | None:
    """The rule: any uninstructed debit on ``day``, or fees to own accounts above the share of
    inflow over the window ending with ``day``."""
    high, critical = cents_of(cfg["high_amount"]), cents_of(cfg["critical_amount"])
    uninstructed = _uninstructed(st, day, high, critical)
    fees = _fee_window(st, cfg, day, high, critical)
    severities: list[str] = []
    amount = 0
    if uninstructed is not None:
        severities.append(uninstructed.severity)
        amount += uninstructed.total_cents
    if fees is not None and fees.severity is not None:
        severities.append(fees.severity)
        amount += fees.excess_cents
    if not severities:
        return None
    return MisappropriationSignal(
        day=day,
        uninstructed=uninstructed,
        fees=fees,
        severity=most_severe(*severities),
        score=score_of(amount, critical),
        amount_cents=amount,
    )


def _uninstructed(st: dict[str, Any], day: int, high: int, critical: int) -> UninstructedDebits | None:
    unins = st["uninstructed"].get(str(day))
    if unins is None or unins["n"] <= 0:
        return None
    by = unins["x"]
    own, related = by.get("own", 0), by.get("related", 0)
    largest = top_entries([unins], 1)
    severity = severity_by_amount(unins["c"], high, critical)
    if own or related:
        severity = at_least(severity, "high")
    if unins["n"] >= REPEAT_BUMP:
        severity = bump(severity)
    return UninstructedDebits(
        count=unins["n"],
        total_cents=unins["c"],
        to_own_cents=own,
        to_related_cents=related,
        to_other_cents=by.get("other", 0),
        largest_cents=largest[0][0] if largest else 0,
        severity=severity,
    )


def _fee_window(
    st: dict[str, Any], cfg: dict[str, Any], day: int, high: int, critical: int
) -> FeeWindow | None:
    if str(day) not in st["fees"]:
        return None
    window_days = int(cfg["fee_window_days"])
    share_max = fraction_of(cfg["fee_share_max"])
    first = day - (window_days - 1) * DAY
    fees = sum(b["c"] for b in _fee_buckets(st, first, day))
    inflow = sum(b["c"] for k, b in st["inflow"].items() if first <= int(k) <= day)
    allowed = share_max.numerator * inflow // share_max.denominator  # floor(share x inflow)
    excess = fees - allowed if fees * share_max.denominator > share_max.numerator * inflow else 0
    return FeeWindow(
        window_days=window_days,
        first_day=first,
        fees_to_own_cents=fees,
        inflow_cents=inflow,
        fee_share_max=share_max,
        excess_cents=excess,
        severity=severity_by_amount(excess, high, critical) if excess > 0 else None,
    )


def _fee_buckets(st: dict[str, Any], first: int, day: int) -> list[dict[str, Any]]:
    return [b for k, b in st["fees"].items() if first <= int(k) <= day]


def render(
    signal: MisappropriationSignal,
    ctx: DetectContext,
    st: dict[str, Any],
    account_id: str,
    role: str,
    cfg: dict[str, Any],
) -> Finding:
    """The finding of a day that fires: window, evidence, metrics and the sentences."""
    rule = RULE_BY_TYPE.get(ctx.institution_type(account_id) or "", DEFAULT_RULE)
    date = beijing_date(signal.day)
    evidence, window_start, window_end = _evidence(signal, st)
    zh, en = sentences(signal, role, mask(account_id), date)
    return Finding(
        typology=NAME,
        key=f"{account_id}:{date}",
        institution_id=ctx.institution_id(account_id) or "",
        severity=signal.severity,
        score=signal.score,
        accounts=(account_id,),
        amount_cents=signal.amount_cents,
        window_start=window_start,
        window_end=window_end,
        record_ids=record_ids(evidence),
        metrics=metrics(signal, date, evidence),
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh + f"，涉嫌挪用、占用客户资金{cite_zh(rule)}。",
        explanation_en=en[0].upper()
        + en[1:]
        + f": suspected misappropriation of customer funds {cite_en(rule)}.",
        rule=rule,
        detector_version=f"{NAME}/{VERSION}",
        extra={"account_role": role, "region": ctx.region(account_id)},
    )


def _evidence(signal: MisappropriationSignal, st: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
    """The buckets behind the finding and the window they span."""
    evidence: list[dict[str, Any]] = []
    window_start: int | None = None
    window_end: int | None = None
    if signal.uninstructed is not None:
        unins = st["uninstructed"][str(signal.day)]
        evidence.append(unins)
        window_start, window_end = unins["t0"], unins["t1"]
    fees = signal.fees
    if fees is not None and fees.excess_cents > 0:
        evidence.extend(_fee_buckets(st, fees.first_day, signal.day))
        last = st["fees"][str(signal.day)]["t1"]
        window_start = fees.first_day if window_start is None else min(window_start, fees.first_day)
        window_end = last if window_end is None else max(window_end, last)
    assert window_start is not None and window_end is not None
    return evidence, window_start, window_end
