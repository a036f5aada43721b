"""设立资金池: money collected from many investors into an account the institution controls and
paid straight out to many borrowers or back to investors, outside custody (DOMAIN.md; 《方案》二(一)
"设立资金池").

Watched accounts: an account with an ``institution_id`` whose role is ``own_operating``,
``related_party`` or ``other`` (the institution's own accounts, its people's and affiliates'
accounts, other accounts registered to it). Never ``customer_custody`` / ``payment_reserve``:
taking money from many investors and paying many borrowers is what custody is for. Never
``investor`` / ``borrower`` accounts: those are the customers' own.

What a day holds, from the account's own CNY records of that Beijing day:

- credits and debits (every counterparty): sums, counts, the 50 largest as evidence;
- fan-in: the distinct *investor-like* payers: an account with role ``investor`` (of any
  institution) or one unknown to the reference data (investors' personal accounts are mostly at
  banks that report nothing; the finding says how many were unknown). A payer known with any
  other role (the institution's own or custody accounts, related parties, borrowers, ``other``)
  is not investor-like: moving one's own money about is not pooling;
- fan-out: the distinct payees with role ``borrower`` or ``investor``, or unknown to the
  reference data;
- the day's latest balance seen: a transaction's ``balance_after_cents`` or a balance snapshot,
  the latest by event time (then record id) wins; a snapshot taken at Beijing midnight is the
  closing balance of the day that ends then (a bank's day-end snapshot is dated 00:00 of the next
  day), not the opening balance of the next.

Rule. A window ``T(D, L)`` is the ``L`` Beijing days ending with a day D on which the account has
a transaction, for every ``L`` from 1 to ``window_days`` (7): a pool may collect for three days
and pay out over the next two, or take in and pay out within hours. A window fires when all four
hold over it:

1. fan-in: distinct investor-like payers >= ``min_distinct_in``;
2. fan-out: distinct borrower- or investor-like payees >= ``min_distinct_out``;
3. pass-through: debits / credits >= ``pass_through_min`` (all counterparties, so money leaving
   for anywhere counts as leaving);
4. short dwell: closing balance / credits <= ``end_balance_ratio_max``. The closing balance is the
   latest balance seen on D. When D has none (a bank that reports no ``balance_after``), it is the
   closing balance of the latest day before D that has one, plus the money in and out since
   (``end_balance_source`` ``balance_and_flows``: a bank's midnight snapshot is enough). With no
   balance at all, the proxy is the window's net inflow, max(0, credits - debits)
   (``net_flow``: an account that started empty); both sentences then say the figure is an
   estimate. (thresholds.toml reads "day-end
   balance / the day's inflow": for a one-day window this is exactly that; over several days the
   denominator is the window's inflow, so a pool that collects for days and then pays out is
   judged on what is left at the end, not on its float while it collected: its dwell time.)

The longest window ending on D that fires is the one reported (it holds the most of the pool).
Widening the window cannot make an account a pool by itself: it still needs the many investors
in, the many payees out, and the money gone by the end.

Alerts. Trailing windows overlap, so the Beijing days are cut into consecutive *periods* of
``window_days`` days counted from 1970-01-01 (Beijing), and there is one finding per account and
period: key ``<account>:<first day of the period>``. It shows the latest day among the open days
of the period with a window that fires (the longest such window), and updates as records arrive. A pool going on for weeks is one
alert per period, not one per day; a burst at the end of one period that is still inside the
window of an active day of the next period is reported in both.

Severity by the money passed through, min(credits, debits) over the window (also the finding's
``amount_cents``): medium; ``high_amount`` or more: high; ``critical_amount`` or more: critical
(module defaults until thresholds.toml has them); one level up when both fans reach ``FAN_BUMP``
times their minimum. Score: the mean of passed-through / ``critical_amount`` and how far the
smaller fan is between its minimum and ``FAN_BUMP`` times it, each capped at 1.

The rule apart from its explanation: ``decide`` finds the longest firing window ending on a day
and returns a ``FundPoolSignal`` (the window, fans, sums, closing balance, severity and score) or
None; ``render`` builds the finding from it and the days the window holds: record counts, evidence
and times here, the metrics and the Chinese and English sentences in
models/detectors/fund_pool_text.py. The days' state and how records are folded into it are
models/detectors/fund_pool_days.py.

Late records (their day sealed) are still counted, in the days kept for them (common.LATE_KEEP),
and the periods they touch judged again; the finding says ``late: true``.

State (per account): ``wm`` and one entry per Beijing day (credit and debit buckets, the day's
investor-like payers and borrower/investor-like payees, the latest
balance). A day is kept while a window that holds it can still change (``window_days - 1`` days
after it stays open) and ``LATE_KEEP`` longer, so about ``window_days + 10`` days. Each day keeps at most ``DISTINCT_CAP``
(models/detectors/fund_pool_days.py) counterparties per side, the smallest account ids (the smallest N of a set do not depend on
arrival order); beyond that a fan is reported as "at least DISTINCT_CAP".
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import msgspec

from models.detectors import fund_pool_days as pool_days
from models.detectors.common import (
    advance,
    beijing_date,
    bump,
    cents_of,
    clone,
    fraction_of,
    is_expired,
    is_sealed,
    own_records,
    record_ids,
    score_of,
    severity_by_amount,
)
from models.detectors.context import DetectContext
from models.detectors.fund_pool_days import empty_state, fold_records, prune
from models.detectors.fund_pool_text import RULE, metrics, sentences
from models.findings import Finding
from models.windows import BEIJING_OFFSET, DAY
from schemas.messages import BalanceRecord, TxnRecord

NAME = "fund_pool"
VERSION = "1"
WATCHED_ROLES = frozenset({"own_operating", "related_party", "other"})
FAN_BUMP = 3  # both fans at this multiple of their minimum: one severity level up

DEFAULTS = {
    "window_days": 7,
    "min_distinct_in": 20,
    "min_distinct_out": 10,
    "pass_through_min": "0.8",
    "end_balance_ratio_max": "0.10",
    "high_amount": "1000000.00",  # not in thresholds.toml yet: module default
    "critical_amount": "10000000.00",  # not in thresholds.toml yet: module default
}

def _window_days(cfg: dict[str, Any]) -> int:
    return max(1, int(cfg["window_days"]))


def watched_role(ctx: DetectContext, account_id: str) -> str | None:
    """The account's role when this detector watches it, else None."""
    role = ctx.role(account_id)
    if role not in WATCHED_ROLES or not ctx.institution_id(account_id):
        return None
    return role


