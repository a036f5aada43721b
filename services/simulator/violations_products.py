"""Injected product-level violations and their hard negative: excess return (三(四)) and maturity
mismatch (二(一)), split out of ``violations_institutions``: its ``InstitutionPlanning`` takes
``ProductPlanning`` (the ``plan_<variant>`` methods) and its ``InstitutionSteps`` takes
``ProductSteps`` (the ``_step_<variant>`` methods), so these run exactly like the other variants.

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
from services.simulator.world import draw_cents

# Product terms by type, as the province draws them.
_TERMS = {
    InstitutionType.p2p_lending: (30, 90, 180, 360),
    InstitutionType.equity_crowdfunding: (360, 540, 720, 1080),
    InstitutionType.asset_management: (180, 270, 360, 720),
}
# Split terms: (term, underlying) pairs, near the line (ratio 0.4-0.5) and far below it.
_SPLIT_NEAR = ((170, 360), (180, 360), (250, 540), (270, 540), (300, 720), (350, 720), (500, 1080))
_SPLIT_FAR = ((30, 360), (60, 360), (90, 360), (90, 540), (90, 720), (180, 720), (30, 1080), (180, 1080))

PRODUCT_VARIANTS: tuple[Variant, ...] = (
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
    Variant("term_split", "maturity_mismatch", POSITIVE, CUSTODY_TYPES, 1,
            "a new product whose term is below half its project's term (reference data)"),
    Variant("rollover", "maturity_mismatch", POSITIVE, CUSTODY_TYPES, 1,
            "a new split-term product whose earlier investors are paid out of later investors' "
            "deposits over 1-3 days while its borrower pays interest only"),
)  # fmt: skip

MATCHED_TERM = Variant("matched_term_high_yield", "maturity_mismatch", HARD_NEGATIVE, CUSTODY_TYPES, 1,
            "a new product with its term equal to its project's, a high yield its project still covers, "
            "and payouts its borrower's repayment covers", ("maturity_mismatch", "excess_return"))  # fmt: skip

COVERED_HIGH_YIELD = Variant("covered_high_yield", "excess_return", HARD_NEGATIVE, CUSTODY_TYPES, 1,
        "the highest declared yield of the province that its project rate still covers "
        "(reference data: no records)", ("excess_return",))  # fmt: skip


class ProductPlanning:
    """The ``plan_<variant>`` methods of the excess-return and maturity-mismatch variants (a mixin of
    ``violations_institutions.InstitutionPlanning``, whose helpers they use: ``rule``,
    ``new_product``, ``new_borrower``, ``z_of``, ``harmless``, ``_cap_bp``, ``_normal_rates``...)."""

    # -- excess return ---------------------------------------------------------------------

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

    # -- maturity mismatch -----------------------------------------------------------------

    def _split_terms(self, inst: Institution, far_only: bool = False) -> tuple[int, int]:
        ratio_max = frac(self.rule("maturity_mismatch", inst)["term_ratio_max"])
        near = [(t, u) for t, u in _SPLIT_NEAR if Fraction(t, u) < ratio_max]
        far = [(t, u) for t, u in _SPLIT_FAR if Fraction(t, u) < ratio_max / 2]
        if far_only or not near or self.rng.random() < 0.6:
            return self.rng.choice(far or near)
        return self.rng.choice(near)

    def plan_term_split(self, inst: Institution):
        declared, project = self._normal_rates(inst, self.rule("excess_return", inst))
        term, underlying = self._split_terms(inst)
        product = self.new_product(inst, declared, project, term, underlying, "短期理财")
        return [], {"product_id": product.product_id, "term_days": term, "underlying_term_days": underlying}

    def plan_rollover(self, inst: Institution):
        rng, iid = self.rng, inst.institution_id
        pool = list(self.p.investor_pools.get(iid, ()))
        borrowers = self.p.accounts_of(iid, AccountRole.borrower)
        if len(pool) < 30 or not borrowers:
            raise _Unsuitable
        span = rng.randint(1, min(3, len(self.days)))
        first = self.pick_day(span=span)
        days = [first + timedelta(days=n) for n in range(span)]
        later = rng.sample(pool, rng.randint(4 * span, min(25, 8 * span)))
        rest = [a for a in pool if a not in later]
        earlier = rng.sample(rest, min(len(rest), rng.randint(2 * span, 5 * span)))
        person = self.p.natural_persons
        steps: list[tuple[int, list[Any]]] = []
        per_day = [later[n::span] for n in range(span)]
        paid_per_day = [earlier[n::span] for n in range(span)]
        for n, day in enumerate(days):
            deposits = []
            for investor in per_day[n]:
                cents = (draw_cents(rng, 150_000, 0.7, 20_000, 1_000_000, step=1_000) if investor in person
                         else draw_cents(rng, 600_000, 0.6, 100_000, 3_000_000, step=10_000))  # fmt: skip
                deposits.append(cents)
                steps.append((self.moment_in(day, 9.0, 12.5), ["deposit", investor, cents]))
            if not paid_per_day[n]:
                continue
            total = int(sum(deposits) * rng.uniform(0.7, 0.95))
            weights = [rng.random() + 0.3 for _ in paid_per_day[n]]
            for investor, weight in zip(paid_per_day[n], weights, strict=True):
                cents = max(10_000, int(total * weight / sum(weights)) // 100 * 100)
                steps.append((self.moment_in(day, 13.5, 16.5), ["payout", investor, cents]))
        interest_day = rng.choice(days)
        steps.append((self.moment_in(interest_day, 10.0, 15.0),
                      ["interest", rng.choice(borrowers), draw_cents(rng, 20_000, 0.6, 3_000, 80_000)]))  # fmt: skip
        steps.sort(key=lambda s: s[0])
        declared, project = self._normal_rates(inst, self.rule("excess_return", inst))
        term, underlying = self._split_terms(inst, far_only=True)
        product = self.new_product(inst, declared, project, term, underlying, "滚动理财")
        # the interest comes from a borrower of the new product
        borrower = self.new_borrower(inst, product.product_id)
        steps = [(t, ["interest", borrower, s[2]] if s[0] == "interest" else s) for t, s in steps]
        return [t for t, _ in steps], {
            "account": self.holder(inst),
            "product_id": product.product_id,
            "term_days": term,
            "underlying_term_days": underlying,
            "steps": [s for _, s in steps],
        }

    # -- a matched term ---------------------------------------------------------------------

    def plan_matched_term_high_yield(self, inst: Institution):
        rng, iid = self.rng, inst.institution_id
        cfg = self.rule("excess_return", inst)
        cap, robust = self._cap_bp(cfg), frac(cfg["robust_z"])
        borrowers = self.p.accounts_of(iid, AccountRole.borrower)
        pool = self.p.investor_pools.get(iid, ())
        if not borrowers or len(pool) < 6:
            raise _Unsuitable
        project = rng.randint(950, min(1300, cap - 40))
        declared = project - rng.randint(20, 120)
        while declared > 400:
            z = self.z_of(inst.type, declared)
            if (
                declared < cap - 50
                and (z is None or z < robust * Fraction(7, 10))
                and self.harmless(inst.type, declared, robust)
            ):
                break
            declared -= 10
        term = rng.choice((90, 180, 360))
        product = self.new_product(inst, declared, project, term, term, "匹配期限计划")
        day = self.pick_day()
        repay_at = self.moment_in(day, 9.5, 12.0)
        repaid = draw_cents(rng, 600_000, 0.5, 200_000, 3_000_000, step=100)
        payees = rng.sample(list(pool), rng.randint(2, 6))
        total = int(repaid * rng.uniform(0.6, 0.95))
        weights = [rng.random() + 0.3 for _ in payees]
        amounts = [int(total * w / sum(weights)) // 100 * 100 for w in weights]
        times = [repay_at] + sorted(self.moment_in(day, 13.0, 16.5) for _ in payees)
        return times, {
            "account": self.holder(inst),
            "product_id": product.product_id,
            "declared_annual_yield": product.declared_annual_yield,
            "underlying_project_rate": product.underlying_project_rate,
            "term_days": term,
            "underlying_term_days": term,
            "borrower": self.new_borrower(inst, product.product_id),
            "repaid_cents": repaid,
            "payees": payees,
            "amounts_cents": amounts,
        }


class ProductSteps:
    """The ``_step_<variant>`` methods of the excess-return and maturity-mismatch variants (a mixin of
    ``violations_institutions.InstitutionSteps``)."""

    # -- excess return ---------------------------------------------------------------------

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

    # -- maturity mismatch -----------------------------------------------------------------

    def _step_rollover(self, inj, st, rng, step, at) -> list[Event]:
        p, w = inj.params, self.world
        kind, who, cents = p["steps"][step]
        purposes = _PURPOSES[self._kind(inj.institution_id)]
        if kind == "deposit":
            return [self._move(inj, rng, at, who, p["account"], cents, purposes["deposit"],
                               product_id=p["product_id"])]  # fmt: skip
        if kind == "interest":
            return [self._move(inj, rng, at, who, p["account"], cents, "借款利息",
                               product_id=p["product_id"])]  # fmt: skip
        return [self._move(inj, rng, at, p["account"], who, cents, purposes["payout"],
                           instruction=w.instruction("PO"), product_id=p["product_id"])]  # fmt: skip

    def _step_matched_term_high_yield(self, inj, st, rng, step, at) -> list[Event]:
        p, w = inj.params, self.world
        purposes = _PURPOSES[self._kind(inj.institution_id)]
        if step == 0:
            return [self._move(inj, rng, at, p["borrower"], p["account"], p["repaid_cents"], purposes["repay"],
                               product_id=p["product_id"])]  # fmt: skip
        cents = p["amounts_cents"][step - 1]
        if cents <= 0:
            return []
        return [self._move(inj, rng, at, p["account"], p["payees"][step - 1], cents, purposes["payout"],
                           instruction=w.instruction("PO"), product_id=p["product_id"])]  # fmt: skip
