"""Injected excess return (三(四)) and its hard negative: ``violations_institutions``'
``InstitutionPlanning`` takes ``ExcessReturnPlanning`` (the ``plan_<variant>`` methods) and its
``InstitutionSteps`` takes ``ExcessReturnSteps`` (the ``_step_<variant>`` methods), so these run
exactly like the other variants.

- ``yield_above_project``: a new product whose declared yield is above its project's rate (below
  the legal cap, not a peer outlier; reference data: no records);
- ``yield_above_legal_cap``: a new product promising more than four times the one-year LPR;
- ``peer_outlier_yield``: a new product whose declared yield is a robust-z outlier among the
  products of its institution type, covered by its project and below the legal cap where the
  peers allow;
- ``payout_subsidy``: a product's investors paid more than its borrowers repaid (coverage
  0.3-0.96), topped up from the other products' money or a related party; term not split.

The hard negative ``covered_high_yield`` is the highest declared yield of the province that its
project rate still covers (reference data: no records).

A product with a bad yield or a split term is a *new product* of the institution, registered
before the plan starts (``InstitutionPlanning.new_product``); one whose repayments the records carry
gets borrowers of its own (``InstitutionPlanning.new_borrower``: a product lends to its own
borrowers, and a repayment without ``product_id`` is attributed by the borrower's account).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from fractions import Fraction
from statistics import median
from typing import Any

from schemas.fields import BEIJING
from schemas.reference import AccountRole, Institution, InstitutionType
from services.simulator.activities import _PURPOSES
from services.simulator.institution_truth import frac, is_split, money
from services.simulator.ledger import Event
from services.simulator.province import CUSTODY_TYPES, _rate
from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE, Variant, _Unsuitable

# Product terms by type, as the province draws them.
_TERMS = {
    InstitutionType.p2p_lending: (30, 90, 180, 360),
    InstitutionType.equity_crowdfunding: (360, 540, 720, 1080),
    InstitutionType.asset_management: (180, 270, 360, 720),
}

EXCESS_RETURN_VARIANTS: tuple[Variant, ...] = (
    Variant("yield_above_project", "excess_return", POSITIVE, CUSTODY_TYPES, 1,
            "a new product whose declared yield is above its project's rate (below the legal cap, "
            "not a peer outlier; reference data: no records)"),
    Variant("yield_above_legal_cap", "excess_return", POSITIVE, CUSTODY_TYPES, 1,
            "a new product promising more than four times the one-year LPR (reference data)"),
    Variant("peer_outlier_yield", "excess_return", POSITIVE, CUSTODY_TYPES, 1,
            "a new product whose declared yield is a robust-z outlier among the products of its "
            "institution type, covered by its project and below the legal cap where the peers allow"),
    Variant("payout_subsidy", "excess_return", POSITIVE, CUSTODY_TYPES, 1,
            "a product's investors paid more than its borrowers repaid (coverage 0.3-0.96), topped up "
            "from the other products' money or a related party; term not split"),
)  # fmt: skip

COVERED_HIGH_YIELD = Variant("covered_high_yield", "excess_return", HARD_NEGATIVE, CUSTODY_TYPES, 1,
        "the highest declared yield of the province that its project rate still covers "
        "(reference data: no records)", ("excess_return",))  # fmt: skip


class ExcessReturnPlanning:
    """The ``plan_<variant>`` methods of the excess-return variants (a mixin of
    ``violations_institutions.InstitutionPlanning``, whose helpers they use: ``rule``,
    ``new_product``, ``new_borrower``, ``z_of``, ``harmless``, ``_cap_bp``, ``_normal_rates``...)."""

    def plan_yield_above_project(self, inst: Institution):
        cfg, rng = self.rule("excess_return", inst), self.rng
        cap, robust = self._cap_bp(cfg), frac(cfg["robust_z"])
        for _ in range(60):
            project = rng.randint(650, 1050)
            low, high = rng.choices(((5, 60), (80, 300)), weights=(0.4, 0.6))[0]
            declared = project + rng.randint(low, high)
            z = self.z_of(inst.type, declared)
            if (
                declared < cap - 20
                and (z is None or z < robust * Fraction(8, 10))
                and self.harmless(inst.type, declared, robust)
            ):
                break
        else:
            raise _Unsuitable
        term = rng.choice(_TERMS[inst.type])
        product = self.new_product(inst, declared, project, term, term, "高收益计划")
        return [], {"product_id": product.product_id, "declared_annual_yield": product.declared_annual_yield,
                    "underlying_project_rate": product.underlying_project_rate}  # fmt: skip

    def plan_yield_above_legal_cap(self, inst: Institution):
        cfg, rng = self.rule("excess_return", inst), self.rng
        cap = self._cap_bp(cfg)
        low, high = rng.choices(((5, 60), (100, 600)), weights=(0.4, 0.6))[0]
        declared = cap + rng.randint(low, high)
        # Some projects are usurious themselves and cover it; most do not.
        project = declared + rng.randint(100, 500) if rng.random() < 0.4 else rng.randint(800, 1200)
        term = rng.choice(_TERMS[inst.type])
        product = self.new_product(inst, declared, project, term, term, "超额收益计划")
        return [], {"product_id": product.product_id, "declared_annual_yield": product.declared_annual_yield,
                    "underlying_project_rate": product.underlying_project_rate,
                    "legal_cap": _rate(cap)}  # fmt: skip

    def _outlier_yield(self, kind: InstitutionType, target: Fraction) -> int | None:
        """The lowest yield in basis points whose robust z reaches ``target``."""
        yields = sorted(frac(p.declared_annual_yield) for p in self._products_of_type(kind))
        if len(yields) < 2:
            return None

        def reaches(bp: int) -> bool:
            z = self.z_of(kind, bp)
            return z is not None and z >= target

        # Bisection; ``high`` always reaches the target, so the answer does too.
        low, high = math.floor(yields[len(yields) // 2] * 10_000), 4000
        if not reaches(high):
            return None
        while low < high:
            middle = (low + high) // 2
            if reaches(middle):
                high = middle
            else:
                low = middle + 1
        return high

    def plan_peer_outlier_yield(self, inst: Institution):
        cfg, rng = self.rule("excess_return", inst), self.rng
        robust, cap = frac(cfg["robust_z"]), self._cap_bp(cfg)
        if len(self._products_of_type(inst.type)) + 1 < int(cfg["min_peers"]):
            raise _Unsuitable
        if self._strict_outlier is None:
            # Below the legal cap where some type's peers allow it; otherwise above it too.
            kinds = {i.type for i in self.p.institutions if i.type in CUSTODY_TYPES}
            lowest = [self._outlier_yield(kind, robust * Fraction(12, 10)) for kind in kinds]
            self._strict_outlier = any(bp is not None and bp < cap - 20 for bp in lowest)
        low, high = rng.choices(((1.2, 1.45), (1.6, 2.6)), weights=(0.5, 0.5))[0]
        multiple = Fraction(round(rng.uniform(low, high), 3))
        declared = self._outlier_yield(inst.type, robust * multiple)
        if declared is None:
            raise _Unsuitable
        if declared >= cap - 20 and self._strict_outlier:
            declared = self._outlier_yield(inst.type, robust * Fraction(12, 10))
            if declared is None or declared >= cap - 20:
                raise _Unsuitable
        project = declared + rng.randint(80, 300)
        term = rng.choice(_TERMS[inst.type])
        product = self.new_product(inst, declared, project, term, term, "优选收益计划")
        z = self.z_of(inst.type, declared)
        return [], {"product_id": product.product_id, "declared_annual_yield": product.declared_annual_yield,
                    "underlying_project_rate": product.underlying_project_rate,
                    "robust_z": f"{float(z or 0):.2f}", "legal_cap": _rate(cap)}  # fmt: skip

    def plan_payout_subsidy(self, inst: Institution):
        rng, iid = self.rng, inst.institution_id
        ratio_max = frac(self.rule("maturity_mismatch", inst)["term_ratio_max"])
        if not [p for p in self.p.products_by_institution.get(iid, ()) if not is_split(p, ratio_max)]:
            raise _Unsuitable
        # The last top-up 1-4 hours before the plan ends; earlier ones on the days before it.
        last = self.end - rng.randrange(3600, 4 * 3600)
        if last < self.start:
            raise _Unsuitable
        times = [last]
        day = datetime.fromtimestamp(last, BEIJING).date()
        for _ in range(rng.choices((0, 1, 2), weights=(0.4, 0.35, 0.25))[0]):
            day -= timedelta(days=1)
            if day < self.days[0]:
                break
            try:
                times.insert(0, self.moment_in(day, 15.5, 17.2))
            except _Unsuitable:
                break
        band = rng.choices(((0.88, 0.96), (0.6, 0.85), (0.3, 0.55)), weights=(0.3, 0.45, 0.25))[0]
        # Funded from the other products' money, or by a related party (who also tops up what the
        # other products cannot spare).
        related = self.free([a for a in self.related.get(iid, ()) if a not in self.touched])
        if not related:
            raise _Unsuitable
        return times, {
            "account": self.holder(inst),
            "coverage": round(rng.uniform(*band), 4),
            "funding": "related" if rng.random() < 0.4 else "pool",
            "related": rng.choice(related),
            "payees_per_step": rng.randint(2, 6),
        }

    def plan_covered_high_yield(self, inst: Institution):
        """The highest declared yield in the province that its project still covers, below the
        legal cap and not an outlier among its peers: reference data, no records."""
        if not hasattr(self, "covered"):
            self.covered = self._covered_yields()
        planned = {i.params.get("product_id") for i in self.injections}
        for product, metrics in self.covered:
            # Not where another injection may pay a product's investors beyond its repayments.
            if product.product_id not in planned and not self._clashes(
                "covered_high_yield", product.institution_id
            ):
                if product.institution_id != inst.institution_id:
                    raise _Unsuitable
                return [], {"product_id": product.product_id, **metrics}
        raise _Unsuitable

    def _covered_yields(self) -> list[tuple[Any, dict[str, str]]]:
        found = []
        for inst in self.p.institutions_of_type(*CUSTODY_TYPES):
            cfg = self.cfg("excess_return", inst)
            cap = Fraction(str(cfg["lpr_one_year"])) * int(cfg["lpr_multiple"])
            peers = [float(p.declared_annual_yield) for p in self.p.products
                     if self.p.institution_by_id[p.institution_id].type is inst.type]  # fmt: skip
            mid = median(peers)
            mad = median(abs(y - mid) for y in peers) or 1e-9
            for product in self.p.products_by_institution.get(inst.institution_id, ()):
                declared = Fraction(product.declared_annual_yield)
                z = (float(declared) - mid) / (1.4826 * mad)
                if (
                    declared < Fraction(product.underlying_project_rate)
                    and declared < cap
                    and z < 0.85 * float(cfg["robust_z"])
                ):
                    found.append((declared, product.product_id, product, {
                        "declared_annual_yield": product.declared_annual_yield,
                        "underlying_project_rate": product.underlying_project_rate,
                        "peer_median": f"{mid:.4f}",
                        "robust_z": f"{z:.2f}",
                        "legal_cap": f"{float(cap):.4f}",
                    }))  # fmt: skip
        found.sort(key=lambda item: (-item[0], item[1]))
        return [(product, metrics) for _, _, product, metrics in found]


class ExcessReturnSteps:
    """The ``_step_<variant>`` methods of the excess-return variants (a mixin of
    ``violations_institutions.InstitutionSteps``)."""

    def _step_payout_subsidy(self, inj, st, rng, step, at) -> list[Event]:
        p, iid, w, truth = inj.params, inj.institution_id, self.world, self._truth
        account = p["account"]
        if "product" not in st:
            books = [b for b in w.books[iid] if b.positions and b.product_id not in self._named_products
                     and not truth.split(b.product_id)]  # fmt: skip
            if not books:
                return self._note(inj, step, "skipped: no product with investors to pay")
            # The product with the least repaid so far: the smallest subsidy makes it uncovered.
            st["product"] = min(
                books, key=lambda b: (truth.payout_sums(b.product_id)[0], b.product_id)
            ).product_id
        book = self._book(iid, st["product"])
        repaid, paid = truth.payout_sums(book.product_id)
        cfg = truth.cfg("excess_return", iid)
        coverage = Fraction(str(p["coverage"]))
        target = max(math.ceil(repaid / coverage) + 1, math.ceil(money(cfg["min_payout"]) * Fraction(13, 10)))
        need = (target - paid) // 100 * 100 + 100
        if need <= 0:
            return []
        events: list[Event] = []
        pooled = 0
        if p["funding"] == "pool":
            others = [b for b in w.books[iid] if b is not book]
            pooled = min(need, int(sum(b.raised + b.repaid for b in others) * 0.6) // 100 * 100)
            left = pooled
            for attr in ("raised", "repaid"):
                for other in others:
                    taken = min(getattr(other, attr), left)
                    setattr(other, attr, getattr(other, attr) - taken)
                    left -= taken
        if need > pooled:  # the related party's top-up, before the payouts
            events.append(self._move(inj, rng, at, p["related"], account, need - pooled,
                                     rng.choice(("股东补贴款", "贴息款"))))  # fmt: skip
        investors = [a for a in sorted(book.positions, key=lambda a: (-book.positions[a], a))
                     if self._role.get(a) is AccountRole.investor][: p["payees_per_step"]]  # fmt: skip
        if not investors:
            investors = [a for a in self.province.investor_pools[iid]][: p["payees_per_step"]]
        gross = 1 + book.declared_yield * book.term_days / 365
        weights = [rng.random() + 0.3 for _ in investors]
        shares = [int(need * wgt / sum(weights)) // 100 * 100 for wgt in weights]
        shares[0] += need - sum(shares)
        purpose = _PURPOSES[self._kind(iid)]["payout"]
        for investor, cents in zip(investors, shares, strict=True):
            if cents <= 0:
                continue
            position = book.positions.get(investor, 0)
            principal = min(position, int(cents / gross))
            if position - principal <= 0:
                book.positions.pop(investor, None)
            else:
                book.positions[investor] = position - principal
            events.append(self._move(inj, rng, at, account, investor, cents, purpose,
                                     instruction=w.instruction("PO"), product_id=book.product_id))  # fmt: skip
        return events
