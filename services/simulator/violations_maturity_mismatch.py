"""Injected maturity mismatch (二(一)) and its hard negative: ``violations_institutions``'
``InstitutionPlanning`` takes ``MaturityMismatchPlanning`` (the ``plan_<variant>`` methods) and
its ``InstitutionSteps`` takes ``MaturityMismatchSteps`` (the ``_step_<variant>`` methods), so
these run exactly like the other variants.

- ``term_split``: a new product whose term is below half its project's term (reference data);
- ``rollover``: a new split-term product whose earlier investors are paid out of later investors'
  deposits over 1-3 days while its borrower pays interest only.

The hard negative ``matched_term_high_yield`` is a new product with its term equal to its
project's, a high yield its project still covers, and payouts its borrower's repayment covers
(also a hard negative of excess return).

A product with a bad yield or a split term is a *new product* of the institution, registered
before the plan starts (``InstitutionPlanning.new_product``); one whose repayments the records carry
gets borrowers of its own (``InstitutionPlanning.new_borrower``: a product lends to its own
borrowers, and a repayment without ``product_id`` is attributed by the borrower's account).
"""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction
from typing import Any

from schemas.reference import AccountRole, Institution
from services.simulator.activities import _PURPOSES
from services.simulator.institution_truth import frac
from services.simulator.ledger import Event
from services.simulator.province import CUSTODY_TYPES
from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE, Variant, _Unsuitable
from services.simulator.world import draw_cents

# Split terms: (term, underlying) pairs, near the line (ratio 0.4-0.5) and far below it.
_SPLIT_NEAR = ((170, 360), (180, 360), (250, 540), (270, 540), (300, 720), (350, 720), (500, 1080))
_SPLIT_FAR = ((30, 360), (60, 360), (90, 360), (90, 540), (90, 720), (180, 720), (30, 1080), (180, 1080))

TERM_SPLIT = Variant("term_split", "maturity_mismatch", POSITIVE, CUSTODY_TYPES, 1,
        "a new product whose term is below half its project's term (reference data)")  # fmt: skip
ROLLOVER = Variant("rollover", "maturity_mismatch", POSITIVE, CUSTODY_TYPES, 1,
        "a new split-term product whose earlier investors are paid out of later investors' "
        "deposits over 1-3 days while its borrower pays interest only")  # fmt: skip

MATCHED_TERM = Variant("matched_term_high_yield", "maturity_mismatch", HARD_NEGATIVE, CUSTODY_TYPES, 1,
            "a new product with its term equal to its project's, a high yield its project still covers, "
            "and payouts its borrower's repayment covers", ("maturity_mismatch", "excess_return"))  # fmt: skip


class MaturityMismatchPlanning:
    """The ``plan_<variant>`` methods of the maturity-mismatch variants (a mixin of
    ``violations_institutions.InstitutionPlanning``, whose helpers they use: ``rule``,
    ``new_product``, ``new_borrower``, ``z_of``, ``harmless``, ``_cap_bp``, ``moment_in``...)."""

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


class MaturityMismatchSteps:
    """The ``_step_<variant>`` methods of the maturity-mismatch variants (a mixin of
    ``violations_institutions.InstitutionSteps``)."""

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
