"""Injected commingling (混同) and reserve shortfall (备付金/存管资金缺口), split out of
``violations``: its ``_Planner`` takes ``ReservePlanning`` (the ``plan_<variant>`` methods) and its
``Injector`` takes ``ReserveSteps`` (the ``_step_<variant>`` methods, the watch on balance
snapshots and these typologies' labels), so these run exactly like the other variants.

Customers' money and the institution's own mixed, or the customers' money short of what they are
owed:

- ``investors_to_own``: 3-12 investors paying into the institution's own operating account in a day;
- ``own_to_custody``: 1-2 transfers of own funds into the custody or reserve account;
- ``over_payout``: an instructed payout to an investor beyond what the investor is owed: the excess
  comes out of other customers' money, liabilities stay;
- ``advance_settlement``: a merchant settled in advance from the reserve, beyond the customers'
  payments.

Commingling is labelled per (account, Beijing day) from the credits, reserve shortfall per account
and unbroken run of short snapshots (``violations``' module docstring).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction

from schemas.fields import amount_to_cents, cents_to_text
from schemas.reference import AccountRole, Institution, InstitutionType
from services.simulator.ledger import HOLDS_CUSTOMER_MONEY, Event
from services.simulator.province import CUSTODY_TYPES
from services.simulator.violations_base import (
    _PURPOSES,
    POSITIVE,
    Variant,
    ViolationLabel,
    _Bucket,
    _ratio,
    _Unsuitable,
)
from services.simulator.world import draw_cents

_PAYMENT = frozenset({InstitutionType.payment})
_HOLDER_TYPES = CUSTODY_TYPES | _PAYMENT

RESERVE_VARIANTS: tuple[Variant, ...] = (
    Variant("investors_to_own", "commingling", POSITIVE, CUSTODY_TYPES, 1,
            "3-12 investors paying into the institution's own operating account in a day"),
    Variant("own_to_custody", "commingling", POSITIVE, _HOLDER_TYPES, 1,
            "1-2 transfers of own funds into the custody or reserve account"),
    Variant("over_payout", "reserve_shortfall", POSITIVE, CUSTODY_TYPES, 1,
            "an instructed payout to an investor beyond what the investor is owed: the excess "
            "comes out of other customers' money, liabilities stay"),
    Variant("advance_settlement", "reserve_shortfall", POSITIVE, _PAYMENT, 1,
            "a merchant settled in advance from the reserve, beyond the customers' payments"),
)  # fmt: skip


@dataclass(slots=True)
class _ShortRun:
    account: str
    bucket: _Bucket = field(default_factory=_Bucket)
    max_gap: int = 0
    max_ratio: Fraction = Fraction(0)
    causes: list[str] = field(default_factory=list)


class ReservePlanning:
    """The ``plan_<variant>`` methods of the commingling and reserve-shortfall variants (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and
    helpers)."""

    # -- commingling -----------------------------------------------------------------------

    def plan_investors_to_own(self, inst: Institution):
        iid, rng = inst.institution_id, self.rng
        products = self.p.products_by_institution.get(iid, ())
        pool = self.p.investor_pools.get(iid, ())
        if not products or len(pool) < 12:
            raise _Unsuitable
        count = rng.randint(3, 12)
        investors = rng.sample(pool, count)
        day = self.pick_day(weekday=False)
        times = sorted(self.moment(day, 8.5, 21.0) for _ in investors)
        return times, {
            "own": self.own(iid)[0],
            "investors": investors,
            "product_id": rng.choice(products).product_id,
            "purpose": _PURPOSES[inst.type]["deposit"],
        }

    def plan_own_to_custody(self, inst: Institution):
        rng = self.rng
        count = rng.choices((1, 2), weights=(0.7, 0.3))[0]
        day = self.pick_day()
        times = sorted(self.moment(day, 10.0, 16.0) for _ in range(count))
        amounts = [self.band_amount(((5_000, 95_000), (100_000, 900_000), (1_000_000, 3_000_000)), (0.3, 0.5, 0.2))
                   for _ in range(count)]  # fmt: skip
        if inst.type is InstitutionType.payment:
            purpose = "备付金补足"
        else:
            purpose = rng.choice(("逾期垫付款", "风险准备金划入", "代偿款"))
        return times, {
            "account": self.holder(inst),
            "own": self.own(inst.institution_id)[0],
            "amounts_yuan": amounts,
            "purpose": purpose,
        }

    # -- reserve shortfall -----------------------------------------------------------------

    def plan_over_payout(self, inst: Institution):
        bands = ((0.002, 0.009), (0.01, 0.049), (0.05, 0.19), (0.2, 0.3))
        band = self.rng.choices(bands, weights=(0.25, 0.35, 0.25, 0.15))[0]
        day = self.pick_day()
        return [self.moment(day, 10.0, 16.5)], {
            "account": self.holder(inst),
            "gap_ratio": round(self.rng.uniform(*band), 4),
        }

    def plan_advance_settlement(self, inst: Institution):
        merchants = self.p.merchants.get(inst.institution_id, ())
        if not merchants:
            raise _Unsuitable
        # A reserve earns fees all day, which close small gaps within hours: no tiny band here.
        band = self.rng.choices(((0.012, 0.049), (0.05, 0.19), (0.2, 0.3)), weights=(0.4, 0.4, 0.2))[0]
        day = self.pick_day()
        return [self.moment(day, 10.0, 16.5)], {
            "account": self.holder(inst),
            "merchant": self.rng.choice(merchants),
            "gap_ratio": round(self.rng.uniform(*band), 4),
        }


class ReserveSteps:
    """The ``_step_<variant>`` methods of the commingling and reserve-shortfall variants, the watch
    on balance snapshots and their labels (a mixin of ``violations_injector.Injector``)."""

    def _step_investors_to_own(self, inj, st, rng, step, at) -> list[Event]:
        investor = self._party(inj.params["investors"][step])
        if investor.person:
            cents = draw_cents(rng, 20_000, 1.0, 1_000, 200_000, step=100)
        else:
            cents = draw_cents(rng, 200_000, 0.8, 50_000, 1_500_000, step=1_000)
        return [self._move(inj, rng, at, investor, inj.params["own"], cents, inj.params["purpose"],
                           product_id=inj.params["product_id"])]  # fmt: skip

    def _step_own_to_custody(self, inj, st, rng, step, at) -> list[Event]:
        iid, account, own = inj.institution_id, inj.params["account"], inj.params["own"]
        cents = min(inj.params["amounts_yuan"][step] * 100, self.world.ledger.balance[own] // 2)
        cents = cents // 10_000 * 10_000
        if cents < 100_000:
            return self._note(inj, step, "skipped: the own account held under 2,000.00")
        w = self.world
        if self._role.get(account) is AccountRole.customer_custody:
            # Money to pay investors whose borrowers did not repay (垫付): payouts may use it.
            book = max(w.books[iid], key=lambda b: (len(b.positions), b.product_id))
            book.repaid += cents
            self._product_cause.setdefault(book.product_id, inj.injection_id)
        else:
            w.unsettled[account] += cents
        return [self._move(inj, rng, at, own, account, cents, inj.params["purpose"])]

    def _step_over_payout(self, inj, st, rng, step, at) -> list[Event]:
        iid, account, w = inj.institution_id, inj.params["account"], self.world
        books = [b for b in w.books[iid] if b.positions]
        if not books:
            return self._note(inj, step, "skipped: no investor positions")
        book = max(books, key=lambda b: (b.raised + b.repaid, b.product_id))
        investor = max(book.positions, key=lambda a: (book.positions[a], a))
        available = self._available(iid, account)
        gross = 1 + book.declared_yield * book.term_days / 365
        owed = min(int(book.positions[investor] * gross), int(available * 0.3))
        gap = min(int(w.ledger.liabilities[account] * inj.params["gap_ratio"]), int(available * 0.5) - owed)
        if gap < 10_000 or owed < 0:
            return self._note(inj, step, "skipped: too little in custody for a visible gap")
        principal = min(book.positions[investor], int(owed / gross))
        if book.positions[investor] - principal <= 0:
            del book.positions[investor]
        else:
            book.positions[investor] -= principal
        self._take(iid, account, owed + gap)
        self._gap_cause[account] = inj.injection_id
        purpose = _PURPOSES[self.province.institution_by_id[iid].type]["payout"]
        return [self._move(inj, rng, at, account, investor, owed + gap, purpose,
                           instruction=w.instruction("PO"), product_id=book.product_id,
                           payer_liability=owed)]  # fmt: skip

    def _step_advance_settlement(self, inj, st, rng, step, at) -> list[Event]:
        account, w = inj.params["account"], self.world
        balance, owed = w.ledger.balance[account], w.ledger.liabilities[account]
        surplus = max(0, balance - owed)  # fees earned since the last sweep
        backed = int(w.unsettled[account] * rng.uniform(0.2, 0.5))
        gap = surplus + int(owed * inj.params["gap_ratio"])
        if backed + gap > balance * 0.6:
            gap = int(balance * 0.6) - backed
        if gap <= surplus + 10_000:
            return self._note(inj, step, "skipped: too little in the reserve for a visible gap")
        w.unsettled[account] -= backed
        self._gap_cause[account] = inj.injection_id
        return [self._move(inj, rng, at, account, inj.params["merchant"], backed + gap, "商户结算款",
                           instruction=w.instruction("ST"), payer_liability=backed)]  # fmt: skip

    # -- watching the records --------------------------------------------------------------

    def _see_balance(self, bank: str, r: dict) -> None:
        account = r["account_id"]
        if "customer_liabilities" not in r or self._role.get(account) not in HOLDS_CUSTOMER_MONEY:
            return
        balance, owed = amount_to_cents(r["balance"]), amount_to_cents(r["customer_liabilities"])
        run = self._short_open.get(account)
        if balance >= owed:
            if run is not None:
                self._short_done.append(self._short_open.pop(account))
            return
        if run is None:
            run = self._short_open[account] = _ShortRun(account)
        run.bucket.add(bank, r["record_id"], r["as_of"], 0)
        gap = owed - balance
        run.max_gap = max(run.max_gap, gap)
        run.max_ratio = max(run.max_ratio, Fraction(gap, owed) if owed else Fraction(1))
        cause = self._gap_cause.get(account)
        if cause and cause not in run.causes:
            run.causes.append(cause)

    # -- the labels ------------------------------------------------------------------------

    def _commingling_labels(self) -> list[ViolationLabel]:
        out = []
        for (account, day), bucket in sorted(self._comm.items()):
            signals = sorted(bucket.tags)
            metrics = {"day": day, "total": cents_to_text(bucket.cents), "count": bucket.count,
                       **{tag: cents_to_text(cents) for tag, cents in bucket.tags.items()}}  # fmt: skip
            note = f"{bucket.count} credit(s) on {self._role_name(account)} on {day}: {', '.join(signals)}"
            out.append(self._make("commingling", POSITIVE, "+".join(signals), f"{account}:{day}",
                                  account, bucket, metrics, note))  # fmt: skip
        return out

    def _shortfall_labels(self) -> list[ViolationLabel]:
        runs = sorted(
            [*self._short_done, *self._short_open.values()], key=lambda run: (run.bucket.first, run.account)
        )
        seen: Counter[str] = Counter()
        out = []
        for run in runs:
            seen[run.account] += 1
            metrics = {
                "snapshots": run.bucket.count,
                "max_gap": cents_to_text(run.max_gap),
                "max_gap_ratio": _ratio(run.max_ratio),
                "open": run.account in self._short_open and self._short_open[run.account] is run,
            }
            cause = run.causes[0] if run.causes else None
            note = (f"{run.bucket.count} snapshot(s) of {self._role_name(run.account)} below the customer "
                    f"liabilities, gap up to {metrics['max_gap']} ({metrics['max_gap_ratio']})"
                    + (f"; opened by {', '.join(run.causes)}" if run.causes else ""))  # fmt: skip
            key = f"{run.account}:{run.bucket.first}"
            out.append(self._make("reserve_shortfall", POSITIVE, "balance_below_liabilities", key,
                                  run.account, run.bucket, metrics, note, episode=cause))  # fmt: skip
        return out
