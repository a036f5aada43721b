"""AMLSim-style laundering patterns among customers' accounts, labelled ``anomaly``: shapes that
no rule of FundWatch names, for the learned typology to find, and lawful look-alikes as its hard
negatives. Opt-in: ``plan_violations(..., patterns=n)``; ``violations_patterns_run`` runs them.

The shapes (AMLSim's typologies), among quiet natural persons' accounts at the monitored banks:

- ``cycle``: A→B→…→A through 3-6 accounts over about 18-72 hours, each hop keeping 0.3-2.5 % back
  (the fee of the account passing it on), so the amount shrinks on its way round;
- ``scatter_gather``: one source pays 3-8 intermediaries within 12 hours, each of which forwards
  what it got, less 0.5-3 %, to one collector 1-30 hours later (a quarter in two transfers);
- ``gather_scatter``: 3-8 payers pay one hub over up to 30 hours; 1-20 hours after the last one
  the hub pays what came in, less 0.5-3 %, out to 3-8 other payees;
- ``stack``: 3 or 4 layers of 2-4 accounts; every account of a layer pays every account of the
  next, each passing on what it received less 0.3-2 %, layer after layer.

Amounts are whole hundreds, whole yuan or exact cents, at hours drawn from the day rhythm.

What keeps every rule quiet. No institution's custody, reserve, own or related-party account
takes part (misappropriation, self-financing, commingling, fund pools, shortfalls and the
institution-level rules read only those) and no product is named. Per account, Beijing day and
direction a pattern moves at most ``LINE_SHARE`` of the account's large-value line. And the
accounts are quiet: free investors in no platform's pool (the normal feed never moves their
money) and, as those run out, new platform-less investor accounts the plan opens (its reference
items, as new investors of other variants are). Busy customers would not do: at the default
intensity the normal feed alone puts natural persons' investor and borrower accounts over the
500,000 line about every other day, so patterns among them share their days with large-value
reports, and now and then their own transfers tip such a day over the line. An account takes
part in one pattern at most and in none that another injection names.

The look-alikes (hard negatives of ``anomaly``; ``pattern`` names the shape each resembles),
drawn from the same quiet accounts, so that only their shape tells them apart:

- ``payroll_run`` (scatter_gather): a company (a new ``other`` account) pays wages to 8-25
  people (a few of them quiet accounts, the rest at banks outside the feed) within 5-40 minutes
  of a payday morning, to the cent, through the batch system;
- ``family_circle`` (cycle): 3-4 relatives each send the next one a round sum (生活费, 赡养费,
  1,000-5,000) on a month-start day: a circle, but nothing is passed on or kept back;
- ``rent_collection`` (gather_scatter): a landlord collects 4-8 round rents over the first days
  of a month, then pays the mortgage, the property fee and utilities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE
from services.simulator.violations_patterns_base import (
    PAYROLL_PURPOSES,
    Draft,
    PatternInjection,
    PatternTools,
    Unplannable,
    midnight,
)
from services.simulator.world import draw_cents

SHAPES = ("cycle", "scatter_gather", "gather_scatter", "stack")
# Look-alike -> the shape it resembles.
LOOKALIKES = {"payroll_run": "scatter_gather", "family_circle": "cycle", "rent_collection": "gather_scatter"}
_FAMILY_PURPOSES = ("生活费", "赡养费", "家用", "零花钱")
_PAYDAYS = (5, 10, 15, 20, 25)


class PatternPlanning(PatternTools):
    """Draws the shapes and look-alikes of one plan (``PatternTools`` says from what)."""

    def plan(self, count: int, lookalikes: bool) -> tuple[list[PatternInjection], list[str]]:
        planned: list[PatternInjection] = []
        skipped: list[str] = []
        kinds = [(shape, POSITIVE, shape) for shape in SHAPES]
        if lookalikes:
            kinds += [(name, HARD_NEGATIVE, like) for name, like in LOOKALIKES.items()]
        for shape, kind, pattern in kinds:
            for _ in range(count):
                try:
                    roles, drafts = getattr(self, "_" + shape)()
                except Unplannable as why:
                    skipped.append(f"{shape}: {why}")
                    continue
                hops = self._finish(drafts)
                number = len(planned) + 1
                planned.append(PatternInjection(f"P{number:03d}-{shape}", shape, kind, pattern, roles, hops))
        return planned, skipped

    # -- the shapes ------------------------------------------------------------------------

    def _cycle(self):
        ring = self._take(self.rng.randint(3, 6))
        span_h = self.rng.uniform(18, 72)
        at, cents = self._first(span_h), self._yuan(30_000, 180_000)
        drafts = []
        for n, payer in enumerate(ring):
            drafts.append(Draft(at, payer, ring[(n + 1) % len(ring)], cents, self._purpose()))
            at = self._later(at, 0.5 * span_h / len(ring), 1.5 * span_h / len(ring))
            cents = self._less(cents, 0.003, 0.025)
        return {"ring": tuple(ring)}, drafts

    def _scatter_gather(self):
        k = self.rng.randint(3, 8)
        source, collector, *middle = self._take(k + 2)
        start = self._first(self.rng.uniform(24, 72))
        drafts = []
        for mid, cents in zip(middle, self._split(self._yuan(60_000, 400_000), k), strict=True):
            at = self._later(start, 0.0, 12.0)
            drafts.append(Draft(at, source, mid, cents, self._purpose()))
            onward = self._less(cents, 0.005, 0.03)
            parts = self._split(onward, 2) if self.rng.random() < 0.25 else [onward]
            for part in parts:
                at = self._later(at, 1, 30 / len(parts))
                drafts.append(Draft(at, mid, collector, part, self._purpose()))
        return {"source": (source,), "intermediaries": tuple(middle), "collector": (collector,)}, drafts

    def _gather_scatter(self):
        a, b = self.rng.randint(3, 8), self.rng.randint(3, 8)
        hub, *rest = self._take(a + b + 1)
        payers, payees = rest[:a], rest[a:]
        start = self._first(self.rng.uniform(30, 72))
        drafts = [
            Draft(self._later(start, 0.0, 30.0), payer, hub, self._yuan(8_000, 60_000), self._purpose())
            for payer in payers
        ]
        at = self._later(max(d.at for d in drafts), 1, 20)
        for payee, cents in zip(payees, self._split(self._less(sum(d.cents for d in drafts), 0.005, 0.03), b),
                                strict=True):  # fmt: skip
            drafts.append(Draft(at, hub, payee, cents, self._purpose()))
            at = self._later(at, 0.05, 10 / b)
        return {"hub": (hub,), "payers": tuple(payers), "payees": tuple(payees)}, drafts

    def _stack(self):
        depth = self.rng.choice((3, 4))
        layers = [self._take(self.rng.randint(2, 4)) for _ in range(depth)]
        at = self._first(self.rng.uniform(24, 80))
        # The first layer places the money; every later one passes on what it got, less its cut.
        outgoing = {a: self._yuan(5_000, 40_000) * len(layers[1]) for a in layers[0]}
        received: dict[str, int] = defaultdict(int)
        drafts: list[Draft] = []
        for payers, payees in zip(layers, layers[1:], strict=False):
            done = at
            for payer in payers:
                total = outgoing[payer] if payer in outgoing else self._less(received[payer], 0.003, 0.02)
                for payee, cents in zip(payees, self._split(total, len(payees)), strict=True):
                    when = self._later(at, 0.0, 8.0)
                    drafts.append(Draft(when, payer, payee, cents, self._purpose()))
                    received[payee] += cents
                    done = max(done, when)
            at = self._later(done, 2, 16)
        return {f"layer_{n}": tuple(layer) for n, layer in enumerate(layers)}, drafts

    # -- the look-alikes -------------------------------------------------------------------

    def _payroll_run(self):
        employer = self._open(person=False)
        n = self.rng.randint(8, 25)
        monitored = self._take(self.rng.randint(1, max(1, n // 3)))
        staff = monitored + self._outside(self.outside_persons, n - len(monitored))
        self.rng.shuffle(staff)
        at = midnight(self._day(_PAYDAYS)) + int(self.rng.uniform(9.0, 11.0) * 3600)
        batch = self.rng.randrange(5 * 60, 40 * 60)
        purpose = self.rng.choice(PAYROLL_PURPOSES)
        drafts = [Draft(at + self.rng.randrange(batch), employer, person,
                         draw_cents(self.rng, 6_500, 0.35, 2_800, 30_000), purpose) for person in staff]  # fmt: skip
        return {"employer": (employer,), "employees": tuple(staff)}, drafts

    def _family_circle(self):
        family = self._take(self.rng.randint(3, 4))
        day = self._day((1, 2, 3, 4, 5))
        drafts = []
        for n, payer in enumerate(family):
            at = midnight(day) + int(self.rng.uniform(8.0, 22.0) * 3600)
            cents = self.rng.choice((1_000, 1_500, 2_000, 3_000, 5_000)) * 100
            drafts.append(
                Draft(at, payer, family[(n + 1) % len(family)], cents, self.rng.choice(_FAMILY_PURPOSES))
            )
        return {"ring": tuple(family)}, drafts

    def _rent_collection(self):
        landlord = self._take(1)
        n = self.rng.randint(4, 8)
        monitored = self._take(self.rng.randint(1, n // 2))
        tenants = monitored + self._outside(self.outside_persons, n - len(monitored))
        day = self._day((1, 2, 3))
        drafts = [Draft(self._on(day + timedelta(days=self.rng.randrange(3))), tenant, landlord[0],
                        self.rng.randrange(24, 90) * 5_000, "房租") for tenant in tenants]  # fmt: skip
        at = self._later(max(d.at for d in drafts), 2, 24)
        payees = self._outside(self.outside_firms, 3)
        bills = (("房贷还款", 2_000, 9_000), ("物业费", 150, 1_200), ("水电燃气费", 80, 600))
        for payee, (purpose, low, high) in zip(payees, bills, strict=True):
            drafts.append(Draft(at, landlord[0], payee, self._yuan(low, high), purpose))
            at = self._later(at, 0.1, 6)
        return {"landlord": tuple(landlord), "tenants": tuple(tenants), "payees": tuple(payees)}, drafts

    def _day(self, days_of_month: Iterable[int]) -> date:
        """A day of the plan on one of ``days_of_month`` (a working day if there is one), else its first working day."""
        wanted = set(days_of_month)
        fits = [d for d in self.days if d.day in wanted]
        working = [d for d in fits if d.weekday() < 5] or fits
        if working:
            return self.rng.choice(working)
        return next((d for d in self.days if d.weekday() < 5), self.days[0])
