"""短时间内迅速发展: an institution whose customer money or number of investors grows far above its
own trend in a short time (DOMAIN.md; 《方案》四(二)4 "对涉及资金量大、人数众多的大型互联网金融平台或
短时间内迅速发展的互联网金融平台、企业……马上报告相关部门").

Scope: one institution and one Beijing day; key ``<institution_id>:<YYYY-MM-DD>``. The records are
those of the institution's ``customer_custody``, ``payment_reserve`` and ``own_operating`` accounts
(models/institution_detection.INSTITUTION_ROLES).

Figures of a Beijing day D, from CNY records:

- inflow(D): the CREDITS booked on D on the institution's custody or reserve accounts whose payer
  (``counterparty_account``) is not one of the institution's own accounts (an account of this
  institution with one of the roles above). Moving money between its own accounts is not growth,
  and so a movement reported by both banks is counted once, from the receiving side;
- payers(D): the distinct payers of those credits; new investors(D): the payers of D that paid
  none of the institution's inflow credits on the ``trend_days`` days before D.

History: the ``trend_days`` days before D, counting only days on or after the first Beijing day on
which the institution had any record at all (a day without inflow counts as 0). With fewer than
``min_history_days`` such days there is no trend to compare with, and nothing fires.

Rule. Let baseline = the median of inflow over the history days and new baseline = the median of
new investors over them. D fires when either holds:

1. inflow: inflow(D) >= ``min_inflow`` and inflow(D) >= ``growth_ratio`` x max(baseline,
   ``min_inflow`` / ``growth_ratio``) (the guard keeps a tiny baseline from making small sums look
   like growth: below it the test is just inflow(D) >= ``min_inflow``);
2. new investors: new(D) >= ``min_new_investors`` and new(D) >= ``growth_ratio`` x max(1, new
   baseline).

The growth ratio of a signal is its figure over what it is compared with (the guarded baseline, or
max(1, new baseline)); the finding's ratio is the larger ratio of the signals that fire. Severity:
medium at ``growth_ratio`` or more, high at 2 x ``growth_ratio``, critical at 4 x ``growth_ratio``.
Score: ratio / (4 x ``growth_ratio``), capped at 1. ``amount_cents`` is inflow(D); the evidence is
the day's 50 largest inflow credits; the window runs from the day's first to its last inflow credit.

The rule apart from its explanation: ``decide`` reads a day and its history and returns a
``RapidGrowthSignal`` (the figures, baselines and ratios of both signals, which fired, severity and
score) or None; ``render`` builds the finding from it and the day's tally: accounts, window and
evidence here, the metrics and the Chinese and English sentences in
models/detectors/rapid_growth_text.py. The days' state and the payer sample are
models/detectors/rapid_growth_days.py.

The day is evaluated as it goes (running totals), so the alert comes early and updates as the day's
figures grow. A record of day E changes the figures of E and the history of the ``trend_days``
days after it: every call re-evaluates those days (a late record may lift a baseline so that a day
no longer fires; the alert already raised for it then stays as it was).

Event time: the watermark follows the banks of the institution's custody and reserve accounts, whose
credits are the figures (common.advance_sources). A late credit (its day sealed) still counts while
its day and the ``trend_days`` before it are kept (``LATE_KEEP`` after sealing): its day and the
days whose history holds it are judged again, their findings ``late: true``. A credit later still
has no trend left to be judged against and changes nothing (the worker has counted it late).

State (per institution): ``wm``, ``src``, ``first`` (the first day with any record), and per day
with inflow: the inflow tally (sum, count, first and last time, the 50 largest credits, the sum
per account), how many of its credits came late, and the payers. It holds no record ids: each
credit reaches the detector once (models/detectors/common). Days are kept while a day whose history holds them
can still change (about ``trend_days`` + 3 days). Calls never copy the whole state: containers are
copied on their first write (the caller's state is never changed), so a call costs O(records x
trend_days + trend_days^2), whatever the day's volume.

Payers. A reserve account can have tens of thousands of payers a day, so a day keeps at most
``PAYER_CAP`` of them (models/detectors/rapid_growth_days.py), as a hash sample that is the same whatever the arrival order: every payer
has a level (the leading zero bits of a 32-bit BLAKE2b hash of its account id, so level >= L for
one payer in 2^L), and a day keeps the payers whose level is at least the smallest L that leaves
at most ``PAYER_CAP`` of them. New investors of D are counted among the payers whose level is at
least the highest L of D and its history days (for those payers, every day of the window knows
them exactly), kept as a running count per level, and scaled by 2^L: exact while no day of the
window had more than ``PAYER_CAP`` payers, an estimate (``new_investors_estimated``) beyond.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import msgspec

from models.detectors.common import (
    LATE_KEEP,
    advance_sources,
    beijing_date,
    is_sealed,
    open_from,
    record_ids,
    score_of,
)
from models.detectors.context import CUSTODY_ROLES, DetectContext, _text
from models.detectors.figures import cents_of, fraction_of
from models.detectors.institution_messages import MessageView, OwnAccounts, view_of
from models.detectors.rapid_growth_days import Folder, new_investors
from models.detectors.rapid_growth_text import RULE, metrics, sentences
from models.findings import Finding
from models.windows import DAY, beijing_day_start
from schemas.messages import TxnRecord

NAME = "rapid_growth"
VERSION = "1"
SCOPE = "institution"

DEFAULTS = {
    "trend_days": 14,
    "growth_ratio": "3.0",
    "min_inflow": "1000000.00",
    "min_history_days": 5,
    "min_new_investors": 20,
}


def config(ctx: DetectContext, institution_id: str) -> dict[str, Any]:
    """The thresholds for the institution's own type over the module defaults."""
    return ctx.institution_config(NAME, institution_id, DEFAULTS)


