"""What excess_return (三(四)) and maturity_mismatch (二(一)) both read of a product's money: the
payouts to its investors and the repayments from its borrowers, as the custody account books them.

Payouts: instructed DEBITS on a custody or reserve account of the institution (``instruction_id``
set) to an account whose role is ``investor``. Repayments: CREDITS on a custody or reserve account
from an account whose role is ``borrower``. ``repaid / paid_out`` is the payout coverage. Below 1
the investors got more than the borrowers paid back: the difference came from somewhere else (the
institution's subsidy, or later investors' money).

Which product. ``product_id`` is optional on a record (CONTRACT.md §3): a repayment without one is
still a repayment. A payout or repayment is attributed, in this order, to the record's
``product_id``; else the ``product_id`` the reference data gives the custody account or the
counterparty's account; else the institution's only product; else, for a repayment, the only
product the counterparty's tagged records name (a borrower's loans and tagged repayments, an
investor's subscriptions and tagged payouts). Attributed flows are summed per product over its life
as far as the detector has seen it; the rest are kept per institution (``un``; untagged repayments
also per borrower and untagged payouts per investor, so that a counterparty whose product becomes
known later is attributed then: the figures are a function of the set of records).

A product's payout coverage is then judged on the product's own figures (``coverage_basis``
"product") when they settle it: no flow is left unattributed, or the product is short even if
every unattributed repayment were its own. Otherwise the product is not judged alone, and the
payout coverage of the institution's custody accounts as a whole is (``coverage_basis``
"institution"; excess_return reports it): what no record says is never read as "no repayment".

Also kept per product: the event time of its first record of any kind (the window of a finding
when the product has no ``sale_start``). A product's term is *split* when
``term_days < underlying_term_days * term_ratio_max`` (maturity_mismatch's threshold, which
excess_return also reads to leave uncovered payouts of split products to maturity_mismatch).

Event time: the watermark follows the banks of the institution's custody and reserve accounts
(common.advance_sources), the only records these figures are made of. A late record (its day
sealed) still counts: the sums are kept for the product's life, its id among the late ones.

State (``{"wm", "src", "products": {product_id: {"t0", "out", "in"}}, "un": {"out", "in", "by",
"pby"}, "cp": {counterparty: [product ids]}}``, plain JSON): one payout and one repayment bucket per
product and for the unattributed (common.add: sums, the ``TOP_N`` largest records as evidence,
cents per custody account in ``x``), the unattributed
repayments per borrower (``by``) and payouts per investor (``pby``), and up to two products per
borrower or investor seen on tagged records. Records of
products the reference data gives to another institution are ignored; products it does not know
yet are kept (they may be registered later). At most ``MAX_PRODUCTS`` products and
``MAX_BORROWERS`` borrowers are kept, the smallest ids, so that the kept set does not depend on
arrival order.

Everything here is pure: it changes only the state it is handed (a clone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from models.detectors.common import (
    add,
    advance_sources,
    new_bucket,
    open_from,
)
from models.detectors.context import CUSTODY_ROLES, DetectContext, _text
from schemas.fields import epoch_seconds
from schemas.messages import TxnRecord

PAYOUT = "payout"
REPAYMENT = "repayment"
MAX_PRODUCTS = 1000  # products kept per institution (the smallest ids)
MAX_BORROWERS = (
    5000  # borrowers (and investors) whose products or unattributed flows are kept (the smallest ids)
)
# The roles whose tagged records tell the product of their untagged ones.
_LEARNED_ROLES = frozenset({"borrower", "investor"})
TERM_RATIO_MAX = "0.5"  # maturity_mismatch's default for term_ratio_max
SPLIT_TYPOLOGY = "maturity_mismatch"  # whose term_ratio_max decides whether a term is split
INSTITUTION_ACCOUNT_ROLES = CUSTODY_ROLES | {"own_operating"}
# one object: the context merges thresholds over defaults once per defaults object it is handed
_SPLIT_DEFAULTS = {"term_ratio_max": TERM_RATIO_MAX}
_UNREAD: Any = object()  # a look-up not made yet (None is an answer)


def empty_state() -> dict[str, Any]:
    return {"wm": None, "products": {}}


def _unattributed(st: dict[str, Any]) -> dict[str, Any]:
    un = st.get("un")
    if un is None:
        # out/in: payouts and repayments attributed to no product; by: {borrower: [cents, n]};
        # pby: {investor: [cents, n]}
        un = st["un"] = {"out": new_bucket(), "in": new_bucket(), "by": {}, "pby": {}}
    return un


# -- product reference data -----------------------------------------------------------------


def rate_of(value: Any) -> Decimal | None:
    """A decimal-string rate of the reference data ("0.085"), or None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        rate = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return rate if rate.is_finite() else None


