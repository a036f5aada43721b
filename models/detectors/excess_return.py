"""excess_return: a product promising, or paying, more than its project can (《方案》三(四): 产品承诺或
实际收益水平显著高于项目回报率或行业水平, 显失合理的超高回报率以及变相补贴).

One alert per product, key ``product:<product_id>``, for every product of the institution
(``ctx.references.products_of``). Four signals; any one fires and the metrics show all four:

1. project rate: ``declared_annual_yield > underlying_project_rate`` (when the project rate is
   known): the promise exceeds what the borrowers pay.
2. legal cap: ``declared_annual_yield > lpr_one_year * lpr_multiple`` (four times the one-year
   LPR: the judicial protection cap of private lending).
3. peer outlier: ``z = (y - median) / (1.4826 * MAD) > robust_z`` over the declared yields of every
   product of every institution of the same type (``products_of_type``, the product included),
   only with at least ``min_peers`` such products and ``MAD > 0``.
4. payout coverage: over the product's life seen so far (models/detectors/product_flows.py),
   payouts to investors of at least ``min_payout`` with ``repaid / paid_out <
   payout_coverage_min``: investors were paid more than the borrowers repaid (a subsidy). Only when
   the term is not split (``term_days >= underlying_term_days * term_ratio_max`` of
   maturity_mismatch, or the underlying term unknown): a split product's uncovered payouts are
   rollover, which maturity_mismatch reports. Only when the product's own figures settle it
   (``coverage_basis`` "product" in the metrics): repayments a record does not tag with a product
   are repayments all the same, so while some cannot be attributed a product is short only if it
   would be short with all of them.

Institution coverage. While some payout or repayment of the institution cannot be attributed to a
product, the payout coverage of its custody accounts as a whole is judged too: payouts of at least
``min_payout`` with ``repaid / paid_out < payout_coverage_min`` over every product and none is one
finding, key ``institution:<institution_id>``, ``coverage_basis`` "institution", medium (high
below half the minimum), amount the uncovered payouts, evidence the largest payouts and
repayments, window from the first of them to the latest payout.

Signals 1-3 need only reference data: they are evaluated on every call, reviews (no records)
included, so a product is flagged when it is registered.

Window: ``window_start = window_end =`` the product's ``sale_start``; without one, the event time
of the first record of the product seen; with neither, or a sale starting after the latest record
seen, a reference-only finding waits. With signal 4, ``window_end`` is the latest payout (and
``window_start`` no later than it).

Severity: one signal: high for 1 or 2, medium for 3 or 4 alone. Two or more: critical when 4 is
among them, else high. Score: how far past its line the worst signal is (yield over project rate or
cap relative to it, z over ``robust_z`` relative to it, coverage shortfall relative to the
minimum), capped at 1. ``amount_cents``: the uncovered payouts when 4 holds, else 0;
``record_ids``: the largest payouts and repayments when 4 holds, else none.

The rule apart from its explanation: ``decide`` reads a product's reference data, its peers and
its flows and returns an ``ExcessReturnSignal`` (the lines crossed and by what, window, severity and
score) or None; ``render`` builds the finding from it: accounts and evidence here, the metrics and
the Chinese and English sentences in models/detectors/excess_return_text.py. The peers' median
and MAD are models/detectors/peer_yields.py.

The institution's coverage likewise: ``decide_institution`` returns an
``InstitutionCoverageSignal`` or None, ``render_institution`` the finding.

State: product_flows' (watermark, per product the first record time and payout and repayment
buckets); plain JSON, bounded per product.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec

from models.detectors import product_figures as figures
from models.detectors import product_flows as pf
from models.detectors.common import (
    beijing_date,
    clone,
    score_of,
)
from models.detectors.context import DetectContext, _text
from models.detectors.excess_return_text import (
    RULE,
    institution_metrics,
    institution_sentences,
    metrics,
    sentences,
)
from models.detectors.figures import cents_of, fraction_of
from models.detectors.institution_messages import MessageView, fold_product_flows, view_of
from models.detectors.peer_yields import Peers, peers_of
from models.findings import Finding
from schemas.messages import TxnRecord

NAME = "excess_return"
VERSION = "1"
SCOPE = "institution"


DEFAULTS = {
    "robust_z": "3.5",
    "lpr_one_year": "0.030",
    "lpr_multiple": 4,
    "payout_coverage_min": "1.0",
    "min_peers": 5,
    "min_payout": "100000.00",
}


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
    st = clone(state) or pf.empty_state()
    fold_product_flows(view, st)
    findings = _findings(ctx, st, institution_id)
    return (st if st["products"] or st["wm"] is not None else {}), findings


def current(ctx: DetectContext, state: dict[str, Any] | None, institution_id: str) -> list[Finding]:
    """The findings the state and the reference data hold now."""
    return _findings(ctx, state or pf.empty_state(), institution_id)


# -- evaluation -----------------------------------------------------------------------------


def _findings(ctx: DetectContext, st: dict[str, Any], institution_id: str) -> list[Finding]:
    products = ctx.references.products_of(institution_id)
    if not products:
        return []
    cfg = ctx.institution_config(NAME, institution_id, DEFAULTS)
    ratio_max = pf.term_ratio_max(ctx, institution_id)
    institution = ctx.references.institution(institution_id) or {}
    institution_type = _text(institution.get("type"))
    peers = peers_of(ctx, institution_type)
    extra = figures.attributed(st)
    findings = []
    for product in products:
        finding = _evaluate(ctx, st, institution_id, institution_type, cfg, ratio_max, peers, product, extra)
        if finding is not None:
            findings.append(finding)
    finding = _institution_coverage(ctx, st, institution_id, cfg)
    if finding is not None:
        findings.append(finding)
    return findings


class ExcessReturnSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that a product's alert fires: which of the four lines were crossed and by what."""

    product_id: str
    signals: tuple[str, ...]  # the lines crossed, in the order of the module docstring
    declared_annual_yield: Decimal | None
    underlying_project_rate: Decimal | None
    yield_over_project_rate: bool
    lpr_one_year: Fraction
    lpr_multiple: Fraction
    legal_cap: Fraction  # lpr_one_year x lpr_multiple
    yield_over_legal_cap: bool
    peer_z: Fraction | None  # the yield's robust z among its peers; None: too few peers or no spread
    peer_z_line: Fraction  # robust_z
    peer_outlier: bool
    flows: figures.Flows  # the product's payouts and repayments seen so far
    coverage_judged: bool  # the product's own figures settle its coverage
    payout_coverage_short: bool
    term_days: int | None
    underlying_term_days: int | None
    term_ratio: Fraction | None
    term_split: bool  # a split term leaves uncovered payouts to maturity_mismatch
    window_start: int
    window_end: int
    severity: str
    score: float


