"""Injected self-financing (自融) and its hard negative, split out of ``violations``: its
``_Planner`` takes ``SelfFinancingPlanning`` (the ``plan_<variant>`` methods) and its ``Injector``
takes ``SelfFinancingSteps`` (the ``_step_<variant>`` methods and the labels), so these run
exactly like the other variants.

- ``loan_to_related``: 1-3 instructed custody 'loans' to a related party's account over a few days
  (controllers and affiliates are the usual "borrowers").

The hard negative ``large_loan`` is a large instructed loan from custody to an unrelated borrower:
a project round, 3-5 large subscriptions to one product over a morning, then the loan of what they
raised to a firm borrower 5-30 minutes after the last.

Self-financing is labelled per (custody account, related account) by its rule over the whole feed
(instructed custody outflows to related parties, ``violations``' module docstring).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from schemas.fields import BEIJING, cents_to_text
from schemas.reference import AccountRole, Institution, InstitutionType, Relation
from services.simulator.ledger import Event
from services.simulator.province import CUSTODY_TYPES
from services.simulator.violations_base import (
    _PURPOSES,
    HARD_NEGATIVE,
    POSITIVE,
    Variant,
    ViolationLabel,
    _ts,
    _Unsuitable,
)
from services.simulator.world import draw_cents

_PROJECT_TYPES = frozenset({InstitutionType.equity_crowdfunding, InstitutionType.asset_management})

LOAN_TO_RELATED = Variant("loan_to_related", "self_financing", POSITIVE, CUSTODY_TYPES, 2,
        "1-3 instructed custody 'loans' to a related party's account over a few days")  # fmt: skip
LARGE_LOAN = Variant("large_loan", "self_financing", HARD_NEGATIVE, CUSTODY_TYPES, 1,
        "a large instructed loan from custody to an unrelated borrower",
        ("misappropriation", "self_financing"))  # fmt: skip

# Large loans are projects', P2P caps them (violations_planner._PREFERRED).
PREFERRED = {"large_loan": _PROJECT_TYPES}


class SelfFinancingPlanning:
    """The ``plan_<variant>`` methods of the self-financing variants (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and
    helpers)."""

    # -- self-financing --------------------------------------------------------------------

    def plan_loan_to_related(self, inst: Institution):
        iid, rng = inst.institution_id, self.rng
        accounts = self.free(self.related.get(iid, ()))
        if not accounts:
            raise _Unsuitable
        # Controllers and affiliates are the usual "borrowers".
        favoured = [
            a for a in accounts if self.relation[a] in (Relation.actual_controller, Relation.affiliate)
        ]
        related = rng.choice(favoured or accounts)
        count = rng.choices((1, 2, 3), weights=(0.4, 0.35, 0.25))[0]
        day = self.pick_day(span=count + 2)
        times = [self.moment(day, 9.5, 16.0)]
        for _ in range(count - 1):
            nxt = datetime.fromtimestamp(times[-1], BEIJING).date() + timedelta(days=1)
            while nxt.weekday() >= 5:
                nxt += timedelta(days=1)
            times.append(self.moment(nxt, 9.5, 16.0))
        amounts = [self.band_amount(((30_000, 95_000), (100_000, 950_000), (1_000_000, 8_000_000)), (0.2, 0.5, 0.3))
                   for _ in range(count)]  # fmt: skip
        return times, {"account": self.holder(inst), "related": related, "amounts_yuan": amounts}

    # -- hard negatives --------------------------------------------------------------------

    def plan_large_loan(self, inst: Institution):
        """A project round: 3-5 large subscriptions to one product over a morning, then the loan
        of what they raised to a firm borrower 5-30 minutes after the last."""
        rng, iid = self.rng, inst.institution_id
        borrowers = self.p.accounts_of(iid, AccountRole.borrower)
        firms = [b for b in borrowers if b not in self.p.natural_persons]
        products = [
            product for product in self.p.products_by_institution.get(iid, ())
            if _ts(product.sale_start) <= self.start and _ts(product.sale_end) >= self.end
        ]  # fmt: skip
        pool = self.p.investor_pools.get(iid, ())
        if not firms or not products or len(pool) < 4:
            raise _Unsuitable
        # Firms subscribe project rounds; people join with what they can (up to 450,000 here).
        firms_first = sorted(pool, key=lambda a: (a in self.p.natural_persons, rng.random()))
        funders = firms_first[: rng.randint(3, 5)]
        amounts = [
            draw_cents(rng, 400_000, 0.1, 300_000, 450_000, step=1_000) if funder in self.p.natural_persons
            else draw_cents(rng, 1_800_000, 0.4, 800_000, 4_000_000, step=10_000)
            for funder in funders
        ]  # fmt: skip
        day = self.pick_day()
        times = sorted(self.moment(day, 9.5, 14.0) for _ in funders)
        times.append(times[-1] + rng.randrange(5 * 60, 30 * 60))
        return times, {
            "account": self.holder(inst),
            "product_id": rng.choice(products).product_id,
            "funders": funders,
            "funding_cents": amounts,
            "borrower": rng.choice(firms),
            "target_cents": rng.randint(220, 1200) * 1_000_000,
        }


class SelfFinancingSteps:
    """The ``_step_<variant>`` methods of the self-financing variants and the labels (a mixin of
    ``violations_injector.Injector``)."""

    def _step_loan_to_related(self, inj, st, rng, step, at) -> list[Event]:
        iid = inj.institution_id
        book = max(self.world.books[iid], key=lambda b: (b.raised, b.product_id))
        cents = min(inj.params["amounts_yuan"][step] * 100, int(book.raised * 0.7))
        cents = cents // 1_000_000 * 1_000_000 if cents >= 10_000_000 else cents // 100_000 * 100_000
        if cents < 1_000_000:
            return self._note(inj, step, "skipped: the products had under 10,000.00 raised to lend")
        book.raised -= cents
        kind = self.province.institution_by_id[iid].type
        return [self._move(inj, rng, at, inj.params["account"], inj.params["related"], cents,
                           _PURPOSES[kind]["loan"], instruction=self.world.instruction("LN"),
                           product_id=book.product_id)]  # fmt: skip

    def _step_large_loan(self, inj, st, rng, step, at) -> list[Event]:
        p, iid = inj.params, inj.institution_id
        book = next(b for b in self.world.books[iid] if b.product_id == p["product_id"])
        kind = self.province.institution_by_id[iid].type
        if step < len(p["funders"]):
            # The subscriptions are ordinary deposits, tagged apart so they are not the negative,
            # and held for the project (normal loans do not lend them out meanwhile).
            funder, cents = p["funders"][step], p["funding_cents"][step]
            st["committed"] = st.get("committed", 0) + cents
            book.positions[funder] = book.positions.get(funder, 0) + cents
            deposit = self._move(inj, rng, at, funder, p["account"], cents, _PURPOSES[kind]["deposit"],
                                 product_id=book.product_id)  # fmt: skip
            return [replace(deposit, labels=(f"{inj.injection_id}#funding",))]
        committed = st.get("committed", 0)
        cents = min(p["target_cents"], committed) // 1_000_000 * 1_000_000
        book.raised += committed - cents  # what the project did not need is lent as usual
        if cents < 100_000_000:
            return self._note(inj, step, "skipped: under 1,000,000.00 raised for the project")
        book.outstanding[p["borrower"]] = book.outstanding.get(p["borrower"], 0) + cents
        return [self._move(inj, rng, at, p["account"], p["borrower"], cents, _PURPOSES[kind]["loan"],
                           instruction=self.world.instruction("LN"), product_id=book.product_id)]  # fmt: skip

    # -- the labels ------------------------------------------------------------------------

    def _self_financing_labels(self) -> list[ViolationLabel]:
        out = []
        for (account, counterparty), bucket in sorted(self._to_related.items()):
            metrics = {
                "total": cents_to_text(bucket.cents),
                "count": bucket.count,
                "related_account": counterparty,
            }
            note = (f"{bucket.count} instructed outflow(s) from {self._role_name(account)} to a related "
                    f"party's account, {cents_to_text(bucket.cents)} in all")  # fmt: skip
            out.append(self._make("self_financing", POSITIVE, "instructed_to_related", f"{account}:{counterparty}",
                                  account, bucket, metrics, note))  # fmt: skip
        return out