def days_of(value: Any) -> int | None:
    """A positive whole number of days, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        days = int(value)
    except (TypeError, ValueError):
        return None
    return days if days > 0 else None


def time_of(value: Any) -> int | None:
    """An RFC 3339 time of the reference data as epoch seconds, or None."""
    if not value:
        return None
    try:
        return epoch_seconds(str(value))
    except ValueError:
        return None


def term_ratio(product: dict[str, Any]) -> Fraction | None:
    """term_days / underlying_term_days, when both are known."""
    term, underlying = days_of(product.get("term_days")), days_of(product.get("underlying_term_days"))
    if term is None or underlying is None:
        return None
    return Fraction(term, underlying)


def term_ratio_max(ctx: DetectContext, institution_id: str) -> Any:
    """maturity_mismatch's term_ratio_max for the institution's type, as the configuration gives it."""
    return ctx.institution_config(SPLIT_TYPOLOGY, institution_id, _SPLIT_DEFAULTS)["term_ratio_max"]


def is_split(product: dict[str, Any], ratio_max: Fraction) -> bool:
    """``term_days < underlying_term_days * term_ratio_max`` (False when either term is unknown)."""
    ratio = term_ratio(product)
    return ratio is not None and ratio < ratio_max


def window_time(st: dict[str, Any], product: dict[str, Any]) -> int | None:
    """Where a product's finding sits in time when no payout places it: its ``sale_start``; without
    one, the first record of the product seen. None (the finding waits) when neither is known, or
    when the sale starts after the latest record seen (never a window in the future of the data)."""
    start = time_of(product.get("sale_start"))
    if start is not None:
        wm = st.get("wm")
        return None if wm is not None and start > wm else start
    entry = st.get("products", {}).get(str(product.get("product_id")))
    return entry["t0"] if entry else None


# -- records --------------------------------------------------------------------------------


def of_institution(ctx: DetectContext, institution_id: str, records: Iterable[Any]) -> list[TxnRecord]:
    """The transactions booked on accounts of this institution (a message should hold no other)."""
    return [
        r for r in records if isinstance(r, TxnRecord) and ctx.institution_id(r.account_id) == institution_id
    ]


def is_custody(ctx: DetectContext, account_id: str) -> bool:
    return ctx.role(account_id) in CUSTODY_ROLES


# One of the institution's own accounts as the detectors read it: its role and its bank code
OwnAccount = tuple[str, str]


def own_account(ctx: DetectContext, institution_id: str, account_id: str | None) -> OwnAccount | None:
    """(role, bank code) of one of the institution's own accounts: custody, reserve or own
    operating (the accounts whose records institution-level detectors see,
    models/institution_detection.INSTITUTION_ROLES); None for any other account."""
    account = ctx.account(account_id) if account_id else None
    if account is None or _text(account.get("institution_id")) != institution_id:
        return None
    role = _text(account.get("role"))
    return (role, str(account.get("bank_code") or "")) if role in INSTITUTION_ACCOUNT_ROLES else None


def flow_kind(ctx: DetectContext, record: TxnRecord) -> str | None:
    """PAYOUT, REPAYMENT or None (the record is neither), whatever its product."""
    if not is_custody(ctx, record.account_id):
        return None
    return _custody_flow_kind(ctx, record)


def _custody_flow_kind(ctx: DetectContext, record: TxnRecord) -> str | None:
    """``flow_kind`` of a record already known to be booked on a custody account."""
    counterparty = record.counterparty_account
    if not counterparty or counterparty == record.account_id:
        return None
    role = ctx.role(counterparty)
    if record.credit:
        return REPAYMENT if role == "borrower" else None
    return PAYOUT if record.instruction_id and role == "investor" else None


def tracked(ctx: DetectContext, institution_id: str, product_id: str) -> bool:
    """A product of this institution, or one the reference data does not know (yet)."""
    product = ctx.references.product(product_id)
    return product is None or _text(product.get("institution_id")) == institution_id


def only_product(ctx: DetectContext, institution_id: str) -> str | None:
    """The institution's product when it has exactly one."""
    products = ctx.references.products_of(institution_id)
    return str(products[0]["product_id"]) if len(products) == 1 else None