def period_start(day: int, window_days: int) -> int:
    """The first day of the period of ``window_days`` Beijing days that holds ``day``."""
    number = (day + BEIJING_OFFSET) // DAY
    return day - (number % window_days) * DAY


def _evaluable(st: dict[str, Any], day: int, wm: int | None, sealed_ok: bool = False) -> bool:
    """A window ends on this day: the day has a transaction and is still open (or, judging late
    records, sealed but kept)."""
    entry = st["days"].get(str(day))
    if entry is None or entry["in"]["n"] + entry["out"]["n"] == 0:
        return False
    return not is_sealed(day, wm) or (sealed_ok and not is_expired(day, wm))


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one account; return the new state and the finding of every
    period whose windows the message touched and that fires."""
    role = watched_role(ctx, account_id)
    if role is None:
        return {}, []
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    window_days = _window_days(cfg)
    st = clone(state) or empty_state()
    wm = st["wm"]
    mine = own_records(account_id, records)
    moved, late_days = fold_records(ctx, st, account_id, mine)
    st["wm"] = wm = advance(wm, mine, ctx.event_time_ceiling)

    # a day's records change the windows ending on it and on the next window_days - 1 days
    ends = {day + i * DAY for day in moved for i in range(window_days)}
    late_ends = {day + i * DAY for day in late_days for i in range(window_days)}
    periods = {period_start(end, window_days) for end in ends if _evaluable(st, end, wm, end in late_ends)}
    late_periods = {period_start(end, window_days) for end in late_ends}
    findings = []
    for period in sorted(periods):
        finding = _period_finding(ctx, st, account_id, role, cfg, period, period in late_periods)
        if finding is not None:
            findings.append(finding)
    prune(st, wm, window_days)
    return st, findings


def current(ctx: DetectContext, state: dict[str, Any] | None, account_id: str) -> list[Finding]:
    """The finding of every period with an open day whose window fires."""
    role = watched_role(ctx, account_id)
    if not state or role is None:
        return []
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    window_days = _window_days(cfg)
    days = (int(k) for k in state["days"])
    periods = sorted({period_start(d, window_days) for d in days if _evaluable(state, d, state["wm"])})
    findings = (_period_finding(ctx, state, account_id, role, cfg, p) for p in periods)
    return [f for f in findings if f is not None]


def _period_finding(
    ctx: DetectContext,
    st: dict[str, Any],
    account_id: str,
    role: str,
    cfg: dict[str, Any],
    period: int,
    sealed_ok: bool = False,
) -> Finding | None:
    """The latest open day of the period with a window that fires, its longest such window
    (``sealed_ok``: judging late records, sealed days kept count too)."""
    window_days = _window_days(cfg)
    for i in reversed(range(window_days)):
        day = period + i * DAY
        if _evaluable(st, day, st["wm"], sealed_ok):
            signal = decide(st, cfg, day)
            if signal is not None:
                return render(signal, ctx, st["days"], account_id, role, cfg, period)
    return None


def _count(fan: dict[str, str], kind: str) -> int:
    return sum(1 for k in fan.values() if k == kind)


def _closing(st: dict[str, Any], day: int) -> tuple[int, str] | None:
    """The balance the account ended ``day`` with: the day's latest balance seen ("balance");
    else the latest closing balance of a day before it that the state keeps, plus the money in
    and out since ("balance_and_flows": a bank that reports no running balance still sends its
    midnight snapshot); else None (the caller falls back on the window's net inflow)."""
    days = st["days"]
    entry = days.get(str(day))
    if entry is not None and entry["bal"] is not None:
        return entry["bal"][2], "balance"
    if not days:
        return None
    net = 0
    # back one day at a time (days are keyed by Beijing midnights) to the latest with a balance,
    # rather than sorting every day held: most accounts have one a day or two back
    for key in range(day, min(map(int, days)) - 1, -DAY):
        earlier = entry if key == day else days.get(str(key))
        if earlier is None:
            continue
        if key < day and earlier["bal"] is not None:
            return earlier["bal"][2] + net, "balance_and_flows"
        net += earlier["in"]["c"] - earlier["out"]["c"]
    return None


def _firing_window(st: dict[str, Any], cfg: dict[str, Any], day: int) -> dict[str, Any] | None:
    """The figures of the longest window ending on ``day`` that fires, or None. Windows grow one
    day back at a time, so their sums and fans are built once for all lengths."""
    min_in, min_out = int(cfg["min_distinct_in"]), int(cfg["min_distinct_out"])
    pass_min = fraction_of(cfg["pass_through_min"])
    ratio_max = fraction_of(cfg["end_balance_ratio_max"])
    closing_at = _closing(st, day)
    credits = debits = 0
    payers: dict[str, str] = {}
    payees: dict[str, str] = {}
    earliest = day  # the earliest day of the window with a transaction
    found = None
    for length in range(1, _window_days(cfg) + 1):
        entry = st["days"].get(str(day - (length - 1) * DAY))
        if entry is not None:
            if entry["in"]["n"] + entry["out"]["n"]:
                earliest = day - (length - 1) * DAY
            credits += entry["in"]["c"]
            debits += entry["out"]["c"]
            # the nearer day's class wins if the reference data changed (nearer days come first)
            payers = {**entry["fin"], **payers}
            payees = {**entry["fout"], **payees}
        if (
            credits <= 0
            or min(len(payers), pool_days.DISTINCT_CAP) < min_in
            or min(len(payees), pool_days.DISTINCT_CAP) < min_out
        ):
            continue
        if Fraction(debits, credits) < pass_min:
            continue
        closing, source = closing_at if closing_at is not None else (max(0, credits - debits), "net_flow")
        if Fraction(closing, credits) > ratio_max:
            continue
        found = {
            # the window as far back as it holds records (empty days before add nothing)
            "first": earliest,
            "credits": credits,
            "debits": debits,
            "payers": payers,
            "payees": payees,
            "closing": closing,
            "source": source,
        }
    return found


class FundPoolSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that the longest firing window ending on a day is a pool."""

    window_first_day: int  # the earliest day of the window with a transaction (Beijing day start)
    window_last_day: int  # the day the window ends on
    distinct_in: int  # investor-like payers, at most DISTINCT_CAP
    distinct_in_investor: int
    distinct_in_unknown: int
    distinct_in_capped: bool
    distinct_out: int  # borrower- or investor-like payees, at most DISTINCT_CAP
    distinct_out_borrower: int
    distinct_out_investor: int
    distinct_out_unknown: int
    distinct_out_capped: bool
    credit_cents: int
    debit_cents: int
    passed_through_cents: int  # min(credits, debits)
    closing_balance_cents: int
    end_balance_source: str  # "balance", "balance_and_flows" or "net_flow"
    severity: str
    score: float


def decide(st: dict[str, Any], cfg: dict[str, Any], day: int) -> FundPoolSignal | None:
    """The rule: the longest window ending on ``day`` that crosses all four lines, with its
    severity and score, or None."""
    window = _firing_window(st, cfg, day)
    if window is None:
        return None
    min_in, min_out = int(cfg["min_distinct_in"]), int(cfg["min_distinct_out"])
    credits, debits = window["credits"], window["debits"]
    payers, payees = window["payers"], window["payees"]
    distinct_in, distinct_out = (
        min(len(payers), pool_days.DISTINCT_CAP),
        min(len(payees), pool_days.DISTINCT_CAP),
    )
    passed = min(credits, debits)
    high, critical = cents_of(cfg["high_amount"]), cents_of(cfg["critical_amount"])
    fan_factor = min(Fraction(distinct_in, max(1, min_in)), Fraction(distinct_out, max(1, min_out)))
    severity = severity_by_amount(passed, high, critical)
    if fan_factor >= FAN_BUMP:
        severity = bump(severity)
    return FundPoolSignal(
        window_first_day=window["first"],
        window_last_day=day,
        distinct_in=distinct_in,
        distinct_in_investor=_count(payers, "investor"),
        distinct_in_unknown=_count(payers, "unknown"),
        distinct_in_capped=len(payers) >= pool_days.DISTINCT_CAP,
        distinct_out=distinct_out,
        distinct_out_borrower=_count(payees, "borrower"),
        distinct_out_investor=_count(payees, "investor"),
        distinct_out_unknown=_count(payees, "unknown"),
        distinct_out_capped=len(payees) >= pool_days.DISTINCT_CAP,
        credit_cents=credits,
        debit_cents=debits,
        passed_through_cents=passed,
        closing_balance_cents=window["closing"],
        end_balance_source=window["source"],
        severity=severity,
        score=round((score_of(passed, critical) + score_of(fan_factor - 1, FAN_BUMP - 1)) / 2, 4),
    )


def render(
    signal: FundPoolSignal,
    ctx: DetectContext,
    days: dict[str, Any],
    account_id: str,
    role: str,
    cfg: dict[str, Any],
    period: int,
) -> Finding:
    """The finding of a pool: the window's records (counts, evidence, times) from the days it
    holds, the metrics and the sentences."""
    first, day = signal.window_first_day, signal.window_last_day
    entries = [e for d in range(day, first - DAY, -DAY) if (e := days.get(str(d))) is not None]
    n_credits = sum(e["in"]["n"] for e in entries)
    n_debits = sum(e["out"]["n"] for e in entries)
    buckets = [b for e in entries for b in (e["in"], e["out"]) if b["n"] > 0]
    zh, en = sentences(signal, account_id, role, n_credits, n_debits)
    return Finding(
        typology=NAME,
        key=f"{account_id}:{beijing_date(period)}",
        institution_id=ctx.institution_id(account_id) or "",
        severity=signal.severity,
        score=signal.score,
        accounts=(account_id,),
        amount_cents=signal.passed_through_cents,
        window_start=min(b["t0"] for b in buckets),
        window_end=max(b["t1"] for b in buckets),
        record_ids=record_ids(buckets),
        metrics=metrics(signal, period, n_credits, n_debits, buckets),
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={"account_role": role, "region": ctx.region(account_id)},
    )
