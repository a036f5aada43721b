"""The figures of a product's or an institution's payouts and repayments (``Flows``), read from
the state models/detectors/product_flows.py folds, and how a finding writes them in its metrics.
excess_return and maturity_mismatch report the same figures under the same names, from here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from models.detectors.common import is_late, new_bucket, record_ids
from models.detectors.wording import money, ratio_text


def fixed(value: Decimal | Fraction | None, places: int = 6) -> str | None:
    """A rate or ratio in metrics: a decimal string with fixed places ("0.085000"; zero as
    "0.000000", where common.ratio_text alone would give "0E-6"), None when unknown."""
    if value is None:
        return None
    return format(Decimal(ratio_text(Fraction(value), places)), "f")


@dataclass(frozen=True)
class Flows:
    paid_out: int  # cents paid to investors
    payouts: int  # number of payouts
    repaid: int  # cents repaid by borrowers
    repayments: int
    first: int | None  # earliest payout or repayment
    last_payout: int | None  # latest payout
    buckets: tuple[dict[str, Any], ...] = ()  # the payout and repayment buckets with records
    open_repaid: int = 0  # the institution's repayments attributed to no product (cents)
    open_paid: int = 0  # ... and payouts
    basis: str = "product"  # "product": the figures of one product; "institution": of them all

    @property
    def coverage(self) -> Fraction | None:
        """repaid / paid_out (None before the first payout)."""
        return Fraction(self.repaid, self.paid_out) if self.paid_out > 0 else None

    @property
    def uncovered(self) -> int:
        """Payouts beyond the repayments (cents, 0 when covered)."""
        return max(0, self.paid_out - self.repaid)

    @property
    def settled(self) -> bool:
        """Whether the figures are all there is: nothing of the institution is unattributed."""
        return self.basis == "institution" or (self.open_repaid == 0 and self.open_paid == 0)

    @property
    def accounts(self) -> tuple[str, ...]:
        """The custody accounts that booked the payouts and repayments."""
        return tuple(sorted({account for bucket in self.buckets for account in bucket["x"]}))

    @property
    def record_ids(self) -> tuple[str, ...]:
        """The largest payouts and repayments (TOP_N), in event-time order."""
        return record_ids(self.buckets)

    @property
    def late(self) -> bool:
        """Whether a record that came after its day was sealed counts in the figures."""
        return any(is_late(bucket) for bucket in self.buckets)

    def short(self, min_payout: int, coverage_min: Fraction) -> bool:
        """Payouts of at least ``min_payout`` with ``repaid / paid_out < coverage_min``, even if
        every repayment attributed to no product were this product's."""
        if self.paid_out < min_payout or self.paid_out <= 0:
            return False
        return Fraction(self.repaid + self.open_repaid, self.paid_out) < coverage_min

    def judged(self, min_payout: int, coverage_min: Fraction) -> bool:
        """Whether the product's coverage can be told from its own figures: they are all there
        is, or they are short whatever the unattributed repayments."""
        return self.settled or self.short(min_payout, coverage_min)


NO_FLOWS = Flows(0, 0, 0, 0, None, None)


def attributed(st: dict[str, Any]) -> dict[str, list[int]]:
    """The unattributed flows each product gets from counterparties whose tagged records name it
    alone: {product_id: [repaid cents, repayments, paid-out cents, payouts]}."""
    un, cp = st.get("un"), st.get("cp") or {}
    out: dict[str, list[int]] = {}
    if not un:
        return out
    for side, key in ((0, "by"), (2, "pby")):
        for counterparty, (cents, count) in (un.get(key) or {}).items():
            known = cp.get(counterparty)
            if known and len(known) == 1:
                sums = out.setdefault(known[0], [0, 0, 0, 0])
                sums[side] += cents
                sums[side + 1] += count
    return out


_NOTHING = (0, 0, 0, 0)


def flows_of(st: dict[str, Any], product_id: str, extra: dict[str, list[int]] | None = None) -> Flows:
    """A product's figures; ``extra`` is ``attributed(st)`` (computed once per call by callers
    judging several products)."""
    entry = st.get("products", {}).get(product_id)
    if extra is None:
        extra = attributed(st)
    un = st.get("un")
    repaid_to, repayments_to, paid_to, payouts_to = extra.get(product_id, _NOTHING)
    open_repaid = (un["in"]["c"] - sum(sums[0] for sums in extra.values())) if un else 0
    open_paid = (un["out"]["c"] - sum(sums[2] for sums in extra.values())) if un else 0
    if entry is None:
        if not (repaid_to or paid_to):
            return (
                NO_FLOWS
                if not (open_repaid or open_paid)
                else Flows(0, 0, 0, 0, None, None, open_repaid=open_repaid, open_paid=open_paid)
            )
        out, back = new_bucket(), new_bucket()
    else:
        out, back = entry["out"], entry["in"]
    times = [t for t in (out["t0"], back["t0"]) if t is not None]
    buckets = [b for b in (out, back) if b["n"] > 0]
    if un:
        # the attributed flows are among these buckets' records
        if paid_to:
            buckets.append(un["out"])
            times.append(un["out"]["t0"])
        if repaid_to:
            buckets.append(un["in"])
    last_payout = out["t1"]
    if paid_to and un["out"]["t1"] is not None:
        last_payout = max(last_payout or 0, un["out"]["t1"])
    return Flows(
        paid_out=out["c"] + paid_to,
        payouts=out["n"] + payouts_to,
        repaid=back["c"] + repaid_to,
        repayments=back["n"] + repayments_to,
        first=min(times) if times else None,
        last_payout=last_payout,
        buckets=tuple(buckets),
        open_repaid=open_repaid,
        open_paid=open_paid,
    )


def institution_flows(st: dict[str, Any]) -> Flows:
    """The payouts and repayments of the institution's custody accounts, every product and none."""
    sides = [(e["out"], e["in"]) for e in st.get("products", {}).values()]
    un = st.get("un")
    if un:
        sides.append((un["out"], un["in"]))
    outs = [out for out, _ in sides if out["n"]]
    ins = [back for _, back in sides if back["n"]]
    times = [b["t0"] for b in (*outs, *ins)]
    return Flows(
        paid_out=sum(b["c"] for b in outs),
        payouts=sum(b["n"] for b in outs),
        repaid=sum(b["c"] for b in ins),
        repayments=sum(b["n"] for b in ins),
        first=min(times) if times else None,
        last_payout=max((b["t1"] for b in outs), default=None),
        buckets=tuple([*outs, *ins]),
        basis="institution",
    )


def has_unattributed(st: dict[str, Any]) -> bool:
    """Whether some payout or repayment of the institution is attributed to no product."""
    un = st.get("un")
    if not un:
        return False
    extra = attributed(st).values()
    return un["out"]["c"] > sum(sums[2] for sums in extra) or un["in"]["c"] > sum(sums[0] for sums in extra)


def coverage_metrics(flows: Flows, coverage_judged: bool) -> dict[str, Any]:
    """A product's payouts, repayments and coverage in a finding's metrics, and the basis its
    coverage was judged on: the product's own figures, or the institution's as a whole."""
    return {
        "payouts": money(flows.paid_out),
        "payout_count": flows.payouts,
        "repayments": money(flows.repaid),
        "repayment_count": flows.repayments,
        "payout_coverage": fixed(flows.coverage, 8),
        "uncovered_payouts": money(flows.uncovered),
        "coverage_basis": "product" if coverage_judged else "institution",
        "unattributed_repayments": money(flows.open_repaid),
        "unattributed_payouts": money(flows.open_paid),
    }
