"""What excess_return (三(四)) and maturity_mismatch (二(一)) both read of a product's money: the
payouts to its investors and the repayments from its borrowers, as the custody account books them.

Payouts: instructed DEBITS on a custody or reserve account of the institution (``instruction_id``
set) with ``product_id`` = P to an account whose role is ``investor``. Repayments: CREDITS on a
custody or reserve account with ``product_id`` = P from an account whose role is ``borrower``.
Both are summed over the product's life as far as the detector has seen it; ``repaid / paid_out``
is the payout coverage. Below 1 the investors got more than the borrowers paid back: the
difference came from somewhere else (the institution's subsidy, or later investors' money).

Also kept per product: the event time of its first record of any kind (the window of a finding
when the product has no ``sale_start``). A product's term is *split* when
``term_days < underlying_term_days * term_ratio_max`` (maturity_mismatch's threshold, which
excess_return also reads to leave uncovered payouts of split products to maturity_mismatch).

State (``{"wm": ..., "products": {product_id: {"t0", "out", "in"}}}``, plain JSON): one payout and
one repayment bucket per product (common.add / seal: record ids of open days for replay
protection, the ``TOP_N`` largest records as evidence, cents per custody account in ``x``).
Records of products the reference data gives to another institution are ignored; products it does
not know yet are kept (they may be registered later). At most ``MAX_PRODUCTS`` products are kept,
the smallest product ids, so that the kept set does not depend on arrival order.

Everything here is pure: it changes only the state it is handed (a clone).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from models.detectors.common import add, advance, is_sealed, new_bucket, ratio_text, record_ids, seal
from models.detectors.context import CUSTODY_ROLES, DetectContext, _text
from schemas.fields import epoch_seconds
from schemas.messages import TxnRecord

PAYOUT = "payout"
REPAYMENT = "repayment"
MAX_PRODUCTS = 1000  # products kept per institution (the smallest ids)
TERM_RATIO_MAX = "0.5"  # maturity_mismatch's default for term_ratio_max
SPLIT_TYPOLOGY = "maturity_mismatch"  # whose term_ratio_max decides whether a term is split
INSTITUTION_ACCOUNT_ROLES = CUSTODY_ROLES | {"own_operating"}


def empty_state() -> dict[str, Any]:
    return {"wm": None, "products": {}}


# -- product reference data -----------------------------------------------------------------


def fixed(value: Decimal | Fraction | None, places: int = 6) -> str | None:
    """A rate or ratio in metrics: a decimal string with fixed places ("0.085000"; zero as
    "0.000000", where common.ratio_text alone would give "0E-6"), None when unknown."""
    if value is None:
        return None
    return format(Decimal(ratio_text(Fraction(value), places)), "f")


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
    return ctx.institution_config(SPLIT_TYPOLOGY, institution_id, {"term_ratio_max": TERM_RATIO_MAX})[
        "term_ratio_max"
    ]


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


def is_institution_account(ctx: DetectContext, institution_id: str, account_id: str | None) -> bool:
    """One of the institution's own accounts: custody, reserve or own operating (the accounts whose
    records institution-level detectors see, models/institution_detection.INSTITUTION_ROLES)."""
    account = ctx.account(account_id)
    return (
        account is not None
        and _text(account.get("role")) in INSTITUTION_ACCOUNT_ROLES
        and _text(account.get("institution_id")) == institution_id
    )


def flow_kind(ctx: DetectContext, record: TxnRecord) -> str | None:
    """PAYOUT, REPAYMENT or None (the record is neither) for a record with a product id."""
    if not record.product_id or not is_custody(ctx, record.account_id):
        return None
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


def _entry(products: dict[str, Any], product_id: str) -> dict[str, Any]:
    entry = products.get(product_id)
    if entry is None:
        # t0: first record of the product (any kind); out: payouts; in: repayments
        entry = products[product_id] = {"t0": None, "out": new_bucket(), "in": new_bucket()}
    return entry


def fold(ctx: DetectContext, st: dict[str, Any], institution_id: str, records: list[TxnRecord]) -> set[str]:
    """Count one message's records (already the institution's own) into ``st``; advance its
    watermark. Returns the product ids whose figures changed."""
    wm = st["wm"]
    products = st["products"]
    moved: set[str] = set()
    for record in records:
        pid, ts = record.product_id, record.booked_at
        if not pid or record.currency != "CNY" or is_sealed(ts, wm) or not tracked(ctx, institution_id, pid):
            continue
        entry = _entry(products, pid)
        if entry["t0"] is None or ts < entry["t0"]:
            entry["t0"] = ts
            moved.add(pid)
        kind = flow_kind(ctx, record)
        if kind is not None:
            bucket = entry["out"] if kind == PAYOUT else entry["in"]
            if add(bucket, record.record_id, ts, record.amount_cents, tag=record.account_id):
                moved.add(pid)
    st["wm"] = advance(wm, records, ctx.event_time_ceiling)
    return moved


def prune(st: dict[str, Any]) -> None:
    """Forget record ids of sealed days and keep at most MAX_PRODUCTS products."""
    wm = st["wm"]
    products = st["products"]
    if len(products) > MAX_PRODUCTS:
        st["products"] = products = {pid: products[pid] for pid in sorted(products)[:MAX_PRODUCTS]}
    for entry in products.values():
        seal(entry["out"], wm)
        seal(entry["in"], wm)


# -- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flows:
    paid_out: int  # cents paid to investors
    payouts: int  # number of payouts
    repaid: int  # cents repaid by borrowers
    repayments: int
    first: int | None  # earliest payout or repayment
    last_payout: int | None  # latest payout
    buckets: tuple[dict[str, Any], ...] = ()  # the payout and repayment buckets with records

    @property
    def coverage(self) -> Fraction | None:
        """repaid / paid_out (None before the first payout)."""
        return Fraction(self.repaid, self.paid_out) if self.paid_out > 0 else None

    @property
    def uncovered(self) -> int:
        """Payouts beyond the repayments (cents, 0 when covered)."""
        return max(0, self.paid_out - self.repaid)

    @property
    def accounts(self) -> tuple[str, ...]:
        """The custody accounts that booked the payouts and repayments."""
        return tuple(sorted({account for bucket in self.buckets for account in bucket["x"]}))

    @property
    def record_ids(self) -> tuple[str, ...]:
        """The largest payouts and repayments (TOP_N), in event-time order."""
        return record_ids(self.buckets)

    def short(self, min_payout: int, coverage_min: Fraction) -> bool:
        """Payouts of at least ``min_payout`` with ``repaid / paid_out < coverage_min``."""
        coverage = self.coverage
        return self.paid_out >= min_payout and coverage is not None and coverage < coverage_min


NO_FLOWS = Flows(0, 0, 0, 0, None, None)


def flows_of(st: dict[str, Any], product_id: str) -> Flows:
    entry = st.get("products", {}).get(product_id)
    if entry is None:
        return NO_FLOWS
    out, back = entry["out"], entry["in"]
    times = [t for t in (out["t0"], back["t0"]) if t is not None]
    return Flows(
        paid_out=out["c"],
        payouts=out["n"],
        repaid=back["c"],
        repayments=back["n"],
        first=min(times) if times else None,
        last_payout=out["t1"],
        buckets=tuple(b for b in (out, back) if b["n"] > 0),
    )