def _trend(cfg: dict[str, Any]) -> int:
    return max(1, int(cfg["trend_days"]))


def _fold_records(fold: Folder, own: OwnAccounts, records: list[TxnRecord]) -> set[int]:
    """Count one message's inflow credits into their days; the days whose figures the message
    touched."""
    st = fold.st
    start = open_from(st["wm"])
    # is_expired(ts, wm) is ts + LATE_KEEP < start; late (is_sealed) is ts < start
    expired_before = None if start is None else start - LATE_KEEP
    touched: set[int] = set()
    first = st["first"]
    for record in records:
        if not isinstance(record, TxnRecord):
            continue
        account_id = record.account_id
        account = own[account_id]
        if account is None:
            continue
        ts = record.booked_at
        day = beijing_day_start(ts)
        if first is None or day < first:
            first = st["first"] = day
        custody = account[0] in CUSTODY_ROLES
        if expired_before is not None and ts < expired_before:
            continue  # too late to be judged against a trend: its history is gone
        touched.add(day)
        if not custody or not record.credit or record.currency != "CNY":
            continue
        payer = record.counterparty_account
        if payer == account_id or own[payer] is not None:
            continue  # the institution's own money moving between its accounts
        late = start is not None and ts < start
        fold.inflow(day, late, record.amount_cents, ts, record.record_id, account_id)
        if payer:
            fold.see_payer(day, payer)
    return touched


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    msg_id: str,
    records: list[TxnRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one institution; return the new state and the finding of
    every day whose figures or history the message touched and that fires."""
    return detect_view(ctx, state, institution_id, view_of(ctx, institution_id, msg_id, records))


def detect_view(
    ctx: DetectContext, state: dict[str, Any] | None, institution_id: str, view: MessageView
) -> tuple[dict[str, Any], list[Finding]]:
    """``detect`` of the message ``view`` was made of (institution_messages.view_of)."""
    cfg = config(ctx, institution_id)
    trend = _trend(cfg)
    fold = Folder(state, trend)
    st = fold.st
    touched = _fold_records(fold, view.own, view.records)
    # the custody and reserve accounts' records are the figures' sources (the latest of each bank
    # among them advances the watermark as all of them would)
    wm = advance_sources(st, ctx, view.sources)
    if wm is None:
        return {}, []  # nothing of this institution's custody or reserve seen yet: no state to keep

    # a day's records change its figures and the history of the trend_days days after it
    affected = sorted({day + k * DAY for day in touched for k in range(trend + 1)})
    findings = []
    for day in affected:
        finding = _evaluate(ctx, st, institution_id, cfg, day)
        if finding is not None:
            findings.append(finding)
    fold.prune(wm)
    return st, findings


def current(ctx: DetectContext, state: dict[str, Any] | None, institution_id: str) -> list[Finding]:
    """The finding of every open (not sealed) day that fires."""
    if not state:
        return []
    cfg = config(ctx, institution_id)
    days = sorted(int(k) for k in state["days"] if not is_sealed(int(k), state["wm"]))
    findings = (_evaluate(ctx, state, institution_id, cfg, day) for day in days)
    return [f for f in findings if f is not None]


def _median(values: list[Any]) -> Fraction:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Fraction(ordered[mid])
    return Fraction(ordered[mid - 1] + ordered[mid], 2)


class RapidGrowthSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that a day grew far above the institution's own trend."""

    day: int  # the Beijing day's start, epoch seconds
    history_days: tuple[int, ...]  # the days of the trend, oldest first
    history_inflow_cents: tuple[int, ...]
    history_new_investors: tuple[int, ...]
    inflow_cents: int
    baseline_inflow_cents: Fraction  # the median of the history's inflows
    guarded_baseline_inflow_cents: Fraction  # what the inflow is compared with
    inflow_ratio: Fraction
    inflow_fires: bool
    new_investors: int
    new_investors_estimated: bool  # scaled up from a hash sample
    baseline_new_investors: Fraction
    new_investors_ratio: Fraction
    new_investors_fire: bool
    growth_ratio: Fraction  # the larger ratio of the signals that fire
    severity: str
    score: float


def _evaluate(
    ctx: DetectContext, st: dict[str, Any], institution_id: str, cfg: dict[str, Any], day: int
) -> Finding | None:
    signal = decide(st, cfg, day)
    return None if signal is None else render(signal, ctx, st["days"][str(day)], institution_id, cfg)


def _history(st: dict[str, Any], cfg: dict[str, Any], day: int) -> list[int]:
    """The trend days before ``day`` on or after the institution's first day, oldest first."""
    first = st["first"]
    return [day - k * DAY for k in range(_trend(cfg), 0, -1) if first is not None and day - k * DAY >= first]


def decide(st: dict[str, Any], cfg: dict[str, Any], day: int) -> RapidGrowthSignal | None:
    """The rule: the day's inflow or new investors at ``growth_ratio`` times their trend (and at
    their minimums), with severity and score; None without history enough or when neither fires."""
    days = st["days"]
    entry = days.get(str(day))
    if entry is None or entry["in"]["n"] == 0:
        return None
    history = _history(st, cfg, day)
    if len(history) < int(cfg["min_history_days"]):
        return None
    growth = fraction_of(cfg["growth_ratio"])
    min_inflow = cents_of(cfg["min_inflow"])
    inflow = entry["in"]["c"]
    inflows = [days[str(d)]["in"]["c"] if str(d) in days else 0 for d in history]
    baseline = _median(inflows)
    guard = max(baseline, Fraction(min_inflow) / growth if growth > 0 else Fraction(0), Fraction(1))
    inflow_fires = inflow >= min_inflow and inflow >= growth * guard
    new = new_investors(entry)
    news = [new_investors(days.get(str(d))) for d in history]
    new_baseline = _median(news)
    new_guard = max(new_baseline, Fraction(1))
    new_fires = new >= int(cfg["min_new_investors"]) and new >= growth * new_guard
    if not (inflow_fires or new_fires):
        return None
    inflow_ratio, new_ratio = inflow / guard, new / new_guard
    ratio = max(r for r, fires in ((inflow_ratio, inflow_fires), (new_ratio, new_fires)) if fires)
    return RapidGrowthSignal(
        day=day,
        history_days=tuple(history),
        history_inflow_cents=tuple(inflows),
        history_new_investors=tuple(news),
        inflow_cents=inflow,
        baseline_inflow_cents=baseline,
        guarded_baseline_inflow_cents=guard,
        inflow_ratio=inflow_ratio,
        inflow_fires=inflow_fires,
        new_investors=new,
        new_investors_estimated=entry["ls"] > 0,
        baseline_new_investors=new_baseline,
        new_investors_ratio=new_ratio,
        new_investors_fire=new_fires,
        growth_ratio=ratio,
        severity="critical" if ratio >= 4 * growth else "high" if ratio >= 2 * growth else "medium",
        score=score_of(ratio, 4 * growth),
    )


def render(
    signal: RapidGrowthSignal,
    ctx: DetectContext,
    entry: dict[str, Any],
    institution_id: str,
    cfg: dict[str, Any],
) -> Finding:
    """The finding of a day that fires (``entry``: the day's figures): accounts, window, evidence,
    metrics and the sentences."""
    per_account = sorted(entry["in"]["x"].items(), key=lambda item: (-item[1], item[0]))
    accounts = tuple(account for account, _ in per_account)
    date = beijing_date(signal.day)
    institution = ctx.references.institution(institution_id) or {}
    zh, en = sentences(signal, ctx, accounts, entry["in"]["n"])
    return Finding(
        typology=NAME,
        key=f"{institution_id}:{date}",
        institution_id=institution_id,
        severity=signal.severity,
        score=signal.score,
        accounts=accounts,
        amount_cents=signal.inflow_cents,
        window_start=entry["in"]["t0"],
        window_end=entry["in"]["t1"],
        record_ids=record_ids([entry["in"]]),
        metrics=metrics(signal, entry, per_account),
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={
            "region": str(institution.get("region") or ""),
            "institution_type": _text(institution.get("type")),
        },
    )