def _evaluate(
    ctx: DetectContext,
    st: dict[str, Any],
    institution_id: str,
    institution_type: str | None,
    cfg: dict[str, Any],
    ratio_max_value: Any,
    peers: Peers,
    product: dict[str, Any],
    extra: dict[str, list[int]],
) -> Finding | None:
    signal = decide(st, cfg, ratio_max_value, peers, product, extra)
    if signal is None:
        return None
    return render(signal, ctx, institution_id, institution_type, cfg, ratio_max_value, peers)


def decide(
    st: dict[str, Any],
    cfg: dict[str, Any],
    ratio_max_value: Any,
    peers: Peers,
    product: dict[str, Any],
    extra: dict[str, list[int]],
) -> ExcessReturnSignal | None:
    """The rule: any of the four lines crossed; None when none is, or when a reference-only
    finding has no place in time yet."""
    ref = peers.lines(cfg, ratio_max_value, product)  # the same for every message
    declared, project, legal_cap, robust_z, z = ref.declared, ref.project, ref.legal_cap, ref.robust_z, ref.z
    over_project, over_cap, outlier = ref.over_project, ref.over_cap, ref.outlier
    coverage_min = fraction_of(cfg["payout_coverage_min"])
    flows = figures.flows_of(st, str(product["product_id"]), extra)
    min_payout = cents_of(cfg["min_payout"])
    judged = flows.judged(min_payout, coverage_min)
    uncovered = judged and flows.short(min_payout, coverage_min) and not ref.split
    lines = (("project_rate", over_project), ("legal_cap", over_cap), ("peer_outlier", outlier))
    fired = tuple(name for name, on in (*lines, ("payout_coverage", uncovered)) if on)
    if not fired:
        return None
    window = _window(st, product, flows, uncovered)
    if window is None:
        return None  # a reference-only finding with no place in time yet waits
    return ExcessReturnSignal(
        product_id=str(product["product_id"]),
        signals=fired,
        declared_annual_yield=declared,
        underlying_project_rate=project,
        yield_over_project_rate=over_project,
        lpr_one_year=ref.lpr,
        lpr_multiple=ref.multiple,
        legal_cap=legal_cap,
        yield_over_legal_cap=over_cap,
        peer_z=z,
        peer_z_line=robust_z,
        peer_outlier=outlier,
        flows=flows,
        coverage_judged=judged,
        payout_coverage_short=uncovered,
        term_days=pf.days_of(product.get("term_days")),
        underlying_term_days=pf.days_of(product.get("underlying_term_days")),
        term_ratio=pf.term_ratio(product),
        term_split=ref.split,
        window_start=window[0],
        window_end=window[1],
        severity=_severity(fired),
        score=_score(fired, declared, project, legal_cap, z, robust_z, coverage_min, flows.coverage),
    )