def product_of(ctx: DetectContext, record: TxnRecord, single: str | None) -> str | None:
    """The product a record belongs to by what it and the reference data say (see the module
    docstring; the borrower's products seen on other records come in at evaluation)."""
    if record.product_id:
        return record.product_id
    for account_id in (record.account_id, record.counterparty_account):
        account = ctx.account(account_id)
        if account is not None and account.get("product_id"):
            return str(account["product_id"])
    return single


def _entry(products: dict[str, Any], product_id: str) -> dict[str, Any]:
    entry = products.get(product_id)
    if entry is None:
        # t0: first record of the product (any kind); out: payouts; in: repayments
        entry = products[product_id] = {"t0": None, "out": new_bucket(), "in": new_bucket()}
    return entry


def _learn(st: dict[str, Any], counterparty: str, product_id: str) -> None:
    """Note the product a tagged record names for its counterparty, a borrower or an investor (at
    most two per counterparty: one is enough to attribute, two say it cannot be)."""
    known = st.setdefault("cp", {}).setdefault(counterparty, [])
    if product_id not in known:
        # the two smallest ids: whatever order the records come in, the same two are kept
        known.append(product_id)
        known.sort()
        del known[2:]


def fold(ctx: DetectContext, st: dict[str, Any], institution_id: str, records: list[TxnRecord]) -> set[str]:
    """Count one message's records (already the institution's own) into ``st``; advance its
    watermark. Returns the product ids whose figures changed ("" for the unattributed)."""
    return fold_custody(ctx, st, institution_id, [r for r in records if is_custody(ctx, r.account_id)])


def fold_custody(
    ctx: DetectContext,
    st: dict[str, Any],
    institution_id: str,
    feeding: list[TxnRecord],
    sources: list[TxnRecord] | None = None,
) -> set[str]:
    """``fold`` of the records of the institution's custody and reserve accounts alone (the
    records these figures are made of, and the watermark's sources); ``sources``, when given, are
    those the watermark advances over in their place (the latest of each bank among them)."""
    moved = fold_flows(st, custody_flows(ctx, institution_id, feeding))
    advance_sources(st, ctx, feeding if sources is None else sources)
    return moved


# One custody record as the figures take it: the record, its product (None: unattributed), its
# kind (PAYOUT, REPAYMENT or None) and whether its counterparty learns the product from it
# (``_learn``: for the first record of the message naming that pair).
Flow = tuple[TxnRecord, str | None, str | None, bool]


def custody_flows(ctx: DetectContext, institution_id: str, feeding: list[TxnRecord]) -> list[Flow]:
    """What ``fold_custody`` reads of each record of the institution's custody and reserve
    accounts, in their order: a function of the records and the reference data alone, so that
    every state folding the same message can share it. Records that change no figure (another
    currency, another institution's product, an unattributed record that is no flow) are left out."""
    flows: list[Flow] = []
    product_of = products_of_records(ctx, only_product(ctx, institution_id))
    kept: dict[str, bool] = {}  # product id -> tracked
    # counterparty -> its role: read once per call, for the flow's kind and for _learn alike
    roles: dict[str | None, str | None] = {}
    learned: set[tuple[str | None, str]] = set()  # (counterparty, product id) noted by _learn
    for record in feeding:
        if record.currency != "CNY":
            continue
        pid = record.product_id or product_of(record)
        if pid is not None:
            keep = kept.get(pid)
            if keep is None:
                keep = kept[pid] = tracked(ctx, institution_id, pid)
            if not keep:
                continue
        counterparty = record.counterparty_account
        role = roles.get(counterparty, _UNREAD)  # None without a counterparty (ctx.role)
        if role is _UNREAD:
            role = roles[counterparty] = ctx.role(counterparty)
        # _custody_flow_kind with the role read above (feeding: custody accounts' records only)
        kind = None
        if role is not None and counterparty != record.account_id:
            if record.credit:
                kind = REPAYMENT if role == "borrower" else None
            elif role == "investor" and record.instruction_id:
                kind = PAYOUT
        learns = False
        if record.product_id and role in _LEARNED_ROLES:
            # _learn of a pair it has noted changes nothing: the first of each pair is enough
            pair = (counterparty, pid)
            learns = pair not in learned
            if learns:
                learned.add(pair)
        if pid is not None or kind is not None:
            flows.append((record, pid, kind, learns))
    return flows


