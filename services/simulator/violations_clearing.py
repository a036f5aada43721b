"""Injected look-alikes of disguised clearing (变相清算), split out of ``violations``: its
``_Planner`` takes ``ClearingPlanning`` (the ``plan_<variant>`` methods) and its ``Injector`` takes
``ClearingSteps`` (the ``_step_<variant>`` methods), so these run exactly like the other variants.

Both are hard negatives, also of commingling:

- ``own_transfer_between_banks``: a payment institution moving its own money between its own
  accounts at two banks;
- ``mirrored_legs``: one transfer between monitored accounts at two banks (a shareholder's loan or
  capital to the institution): a debit record at one bank, a credit at the other, one label.
"""

from __future__ import annotations

from schemas.reference import Institution, InstitutionType
from services.simulator.ledger import Event
from services.simulator.violations_base import HARD_NEGATIVE, Variant, _Unsuitable

_PAYMENT = frozenset({InstitutionType.payment})
_ALL_TYPES = frozenset(InstitutionType)

OWN_TRANSFER_BETWEEN_BANKS = Variant("own_transfer_between_banks", "disguised_clearing", HARD_NEGATIVE, _ALL_TYPES, 1,
        "a payment institution moving its own money between its own accounts at two banks",
        ("disguised_clearing", "commingling"))  # fmt: skip
MIRRORED_LEGS = Variant("mirrored_legs", "disguised_clearing", HARD_NEGATIVE, _ALL_TYPES, 1,
        "one transfer between monitored accounts at two banks (a shareholder's loan or capital to the "
        "institution): a debit record at one bank, a credit at the other, one label",
        ("disguised_clearing", "commingling"))  # fmt: skip

# The issue's own-money transfer is a payment institution's (violations_planner._PREFERRED).
PREFERRED = {"own_transfer_between_banks": _PAYMENT}
# Variants that need an account of their own (violations_planner._EXCLUSIVE): the parameter
# naming it.
EXCLUSIVE = {"mirrored_legs": "payer"}


class ClearingPlanning:
    """The ``plan_<variant>`` methods of the disguised-clearing look-alikes (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and
    helpers)."""

    def plan_own_transfer_between_banks(self, inst: Institution):
        own = self.free(self.own(inst.institution_id))
        banks = {self.p.account_by_id[a].bank_code: a for a in own}
        if len(banks) < 2:
            raise _Unsuitable
        first, second = self.rng.sample(sorted(banks.values()), 2)
        count = self.rng.choices((1, 2), weights=(0.7, 0.3))[0]
        day = self.pick_day()
        times = sorted(self.moment(day, 9.5, 16.0) for _ in range(count))
        return times, {
            "payer": first,
            "payee": second,
            "fractions": [round(self.rng.uniform(0.3, 0.6), 4) for _ in range(count)],
        }

    def plan_mirrored_legs(self, inst: Institution):
        iid = inst.institution_id
        pairs = [
            (r, o)
            for r in self.free(self.related.get(iid, ()))
            for o in self.free(self.own(iid))
            if self.p.account_by_id[r].bank_code != self.p.account_by_id[o].bank_code
        ]
        if not pairs:
            raise _Unsuitable
        related, own = self.rng.choice(pairs)
        day = self.pick_day()
        return [self.moment(day, 10.0, 15.0)], {
            "payer": related,
            "payee": own,
            "amount_cents": self.rng.randint(30, 300) * 1_000_000,
            "purpose": self.rng.choice(("股东借款", "股东增资款")),
        }


class ClearingSteps:
    """The ``_step_<variant>`` methods of the disguised-clearing look-alikes (a mixin of
    ``violations_injector.Injector``)."""

    def _step_own_transfer_between_banks(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        cents = int(self.world.ledger.balance[p["payer"]] * p["fractions"][step]) // 1_000_000 * 1_000_000
        if cents < 1_000_000:
            return self._note(inj, step, "skipped: the own account held too little")
        return [self._move(inj, rng, at, p["payer"], p["payee"], cents, "自有资金调拨")]

    def _step_mirrored_legs(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        return [self._move(inj, rng, at, p["payer"], p["payee"], p["amount_cents"], p["purpose"])]
