"""investor_cap_breach: a product sold to more investors than the law or its terms allow
(《方案》二(四): 向特定对象销售但突破法定人数限制).

One alert per product, key ``product:<product_id>``. The product's investors are the distinct
accounts paying into it: CREDITS on a custody or reserve account of the institution for product P
(the record's ``product_id``; without one, the ``product_id`` the reference data gives the custody
or the payer's account, else the institution's only product: product_flows.product_of; a payment
none of these place is not counted for any product, never as "no investor") whose payer (``counterparty_account``) is neither an account of this institution
(its custody, reserve and own operating accounts) nor a ``borrower``: investor accounts, accounts
unknown to the reference data, and anybody else who subscribes (every subscriber counts towards
the legal limit). The cap is the product's ``investor_cap`` when set; without one,
``default_cap`` (200), except for institutions whose type is in ``uncapped_types`` (P2P lending
and payment: their public products have no investor cap, so they are not watched). Fires when the
distinct investors exceed the cap.

Order-independent definitions (each a function of the set of payments): investors are ranked by
their first payment (event time, then record id, then account); the first ``cap`` are within the
cap, the others beyond it. ``window_start`` = the first investor's first payment; ``window_end`` =
the first payment of investor number ``cap + 1``, the moment the count first exceeded the cap
(fixed once reached, so an unchanged breach is re-emitted byte for byte). Evidence: the first
payments of the investors beyond the cap, the ``TOP_N`` largest (amount, then time, then id).
``amount_cents``: everything the investors paid into the product.

Severity: medium just above the cap; high at ``high_multiple`` (1.5) times it; critical at
``critical_multiple`` (3) times it. Score: (investors - cap) / ((critical_multiple - 1) * cap),
capped at 1.

Event time: the watermark follows the banks of the institution's custody and reserve accounts
(common.advance_sources); a late payment (its day sealed) still counts, and the finding says
``late: true``.

The rule apart from its explanation: ``decide`` compares the count of investors (a dictionary
length) with the cap and returns an ``InvestorCapBreachSignal`` (severity, score and the counts that
decided) or None; ``render`` ranks the investors, only of a product over its cap, for the window and
the evidence, and builds the metrics and the Chinese and English sentences.

State (plain JSON): the watermark and its sources and, per product, a bucket of the investors' payments (the
sum, cents per custody account) and the investors with
their first payment ``[event time, record id, cents]``. At most ``max(3 * cap, cap + 1000)``
investors are kept per product, those ranked first (the smallest N of a set do not depend on
arrival order), so the count is exact up to that bound and reported as "at least" beyond it. At
most product_flows.MAX_PRODUCTS products are kept (the smallest ids).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import msgspec

from models.detectors import product_figures as figures
from models.detectors import product_flows as pf
from models.detectors.common import (
    TOP_N,
    add,
    advance_sources,
    beijing_date,
    beijing_time,
    clone,
    is_late,
    new_bucket,
    open_from,
    score_of,
)
from models.detectors.context import DetectContext, _text
from models.detectors.figures import fraction_of
from models.detectors.institution_messages import MessageView, OwnAccounts, view_of
from models.detectors.wording import cite_en, cite_zh, mask, money, percent, yuan_en, yuan_zh
from models.findings import Finding
from schemas.messages import TxnRecord

NAME = "investor_cap_breach"
VERSION = "1"
SCOPE = "institution"
RULE = "二(四)"
BOUND_MULTIPLE = 3  # investors kept per product: max(BOUND_MULTIPLE * cap, cap + BOUND_EXTRA)
BOUND_EXTRA = 1000

DEFAULTS = {
    "default_cap": 200,
    "uncapped_types": ["p2p_lending", "payment"],
    "high_multiple": "1.5",
    "critical_multiple": "3",
}


def empty_state() -> dict[str, Any]:
    return {"wm": None, "products": {}}


def bound(cap: int) -> int:
    return max(BOUND_MULTIPLE * cap, cap + BOUND_EXTRA)


def _uncapped(cfg: dict[str, Any]) -> set[str]:
    value = cfg["uncapped_types"]
    items = value.split(",") if isinstance(value, str) else value
    return {str(item).strip() for item in items or () if str(item).strip()}


class Caps:
    """The cap of each product of one institution: (cap, "product" or "default"), or None."""

    def __init__(self, ctx: DetectContext, institution_id: str, cfg: dict[str, Any]) -> None:
        self.ctx = ctx
        institution = ctx.references.institution(institution_id) or {}
        self.institution_type = _text(institution.get("type"))
        self.default = None if self.institution_type in _uncapped(cfg) else int(cfg["default_cap"])

    def of(self, product: dict[str, Any] | None) -> tuple[int, str] | None:
        declared = pf.days_of(product.get("investor_cap")) if product else None  # a positive int
        if declared is not None:
            return declared, "product"
        return None if self.default is None else (self.default, "default")


def _may_invest(ctx: DetectContext, own: OwnAccounts, payer: str) -> bool:
    """Whether a payer's credits are investments: neither a borrower nor one of the institution's
    own accounts (an investor account, one unknown to the reference data, or anybody else's)."""
    return ctx.role(payer) != "borrower" and own[payer] is None


def _rank(item: tuple[str, list[Any]]) -> tuple[int, str, str]:
    investor, (ts, record_id, _cents) = item
    return (ts, record_id, investor)


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    msg_id: str,
    records: list[TxnRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of the institution; return the new state and the finding of every
    product of the institution over its cap (unchanged ones are re-emitted identically)."""
    return detect_view(ctx, state, institution_id, view_of(ctx, institution_id, msg_id, records))


def detect_view(
    ctx: DetectContext, state: dict[str, Any] | None, institution_id: str, view: MessageView
) -> tuple[dict[str, Any], list[Finding]]:
    """``detect`` of the message ``view`` was made of (institution_messages.view_of)."""
    cfg = ctx.institution_config(NAME, institution_id, DEFAULTS)
    caps = Caps(ctx, institution_id, cfg)
    st = clone(state) or empty_state()
    moved = _fold(ctx, st, institution_id, view, caps)
    products = st["products"]
    for pid, cap in moved.items():
        investors = products[pid]["inv"]
        if len(investors) > bound(cap):
            products[pid]["inv"] = dict(sorted(investors.items(), key=_rank)[: bound(cap)])
    wm = advance_sources(st, ctx, view.sources)  # as over all of view.custody
    if len(products) > pf.MAX_PRODUCTS:
        st["products"] = products = {pid: products[pid] for pid in sorted(products)[: pf.MAX_PRODUCTS]}
    findings = _findings(ctx, st, institution_id, cfg, caps)
    return (st if products or wm is not None else {}), findings


def _fold(
    ctx: DetectContext, st: dict[str, Any], institution_id: str, view: MessageView, caps: Caps
) -> dict[str, int]:
    """Count the investors' payments among the records of the institution's custody and reserve
    accounts; the products they moved, with their caps."""
    products = st["products"]
    product_of = pf.products_of_records(ctx, pf.only_product(ctx, institution_id))
    moved: dict[str, int] = {}  # product id -> its cap
    caps_of: dict[str, tuple[int, str] | None] = {}  # product id -> its cap, None: not counted
    start = open_from(st["wm"])  # is_sealed(ts, wm) is ts < start
    payers: dict[str, bool] = {}  # counterparty -> may be an investor (_may_invest)
    for record in view.custody:
        investor = record.counterparty_account
        if not record.credit or record.currency != "CNY" or not investor or investor == record.account_id:
            continue  # not an investor's payment in CNY
        may = payers.get(investor)
        if may is None:
            may = payers[investor] = _may_invest(ctx, view.own, investor)
        pid = (record.product_id or product_of(record)) if may else None
        if pid is None:
            continue
        if pid in caps_of:
            cap = caps_of[pid]
        else:
            tracked = pf.tracked(ctx, institution_id, pid)
            cap = caps_of[pid] = caps.of(ctx.references.product(pid)) if tracked else None
        if cap is None:
            continue
        ts, record_id, cents = record.booked_at, record.record_id, record.amount_cents
        entry = products.get(pid)
        if entry is None:
            # in: the investors' payments; inv: {investor: [first event time, record id, cents]}
            entry = products[pid] = {"in": new_bucket(), "inv": {}}
        late = start is not None and ts < start
        add(entry["in"], record_id, ts, cents, tag=record.account_id, top=False, late=late)
        first = entry["inv"].get(investor)
        if first is None or (ts, record_id) < (first[0], first[1]):
            entry["inv"][investor] = [ts, record_id, cents]
        moved[pid] = cap[0]
    return moved


def current(ctx: DetectContext, state: dict[str, Any] | None, institution_id: str) -> list[Finding]:
    """The findings the state and the reference data hold now."""
    cfg = ctx.institution_config(NAME, institution_id, DEFAULTS)
    return _findings(ctx, state or empty_state(), institution_id, cfg, Caps(ctx, institution_id, cfg))


class InvestorCapBreachSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that a product is over its investor cap."""

    product_id: str
    investor_cap: int
    cap_source: str  # "product" (its registered cap) or "default"
    distinct_investors: int
    distinct_investors_at_least: bool  # the count reached the bound of investors kept
    investors_over_cap: int
    severity: str
    score: float


def _findings(
    ctx: DetectContext, st: dict[str, Any], institution_id: str, cfg: dict[str, Any], caps: Caps
) -> list[Finding]:
    findings = []
    for product in ctx.references.products_of(institution_id):
        pid = str(product["product_id"])
        entry = st["products"].get(pid)
        cap = caps.of(product)
        if entry is None or cap is None:
            continue
        signal = decide(cfg, pid, len(entry["inv"]), *cap)
        if signal is not None:
            findings.append(render(signal, ctx, institution_id, cfg, caps.institution_type, entry))
    return findings


def decide(
    cfg: dict[str, Any], product_id: str, investors: int, cap: int, source: str
) -> InvestorCapBreachSignal | None:
    """The rule: more distinct investors than the cap (a dictionary length, no sorting)."""
    if investors <= cap:
        return None
    over = investors - cap
    high, critical = fraction_of(cfg["high_multiple"]), fraction_of(cfg["critical_multiple"])
    if investors >= critical * cap:
        severity = "critical"
    elif investors >= high * cap:
        severity = "high"
    else:
        severity = "medium"
    return InvestorCapBreachSignal(
        product_id=product_id,
        investor_cap=cap,
        cap_source=source,
        distinct_investors=investors,
        distinct_investors_at_least=investors >= bound(cap),
        investors_over_cap=over,
        severity=severity,
        score=score_of(over, (critical - 1) * cap),
    )


def render(
    signal: InvestorCapBreachSignal,
    ctx: DetectContext,
    institution_id: str,
    cfg: dict[str, Any],
    institution_type: str | None,
    entry: dict[str, Any],
) -> Finding:
    """The finding of a breach: the window and evidence from the ranked investors, the metrics and
    the sentences."""
    pid, cap, count = signal.product_id, signal.investor_cap, signal.distinct_investors
    ranked = sorted(entry["inv"].items(), key=_rank)
    window_start, window_end = ranked[0][1][0], ranked[cap][1][0]
    beyond = sorted((first for _, first in ranked[cap:]), key=lambda f: (-f[2], f[0], f[1]))[:TOP_N]
    evidence = tuple(f[1] for f in sorted(beyond, key=lambda f: (f[0], f[1])))
    unknown = sum(1 for investor, _ in ranked if ctx.account(investor) is None)
    paid = entry["in"]
    ratio = Fraction(count, cap) if cap > 0 else None
    return Finding(
        typology=NAME,
        key=f"product:{pid}",
        institution_id=institution_id,
        severity=signal.severity,
        score=signal.score,
        accounts=tuple(sorted(paid["x"])),
        amount_cents=paid["c"],
        window_start=window_start,
        window_end=window_end,
        record_ids=evidence,
        metrics={
            "product_id": pid,
            "investor_cap": cap,
            "cap_source": signal.cap_source,
            "institution_type": institution_type,
            "distinct_investors": count,
            "distinct_investors_at_least": signal.distinct_investors_at_least,
            "distinct_investors_unknown": unknown,
            "investors_over_cap": signal.investors_over_cap,
            "investors_to_cap": figures.fixed(ratio, 4),
            "payments": paid["n"],
            "paid_in": money(paid["c"]),
            "first_payment_at": beijing_time(window_start),
            "cap_exceeded_at": beijing_time(window_end),
            "late": is_late(paid),
        },
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=_explain_zh(signal, paid, unknown, ratio, window_start, window_end),
        explanation_en=_explain_en(signal, paid, unknown, ratio, window_start, window_end),
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={"product_id": pid},
    )


def _explain_zh(
    signal: InvestorCapBreachSignal,
    paid: dict[str, Any],
    unknown: int,
    ratio: Fraction | None,
    window_start: int,
    window_end: int,
) -> str:
    at_least, cap = signal.distinct_investors_at_least, signal.investor_cap
    count, over = signal.distinct_investors, signal.investors_over_cap
    n_zh = f"至少{count}" if at_least else str(count)
    over_zh = f"至少{over}" if at_least else str(over)
    unknown_zh = f"（其中{unknown}个未在参考数据中登记）" if unknown else ""
    cap_zh = "产品登记的投资人数上限" if signal.cap_source == "product" else "默认投资人数上限"
    ratio_zh = f"，为上限的{percent(ratio)}" if ratio is not None else ""
    masked_zh = "、".join(mask(a) for a in sorted(paid["x"]))
    return (
        f"产品{signal.product_id}自{beijing_date(window_start)}起由{n_zh}个不同的投资人账户{unknown_zh}认购，经客户资金账户"
        f"{masked_zh}入账{paid['n']}笔、合计{yuan_zh(paid['c'])}；{cap_zh}为{cap}人，第{cap + 1}个投资人于"
        f"{beijing_time(window_end)}入账时即已突破，现超出{over_zh}人{ratio_zh}。"
        f"涉嫌向特定对象销售但突破法定人数限制{cite_zh(RULE)}。"
    )


def _explain_en(
    signal: InvestorCapBreachSignal,
    paid: dict[str, Any],
    unknown: int,
    ratio: Fraction | None,
    window_start: int,
    window_end: int,
) -> str:
    at_least, cap = signal.distinct_investors_at_least, signal.investor_cap
    count, over = signal.distinct_investors, signal.investors_over_cap
    n_en = f"at least {count}" if at_least else str(count)
    over_en = f"at least {over}" if at_least else str(over)
    unknown_en = f" ({unknown} of them not in the reference data)" if unknown else ""
    cap_en = "its registered investor cap" if signal.cap_source == "product" else "the default investor cap"
    ratio_en = f", {percent(ratio)} of it" if ratio is not None else ""
    masked_en = ", ".join(mask(a) for a in sorted(paid["x"]))
    return (
        f"Since {beijing_date(window_start)} {n_en} distinct investor account(s){unknown_en} have paid "
        f"into product {signal.product_id} through the customer-fund account(s) {masked_en}, {paid['n']} payment(s) "
        f"totalling {yuan_en(paid['c'])}; {cap_en} is {cap}, passed when investor number {cap + 1} paid "
        f"at {beijing_time(window_end)}, and the product is now {over_en} over it{ratio_en}. Suspected "
        f"sale beyond the legal limit on the number of investors {cite_en(RULE)}."
    )
