"""Injected disguised clearing (变相清算) and its look-alikes. ``cross_bank_mirrors`` and its hard
negatives ``same_bank_mirrors`` and ``merchant_settlement_batch`` came out of
``violations_institutions``, ``own_transfer_between_banks`` and ``mirrored_legs`` out of
``violations``: ``violations_planner._Planner`` takes ``ClearingPlanning`` (the ``plan_<variant>``
methods) and ``violations_injector.Injector`` takes ``ClearingSteps`` (the ``_step_<variant>``
methods), so these run exactly like the other variants.

- ``cross_bank_mirrors``: 20-60 customers paying a payment institution at bank A, each mirrored
  minutes later by the same amount paid to a payee from its reserve at bank B;
- ``same_bank_mirrors``: 20-60 customers' payments mirrored to payees within minutes from the same
  reserve account (one bank: no interbank clearing);
- ``merchant_settlement_batch``: 20-60 customers paying at bank A, settled to merchants from bank B
  minutes later in 3-6 batches (sums, net of the fee: no mirrored amounts).

Two more hard negatives, also of commingling:

- ``own_transfer_between_banks``: a payment institution moving its own money between its own
  accounts at two banks;
- ``mirrored_legs``: one transfer between monitored accounts at two banks (a shareholder's loan or
  capital to the institution): a debit record at one bank, a credit at the other, one label.

Disguised clearing is keyed per institution and day: its variants share an institution only on
different days (``ClearingPlanning.clearing_day``). The mirrors use ``InstitutionPlanning``'s
helpers (new investor accounts, a moment in the plan) and ``InstitutionSteps._pay_in``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from schemas.reference import AccountRole, Institution, InstitutionType
from services.simulator.ledger import Event
from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE, Variant, _Unsuitable
from services.simulator.world import draw_cents

_PAYMENT = frozenset({InstitutionType.payment})
_ALL_TYPES = frozenset(InstitutionType)

CROSS_BANK_MIRRORS = Variant("cross_bank_mirrors", "disguised_clearing", POSITIVE, _PAYMENT, 1,
        "20-60 customers paying a payment institution at bank A, each mirrored minutes later by "
        "the same amount paid to a payee from its reserve at bank B")  # fmt: skip
SAME_BANK_MIRRORS = Variant("same_bank_mirrors", "disguised_clearing", HARD_NEGATIVE, _PAYMENT, 1,
        "20-60 customers' payments mirrored to payees within minutes from the same reserve account "
        "(one bank: no interbank clearing)", ("disguised_clearing",))  # fmt: skip
MERCHANT_SETTLEMENT_BATCH = Variant("merchant_settlement_batch", "disguised_clearing", HARD_NEGATIVE, _PAYMENT, 1,
        "20-60 customers paying at bank A, settled to merchants from bank B minutes later in 3-6 "
        "batches (sums, net of the fee: no mirrored amounts)", ("disguised_clearing",))  # fmt: skip
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
    """The ``plan_<variant>`` methods of the disguised-clearing variants (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and
    helpers)."""

    def clearing_day(self, inst: Institution) -> date:
        """A day no other disguised-clearing variant uses at this institution (weekdays first)."""
        taken = self.clearing_days.get(inst.institution_id, set())
        free = [d for d in self.days if d not in taken and self._hours_left(d, 9.0, 20.0) >= 3]
        if not free:
            raise _Unsuitable
        return self._prefer_weekday(free)

    def _reserves_at_two_banks(self, inst: Institution) -> tuple[str, str]:
        """(a secondary reserve, the main reserve at another bank)."""
        reserves = self.p.accounts_of(inst.institution_id, AccountRole.payment_reserve)
        main = reserves[0]
        bank = self.p.account_by_id[main].bank_code
        others = [r for r in reserves[1:] if self.p.account_by_id[r].bank_code != bank]
        if not others:
            raise _Unsuitable
        return self.rng.choice(others), main

    def _customers(self, inst: Institution, count: int) -> list[str]:
        pool = list(self.p.customers.get(inst.institution_id, ()))
        chosen = self.rng.sample(pool, min(count, len(pool)))
        if len(chosen) < count:
            chosen += self.new_investors(None, count - len(chosen), registered=0.0, firms=0.0)
        return chosen

    def _odd_cents(self, median_yuan: float, high_yuan: float) -> int:
        """A payment amount with cents (never whole yuan, so it does not mirror a round top-up)."""
        cents = draw_cents(self.rng, median_yuan, 0.8, 200, high_yuan)
        return cents if cents % 100 else cents + self.rng.randint(1, 99)

    def _mirror_count(self, inst: Institution) -> int:
        least = int(self.rule("disguised_clearing", inst)["min_customers"])
        bands = ((least, least + 3), (least + 4, 2 * least + 5), (3 * least, 3 * least))
        low, high = self.rng.choices(bands, weights=(0.35, 0.45, 0.2))[0]
        return self.rng.randint(low, high)

    def _mirrors(self, inst: Institution, same_bank: bool):
        rng = self.rng
        lag = int(self.rule("disguised_clearing", inst)["max_lag_seconds"])
        if same_bank:  # a secondary reserve (the main one is where fees are measured)
            account = payer_account = self.p.accounts_of(inst.institution_id, AccountRole.payment_reserve)[-1]
        else:
            account, payer_account = self._reserves_at_two_banks(inst)
        count = self._mirror_count(inst)
        day = self.clearing_day(inst)
        customers = self._customers(inst, count)
        payees = [rng.choice(self.outside_persons + self.outside_firms) for _ in customers]
        steps: list[tuple[int, list[Any]]] = []
        for n in range(count):
            at = self.moment_in(day, 9.0, 20.0)
            out = at + rng.randint(60, min(1200, lag - 60))
            if out >= self.end:
                raise _Unsuitable
            steps += [(at, ["in", n]), (out, ["out", n])]
        steps.sort(key=lambda s: (s[0], s[1][0] == "in"))
        return [t for t, _ in steps], {
            "account": account,
            "payer_account": payer_account,
            "customers": customers,
            "payees": payees,
            "amounts_cents": [self._odd_cents(3_000, 20_000) for _ in customers],
            "steps": [s for _, s in steps],
        }

    def plan_cross_bank_mirrors(self, inst: Institution):
        return self._mirrors(inst, same_bank=False)

    def plan_same_bank_mirrors(self, inst: Institution):
        return self._mirrors(inst, same_bank=True)

    def plan_merchant_settlement_batch(self, inst: Institution):
        rng = self.rng
        merchants = self.p.merchants.get(inst.institution_id, ())
        if not merchants:
            raise _Unsuitable
        account, payer_account = self._reserves_at_two_banks(inst)
        count = self._mirror_count(inst)
        batches = rng.randint(3, min(6, count // 4))
        customers = self._customers(inst, count)
        sizes = [count // batches + (1 if n < count % batches else 0) for n in range(batches)]
        day = self.clearing_day(inst)
        steps: list[tuple[int, list[Any]]] = []
        index = 0
        for batch, size in enumerate(sizes):
            opens = self.moment_in(day, 9.0, 18.5)
            moments = sorted(opens + rng.randint(0, 40 * 60) for _ in range(size))
            for at in moments:
                steps.append((at, ["in", index, batch]))
                index += 1
            settle = moments[-1] + rng.randint(5 * 60, 30 * 60)
            if settle >= self.end:
                raise _Unsuitable
            steps.append((settle, ["settle", batch, rng.choice(merchants)]))
        steps.sort(key=lambda s: (s[0], s[1][0] != "in"))
        return [t for t, _ in steps], {
            "account": account,
            "payer_account": payer_account,
            "customers": customers,
            "amounts_cents": [self._odd_cents(2_000, 20_000) for _ in customers],
            "steps": [s for _, s in steps],
        }

    # -- look-alikes of two banks -----------------------------------------------------------

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
    """The ``_step_<variant>`` methods of the disguised-clearing variants (a mixin of
    ``violations_injector.Injector``)."""

    def _step_mirrors(self, inj, st, rng, step, at) -> list[Event]:
        p, w = inj.params, self.world
        kind, n = p["steps"][step]
        cents = p["amounts_cents"][n]
        if kind == "in":
            return [self._pay_in(inj, rng, at, p["customers"][n], p["account"], cents, purpose="转账")]
        payer = p["payer_account"]
        if w.ledger.balance[payer] < cents:
            return self._note(inj, step, "skipped: the paying reserve held too little")
        # The customer's money stays at the receiving bank, owed on: the paying reserve's own
        # unsettled money goes out in its place (so later withdrawals there do not overdraw it).
        w.unsettled[payer] = max(0, w.unsettled[payer] - cents)
        return [self._move(inj, rng, at, payer, p["payees"][n], cents, "代付款",
                           instruction=w.instruction("TR"))]  # fmt: skip

    _step_cross_bank_mirrors = _step_mirrors
    _step_same_bank_mirrors = _step_mirrors

    def _step_merchant_settlement_batch(self, inj, st, rng, step, at) -> list[Event]:
        p, w = inj.params, self.world
        kind, n, extra = p["steps"][step]
        if kind == "in":
            cents = p["amounts_cents"][n]
            st.setdefault("batches", {}).setdefault(str(extra), 0)
            st["batches"][str(extra)] += cents
            return [self._pay_in(inj, rng, at, p["customers"][n], p["account"], cents, purpose="消费付款")]
        gross = st.get("batches", {}).pop(str(n), 0)
        net = gross - round(gross * w.merchant_fee_rate[inj.institution_id])
        payer = p["payer_account"]
        if net <= 0 or w.ledger.balance[payer] < net:
            return self._note(inj, step, "skipped: nothing to settle or the paying reserve held too little")
        # The customers' money is owed to the merchant now: the gross leaves the liabilities,
        # the fee stays in the reserve for the evening sweep, as for every settlement; the paying
        # reserve's unsettled money goes in place of the customers' (which stays at the other bank).
        w.unsettled[payer] = max(0, w.unsettled[payer] - gross)
        return [self._move(inj, rng, at, p["payer_account"], extra, net, "商户结算款",
                           instruction=w.instruction("ST"), payer_liability=gross)]  # fmt: skip

    def _step_own_transfer_between_banks(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        cents = int(self.world.ledger.balance[p["payer"]] * p["fractions"][step]) // 1_000_000 * 1_000_000
        if cents < 1_000_000:
            return self._note(inj, step, "skipped: the own account held too little")
        return [self._move(inj, rng, at, p["payer"], p["payee"], cents, "自有资金调拨")]

    def _step_mirrored_legs(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        return [self._move(inj, rng, at, p["payer"], p["payee"], p["amount_cents"], p["purpose"])]
