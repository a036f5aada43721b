"""maturity_mismatch: short-term money for a long-term project, one project split into short
products, earlier investors repaid with later investors' money (《方案》二(一): P2P网络借贷平台
期限错配、期限分拆).

One alert per product, key ``product:<product_id>``, for every product of the institution
(``ctx.references.products_of``):

1. term split (reference data only): ``term_days < underlying_term_days * term_ratio_max``, both
   known. Evaluated on every call, reviews (no records) included.
2. rollover, added to the same alert while the term is split: over the product's life seen so far
   (models/detectors/product_flows.py, the same sums as excess_return's payout coverage), payouts
   to investors of at least ``min_payout`` with ``repaid / paid_out < payout_coverage_min`` (1):
   the investors of a short product were paid back before its borrowers repaid, with money that
   came from elsewhere. The metrics then also give the institution's investor inflow (credits on
   its custody or reserve accounts from ``investor`` accounts, any product) over the Beijing days
   from the product's first payout or repayment to its latest payout, at most the last
   ``inflow_days`` of them: where the money came from. Only when the product's own figures
   settle it (``coverage_basis`` "product"): while repayments that no record tags with a product
   cannot be attributed, a split product has rollover only if it would with all of them (else
   excess_return judges the institution's custody accounts as a whole).

Window: ``window_start = window_end =`` the product's ``sale_start``; without one, the event time
of its first record seen; with neither, or a sale starting after the latest record seen, the split
alone waits. With rollover, ``window_end`` is the latest payout (``window_start`` no later).

Severity: the split alone is medium when ``term_ratio >= term_ratio_max / 2``, high below;
rollover adds one level. Score: the larger of how far the ratio is below its line and how far the
coverage is below its minimum, each relative to the line. ``amount_cents``: the uncovered payouts
with rollover, else 0; ``record_ids``: the largest payouts and repayments with rollover.

The rule apart from its explanation: ``decide`` reads a product's terms and flows and returns a
``MaturityMismatchSignal`` (the term ratio against its line, the flows and whether they show
rollover, window, severity and score) or None; ``render`` builds the finding from it: metrics, the
investor inflow beside a rollover, accounts, evidence and the Chinese and English sentences.

State (plain JSON): product_flows' (watermark, per product the first record time and payout and
repayment buckets); the investor inflow per Beijing day (``inflow``: day buckets), kept for ``inflow_days + 3`` days behind the watermark; and, for a product whose
inflow period reaches back past that, the period's figures frozen when its first day is dropped
(``frozen``: all its days are sealed by then, so the figures are final and a finding re-emitted
months later is unchanged).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import msgspec

from models.detectors import maturity_mismatch_text as text
from models.detectors import product_figures as figures
from models.detectors import product_flows as pf
from models.detectors.common import (
    add,
    beijing_date,
    bump,
    clone,
    new_bucket,
    open_from,
    score_of,
)
from models.detectors.context import DetectContext
from models.detectors.figures import cents_of, fraction_of
from models.detectors.institution_messages import MessageView, fold_product_flows, view_of
from models.detectors.wording import money
from models.findings import Finding
from models.windows import DAY, beijing_day_start
from schemas.messages import TxnRecord

NAME = "maturity_mismatch"
VERSION = "1"
SCOPE = "institution"
RULE = "二(一)"

DEFAULTS = {
    "term_ratio_max": pf.TERM_RATIO_MAX,
    "min_payout": "100000.00",
    "payout_coverage_min": "1.0",
    "inflow_days": 30,
}


def empty_state() -> dict[str, Any]:
    return {**pf.empty_state(), "inflow": {}, "frozen": {}}


def _inflow_days(cfg: dict[str, Any]) -> int:
    return max(1, int(cfg["inflow_days"]))


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    msg_id: str,
    records: list[TxnRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of the institution; return the new state and the finding of every
    product of the institution that fires (unchanged ones are re-emitted identically)."""
    return detect_view(ctx, state, institution_id, view_of(ctx, institution_id, msg_id, records))