def fold_flows(st: dict[str, Any], flows: list[Flow]) -> set[str]:
    """Count ``custody_flows`` into ``st`` (its watermark not advanced). Returns the product ids
    whose figures changed ("" for the unattributed)."""
    start = open_from(st["wm"])  # is_sealed(ts, wm) is ts < start
    products = st["products"]
    moved: set[str] = set()
    for record, pid, kind, learns in flows:
        ts = record.booked_at
        late = start is not None and ts < start
        if pid is None:
            if kind is not None and _fold_unattributed(st, record, kind, late):
                moved.add("")
            continue
        entry = products.get(pid) or _entry(products, pid)
        t0 = entry["t0"]
        if t0 is None or ts < t0:
            entry["t0"] = ts
            moved.add(pid)
        if learns:
            _learn(st, record.counterparty_account, pid)
        if kind is not None:
            bucket = entry["out"] if kind == PAYOUT else entry["in"]
            add(bucket, record.record_id, ts, record.amount_cents, tag=record.account_id, late=late)
            moved.add(pid)
    return moved


def products_of_records(ctx: DetectContext, single: str | None) -> Callable[[TxnRecord], str | None]:
    """``product_of`` with the ``product_id`` of each account read once per function made (one
    per message: a message holds few accounts and many records)."""
    by_account: dict[str | None, str | None] = {}

    def account_product(account_id: str | None) -> str | None:
        try:
            return by_account[account_id]
        except KeyError:
            account = ctx.account(account_id)
            found = str(account["product_id"]) if account is not None and account.get("product_id") else None
            by_account[account_id] = found
            return found

    def product_of_record(record: TxnRecord) -> str | None:
        if record.product_id:
            return record.product_id
        found = account_product(record.account_id)
        if found is None:
            found = account_product(record.counterparty_account)
        return single if found is None else found

    return product_of_record


def _fold_unattributed(st: dict[str, Any], record: TxnRecord, kind: str, late: bool) -> bool:
    un = _unattributed(st)
    bucket = un["out"] if kind == PAYOUT else un["in"]
    add(bucket, record.record_id, record.booked_at, record.amount_cents, tag=record.account_id, late=late)
    per = un["by"] if kind == REPAYMENT else un.setdefault("pby", {})
    sums = per.setdefault(record.counterparty_account, [0, 0])
    sums[0] += record.amount_cents
    sums[1] += 1
    return True


def prune(st: dict[str, Any]) -> None:
    """Keep at most MAX_PRODUCTS products and MAX_BORROWERS borrowers (the smallest ids)."""
    products = st["products"]
    if len(products) > MAX_PRODUCTS:
        st["products"] = products = {pid: products[pid] for pid in sorted(products)[:MAX_PRODUCTS]}
    un = st.get("un")
    if un is not None:
        for key in ("by", "pby"):
            per = un.get(key)
            if per is not None and len(per) > MAX_BORROWERS:
                un[key] = {b: per[b] for b in sorted(per)[:MAX_BORROWERS]}
    cp = st.get("cp")
    if cp is not None and len(cp) > MAX_BORROWERS:
        st["cp"] = {b: cp[b] for b in sorted(cp)[:MAX_BORROWERS]}