def _severity(fired: tuple[str, ...]) -> str:
    """One line: high for the project rate or the legal cap, else medium; two or more: critical
    with the payout coverage among them, else high."""
    if len(fired) == 1:
        return "high" if fired[0] in ("project_rate", "legal_cap") else "medium"
    return "critical" if "payout_coverage" in fired else "high"


def _score(
    fired: tuple[str, ...],
    declared: Decimal | None,
    project: Decimal | None,
    legal_cap: Fraction,
    z: Fraction | None,
    robust_z: Fraction,
    coverage_min: Fraction,
    coverage: Fraction | None,
) -> float:
    """How far past its line the worst line crossed is, relative to the line."""
    scores = []
    if "project_rate" in fired:
        scores.append(score_of(Fraction(declared) - Fraction(project), Fraction(project)))
    if "legal_cap" in fired:
        scores.append(score_of(Fraction(declared) - legal_cap, legal_cap))
    if "peer_outlier" in fired:
        scores.append(score_of(z - robust_z, robust_z))
    if "payout_coverage" in fired:
        scores.append(score_of(coverage_min - coverage, coverage_min))
    return max(scores)


def _window(
    st: dict[str, Any], product: dict[str, Any], flows: figures.Flows, uncovered: bool
) -> tuple[int, int] | None:
    """(window_start, window_end), or None when a reference-only finding has no place in time."""
    base = pf.window_time(st, product)
    if uncovered:
        window_end = flows.last_payout
        return min(base if base is not None else flows.first, window_end), window_end
    if base is None:
        return None
    return base, base


def render(
    signal: ExcessReturnSignal,
    ctx: DetectContext,
    institution_id: str,
    institution_type: str | None,
    cfg: dict[str, Any],
    ratio_max_value: Any,
    peers: Peers,
) -> Finding:
    """The finding of a product that fires: metrics, accounts, evidence and the sentences."""
    flows, uncovered = signal.flows, signal.payout_coverage_short
    accounts = flows.accounts if uncovered else ()
    zh, en = sentences(signal, institution_type, peers, accounts)
    return Finding(
        typology=NAME,
        key=f"product:{signal.product_id}",
        institution_id=institution_id,
        severity=signal.severity,
        score=signal.score,
        accounts=accounts,
        amount_cents=flows.uncovered if uncovered else 0,
        window_start=signal.window_start,
        window_end=signal.window_end,
        record_ids=flows.record_ids if uncovered else (),
        metrics=metrics(signal, institution_type, peers),
        thresholds={**cfg, "term_ratio_max": ratio_max_value, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={"product_id": signal.product_id},
    )


class InstitutionCoverageSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that the institution's custody accounts as a whole paid out more than came back."""

    flows: figures.Flows  # the institution's payouts and repayments, every product and none
    payout_coverage_min: Fraction
    window_start: int
    window_end: int
    severity: str
    score: float


def _institution_coverage(
    ctx: DetectContext, st: dict[str, Any], institution_id: str, cfg: dict[str, Any]
) -> Finding | None:
    signal = decide_institution(st, cfg)
    return None if signal is None else render_institution(signal, ctx, st, institution_id, cfg)


def decide_institution(st: dict[str, Any], cfg: dict[str, Any]) -> InstitutionCoverageSignal | None:
    """The payout coverage of the institution's custody accounts as a whole, while some of their
    payouts or repayments cannot be attributed to a product."""
    if not figures.has_unattributed(st):
        return None
    coverage_min = fraction_of(cfg["payout_coverage_min"])
    flows = figures.institution_flows(st)
    if not flows.short(cents_of(cfg["min_payout"]), coverage_min):
        return None
    coverage = flows.coverage
    window_end = flows.last_payout
    return InstitutionCoverageSignal(
        flows=flows,
        payout_coverage_min=coverage_min,
        window_start=min(flows.first, window_end),
        window_end=window_end,
        severity="high" if coverage < coverage_min / 2 else "medium",
        score=score_of(coverage_min - coverage, coverage_min),
    )


def render_institution(
    signal: InstitutionCoverageSignal,
    ctx: DetectContext,
    st: dict[str, Any],
    institution_id: str,
    cfg: dict[str, Any],
) -> Finding:
    """The institution's finding: metrics (with the unattributed flows), evidence and the sentences."""
    flows, window_start, window_end = signal.flows, signal.window_start, signal.window_end
    accounts = flows.accounts
    zh, en = institution_sentences(flows, accounts, beijing_date(window_end))
    return Finding(
        typology=NAME,
        key=f"institution:{institution_id}",
        institution_id=institution_id,
        severity=signal.severity,
        score=signal.score,
        accounts=accounts,
        amount_cents=flows.uncovered,
        window_start=window_start,
        window_end=window_end,
        record_ids=flows.record_ids,
        metrics=institution_metrics(signal, st),
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={},
    )