def detect_view(
    ctx: DetectContext, state: dict[str, Any] | None, institution_id: str, view: MessageView
) -> tuple[dict[str, Any], list[Finding]]:
    """``detect`` of the message ``view`` was made of (institution_messages.view_of)."""
    cfg = ctx.institution_config(NAME, institution_id, DEFAULTS)
    st = clone(state) or empty_state()
    _fold_inflow(ctx, st, view.custody, cfg)  # before the product flows advance the watermark
    fold_product_flows(view, st)
    _prune(st, _inflow_days(cfg))
    findings = _findings(ctx, st, institution_id, cfg)
    keep = st["products"] or st["inflow"] or st["wm"] is not None
    return (st if keep else {}), findings


def current(ctx: DetectContext, state: dict[str, Any] | None, institution_id: str) -> list[Finding]:
    """The findings the state and the reference data hold now."""
    cfg = ctx.institution_config(NAME, institution_id, DEFAULTS)
    return _findings(ctx, state or empty_state(), institution_id, cfg)


# -- the institution's investor inflow ------------------------------------------------------


def _fold_inflow(
    ctx: DetectContext, st: dict[str, Any], custody: list[TxnRecord], cfg: dict[str, Any]
) -> None:
    """Count the investors' credits among the records of the institution's custody and reserve
    accounts (``custody``) into their Beijing days."""
    wm = st["wm"]
    # a late credit still counts while its day is kept (see _prune); older days are gone, and the
    # inflow is only shown beside a rollover, never judged
    cutoff = None if wm is None else beijing_day_start(wm) - (_inflow_days(cfg) + 3) * DAY
    start = open_from(wm)  # is_sealed(ts, wm) is ts < start
    inflow = st["inflow"]
    investors: dict[str, bool] = {}  # counterparty -> its role is investor: read once per call
    for record in custody:
        ts = record.booked_at
        if not record.credit or record.currency != "CNY" or (cutoff is not None and ts < cutoff):
            continue
        counterparty = record.counterparty_account
        if not counterparty:
            continue
        investor = investors.get(counterparty)
        if investor is None:
            investor = investors[counterparty] = ctx.role(counterparty) == "investor"
        if not investor:
            continue
        day = str(beijing_day_start(ts))
        bucket = inflow.get(day)
        if bucket is None:
            bucket = inflow[day] = new_bucket()
        add(
            bucket,
            record.record_id,
            ts,
            record.amount_cents,
            top=False,
            late=start is not None and ts < start,
        )


def _period(flows: figures.Flows, inflow_days: int) -> tuple[int, int] | None:
    """The Beijing days (first, last) over which the inflow is shown beside a rollover."""
    if flows.last_payout is None or flows.first is None:
        return None
    last = beijing_day_start(flows.last_payout)
    return max(beijing_day_start(flows.first), last - (inflow_days - 1) * DAY), last


def _inflow_over(st: dict[str, Any], first: int, last: int) -> tuple[int, int]:
    cents = count = 0
    for day, bucket in st["inflow"].items():
        if first <= int(day) <= last:
            cents += bucket["c"]
            count += bucket["n"]
    return cents, count


def _prune(st: dict[str, Any], inflow_days: int) -> None:
    wm = st["wm"]
    if wm is None:
        return
    cutoff = beijing_day_start(wm) - (inflow_days + 3) * DAY
    frozen: dict[str, Any] = {}
    extra = figures.attributed(st)
    for pid in sorted(st["products"]):
        period = _period(figures.flows_of(st, pid, extra), inflow_days)
        if period is None or period[0] >= cutoff:
            continue  # the days are still kept: nothing to freeze
        known = st["frozen"].get(pid)
        if known is not None and known[:2] == list(period):
            frozen[pid] = known
        else:  # the period's first day goes now; every day of it is sealed, so these are final
            frozen[pid] = [*period, *_inflow_over(st, *period)]
    st["frozen"] = frozen
    st["inflow"] = {day: bucket for day, bucket in st["inflow"].items() if int(day) >= cutoff}


def _inflow(st: dict[str, Any], pid: str, period: tuple[int, int]) -> tuple[int, int]:
    known = st["frozen"].get(pid)
    if known is not None and known[:2] == list(period):
        return known[2], known[3]
    return _inflow_over(st, *period)


# -- evaluation -----------------------------------------------------------------------------


def _findings(
    ctx: DetectContext, st: dict[str, Any], institution_id: str, cfg: dict[str, Any]
) -> list[Finding]:
    findings = []
    extra = figures.attributed(st)
    for product in ctx.references.products_of(institution_id):
        finding = _evaluate(ctx, st, institution_id, cfg, product, extra)
        if finding is not None:
            findings.append(finding)
    return findings


class MaturityMismatchSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that a product's alert fires: the split terms and, with rollover, its payouts."""

    product_id: str
    term_days: int
    underlying_term_days: int
    term_ratio: Fraction  # term_days / underlying_term_days
    term_ratio_max: Fraction
    payout_coverage_min: Fraction
    flows: figures.Flows  # the product's payouts and repayments seen so far
    coverage_judged: bool  # the product's own figures settle its coverage
    rollover: bool
    window_start: int
    window_end: int
    severity: str
    score: float


def _evaluate(
    ctx: DetectContext,
    st: dict[str, Any],
    institution_id: str,
    cfg: dict[str, Any],
    product: dict[str, Any],
    extra: dict[str, list[int]],
) -> Finding | None:
    signal = decide(st, cfg, product, extra)
    return None if signal is None else render(signal, ctx, st, institution_id, cfg)


def decide(
    st: dict[str, Any], cfg: dict[str, Any], product: dict[str, Any], extra: dict[str, list[int]]
) -> MaturityMismatchSignal | None:
    """The rule: the term split, and rollover on top of it; None when the term is not split, or
    when the split alone has no place in time yet."""
    ratio_max = fraction_of(cfg["term_ratio_max"])
    ratio = pf.term_ratio(product)
    if ratio is None or ratio >= ratio_max:
        return None
    pid = str(product["product_id"])
    term, underlying = pf.days_of(product.get("term_days")), pf.days_of(product.get("underlying_term_days"))
    coverage_min = fraction_of(cfg["payout_coverage_min"])
    flows = figures.flows_of(st, pid, extra)
    min_payout = cents_of(cfg["min_payout"])
    judged = flows.judged(min_payout, coverage_min)
    rollover = judged and flows.short(min_payout, coverage_min)

    base = pf.window_time(st, product)
    if rollover:
        window_end = flows.last_payout
        window_start = min(base if base is not None else flows.first, window_end)
    elif base is None:
        return None  # the split alone with no place in time yet waits
    else:
        window_start = window_end = base

    severity = "medium" if ratio >= ratio_max / 2 else "high"
    score = score_of(ratio_max - ratio, ratio_max)
    if rollover:
        severity = bump(severity)
        score = max(score, score_of(coverage_min - flows.coverage, coverage_min))
    return MaturityMismatchSignal(
        product_id=pid,
        term_days=term,
        underlying_term_days=underlying,
        term_ratio=ratio,
        term_ratio_max=ratio_max,
        payout_coverage_min=coverage_min,
        flows=flows,
        coverage_judged=judged,
        rollover=rollover,
        window_start=window_start,
        window_end=window_end,
        severity=severity,
        score=score,
    )


def render(
    signal: MaturityMismatchSignal,
    ctx: DetectContext,
    st: dict[str, Any],
    institution_id: str,
    cfg: dict[str, Any],
) -> Finding:
    """The finding of a product that fires: metrics (with rollover, the institution's investor
    inflow over the period), accounts, evidence and the sentences."""
    pid, flows, rollover = signal.product_id, signal.flows, signal.rollover
    metrics = text.metrics(signal)
    accounts: tuple[str, ...] = ()
    rollover_zh = rollover_en = ""
    if rollover:
        accounts = flows.accounts
        first_day, last_day = _period(flows, _inflow_days(cfg))
        inflow, inflow_count = _inflow(st, pid, (first_day, last_day))
        metrics.update(
            investor_inflow=money(inflow),
            investor_inflow_count=inflow_count,
            inflow_first_day=beijing_date(first_day),
            inflow_last_day=beijing_date(last_day),
        )
        rollover_zh, rollover_en = text.rollover_clauses(flows, first_day, last_day, inflow, inflow_count)
    zh, en = text.sentences(signal, metrics["terms_per_project"], rollover_zh, rollover_en)
    return Finding(
        typology=NAME,
        key=f"product:{pid}",
        institution_id=institution_id,
        severity=signal.severity,
        score=signal.score,
        accounts=accounts,
        amount_cents=flows.uncovered if rollover else 0,
        window_start=signal.window_start,
        window_end=signal.window_end,
        record_ids=flows.record_ids if rollover else (),
        metrics=metrics,
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={"product_id": pid},
    )
