"""Injected investor-cap breaches (超范围募集: 私募超过 200 人) and rapid growth (规模异常增长), with
their hard negatives, split out of ``violations_institutions``: its ``InstitutionPlanning`` takes
``GrowthPlanning`` (the ``plan_<variant>`` methods) and its ``InstitutionSteps`` takes
``GrowthSteps`` (the ``_step_<variant>`` methods), so these run exactly like the other variants.
Both typologies are many new investors or much new money at once; the helpers they use (new
investor accounts, a moment in the plan, the products on sale) are ``InstitutionPlanning``'s and
their rules ``institution_truth``'s.

Timing. ``rapid_growth`` compares a day with the median of the institution's previous days and
needs ``min_history_days`` of them: its positives fall on a day at least that far into the plan
(the plan is assumed to start with the feed), and the big investor campaigns of
``investor_cap_breach`` fall before it where the plan allows, so that they do not read as growth.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from schemas.reference import Institution, InstitutionType, Product
from services.simulator.institution_truth import frac, money, uncapped_types
from services.simulator.ledger import Event
from services.simulator.province import CUSTODY_TYPES
from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE, Variant, _day_of, _Unsuitable
from services.simulator.world import draw_cents

_PAYMENT = frozenset({InstitutionType.payment})
_PRIVATE_TYPES = frozenset({InstitutionType.equity_crowdfunding, InstitutionType.asset_management})
_GROWTH_TYPES = CUSTODY_TYPES | _PAYMENT

PRIVATE_OVERSUBSCRIBED = Variant("private_oversubscribed", "investor_cap_breach", POSITIVE, _PRIVATE_TYPES, 1,
        "a private product (investor_cap 200) sold to 201-660 distinct investors in 1-2 days, "
        "most of them new accounts, many unknown to the reference data")  # fmt: skip
INFLOW_SURGE = Variant("inflow_surge", "rapid_growth", POSITIVE, _GROWTH_TYPES, 1,
        "3-12 new payers bringing 3.2-14 times the institution's trailing median daily inflow "
        "in one day, at least min_history_days into the plan")  # fmt: skip
NEW_INVESTOR_SURGE = Variant("new_investor_surge", "rapid_growth", POSITIVE, _GROWTH_TYPES, 1,
        "1.1-1.8 times the new investors the trend needs to read as growth (at least 25; small "
        "amounts) paying in on one day, at least min_history_days into the plan")  # fmt: skip
PUBLIC_MANY_INVESTORS = Variant("public_many_investors", "investor_cap_breach", HARD_NEGATIVE,
        frozenset({InstitutionType.p2p_lending}), 1,
        "a public P2P product (no investor cap) sold to 210-360 distinct investors",
        ("investor_cap_breach",))  # fmt: skip
STEADY_HIGH_VOLUME = Variant("steady_high_volume", "rapid_growth", HARD_NEGATIVE, _GROWTH_TYPES, 1,
        "large corporate payments every day of the plan (weekdays 3-8 million, weekends a "
        "quarter): above min_inflow daily and up from the weekend, but no growth on the trend",
        ("rapid_growth",))  # fmt: skip


class GrowthPlanning:
    """The ``plan_<variant>`` methods of the investor-cap and rapid-growth variants (a mixin of
    ``violations_institutions.InstitutionPlanning``, whose helpers they use: ``rule``,
    ``new_investors``, ``moment_in``, ``_on_sale``, ``_prefer_weekday``...)."""

    # -- time ------------------------------------------------------------------------------

    def early_days(self, inst: Institution) -> list[date]:
        """Days before a trend has ``min_history_days`` of history (no growth can be read there)."""
        history = int(self.rule("rapid_growth", inst)["min_history_days"])
        return self.days[: max(1, history)]

    def growth_days(self, inst: Institution, from_hour: float = 9.0, to_hour: float = 20.0) -> list[date]:
        """Days with ``min_history_days`` before them in the plan, with the hours still in it."""
        history = int(self.rule("rapid_growth", inst)["min_history_days"])
        return [d for d in self.days[history:] if self._hours_left(d, from_hour, to_hour) >= 3]

    # -- investor cap ----------------------------------------------------------------------

    def _campaign(self, inst: Institution, product: Product, count: int):
        """``count`` distinct investors paying into ``product`` over 1-2 early days."""
        rng, iid = self.rng, inst.institution_id
        existing = [a for a in [*self.p.investor_pools.get(iid, ()), *self.free_investors]]
        existing = list(dict.fromkeys(existing))
        take = rng.sample(existing, min(len(existing), int(count * rng.uniform(0.15, 0.4))))
        investors = take + self.new_investors(iid, count - len(take), registered=0.25)
        rng.shuffle(investors)
        early = self.early_days(inst)
        span = min(len(early), rng.randint(1, 2))
        first = rng.choice(early[: len(early) - span + 1])
        days = [first + timedelta(days=n) for n in range(span)]
        times = sorted(self.moment_in(days[n % span], 8.5, 21.5) for n in range(len(investors)))
        amounts = []
        for investor in investors:
            if investor in self.p.natural_persons or investor in self.new_persons:
                amounts.append(draw_cents(rng, 10_000, 0.8, 1_000, 100_000, step=100))
            else:
                amounts.append(draw_cents(rng, 150_000, 0.7, 20_000, 1_000_000, step=1_000))
        return times, {
            "account": self.holder(inst),
            "product_id": product.product_id,
            "investors": investors,
            "amounts_cents": amounts,
        }

    def plan_private_oversubscribed(self, inst: Institution):
        products = self._on_sale(inst.institution_id, capped=True)
        if not products:
            raise _Unsuitable
        product = self.rng.choice(products)
        cap = int(product.investor_cap or 200)
        bands = ((cap + 1, cap + 20), (int(cap * 1.5), cap * 2), (cap * 3, int(cap * 3.3)))
        low, high = self.rng.choices(bands, weights=(0.4, 0.45, 0.15))[0]
        times, params = self._campaign(inst, product, self.rng.randint(low, high))
        return times, {**params, "investor_cap": cap}

    def plan_public_many_investors(self, inst: Institution):
        cfg = self.rule("investor_cap_breach", inst)
        if inst.type.value not in uncapped_types(cfg):
            raise _Unsuitable
        products = self._on_sale(inst.institution_id, capped=False)
        if not products:
            raise _Unsuitable
        cap = int(cfg["default_cap"])
        count = self.rng.randint(cap + 10, int(cap * 1.8))
        return self._campaign(inst, self.rng.choice(products), count)

    # -- rapid growth ----------------------------------------------------------------------

    def _growth_account(self, inst: Institution) -> tuple[str, list[str]]:
        """Where growth lands: the main reserve, or custody with the products on sale."""
        if inst.type is InstitutionType.payment:
            return self.holder(inst), []
        products = [p.product_id for p in self._on_sale(inst.institution_id)]
        if not products:
            raise _Unsuitable
        return self.holder(inst), products

    def plan_inflow_surge(self, inst: Institution):
        rng, cfg = self.rng, self.rule("rapid_growth", inst)
        days = self.growth_days(inst)
        if not days:
            raise _Unsuitable
        account, products = self._growth_account(inst)
        day = self._prefer_weekday(days)
        count = rng.randint(3, max(3, min(12, int(cfg["min_new_investors"]) - 5)))
        payers = self.new_investors(inst.institution_id, count, registered=0.2, firms=0.6)
        low, high = rng.choices(((3.2, 3.8), (4.0, 7.5), (8.5, 14.0)), weights=(0.35, 0.45, 0.2))[0]
        return sorted(self.moment_in(day, 9.0, 20.0) for _ in payers), {
            "account": account,
            "payers": payers,
            "weights": [round(rng.random() + 0.3, 4) for _ in payers],
            "multiple": round(rng.uniform(low, high), 3),
            "products": products,
            "day": day.isoformat(),
        }

    def plan_new_investor_surge(self, inst: Institution):
        rng, cfg = self.rng, self.rule("rapid_growth", inst)
        days = self.growth_days(inst)
        if not days:
            raise _Unsuitable
        account, products = self._growth_account(inst)
        day = self._prefer_weekday(days)
        least = int(cfg["min_new_investors"])
        # Moments of the day; each brings as many new investors as the day's trend asks for (sized
        # when the day comes, from a pool of four times the moments).
        moments = rng.randint(least + 5, least * 3 + 10)
        payers = self.new_investors(inst.institution_id, 4 * moments, registered=0.3)
        return sorted(self.moment_in(day, 8.5, 21.0) for _ in range(moments)), {
            "account": account,
            "payers": payers,
            "amounts_cents": [draw_cents(rng, 5_000, 0.8, 500, 50_000, step=100) for _ in payers],
            "margin": round(rng.uniform(1.1, 1.8), 3),
            "products": products,
            "day": day.isoformat(),
        }

    def plan_steady_high_volume(self, inst: Institution):
        rng = self.rng
        account, products = self._growth_account(inst)
        payers = self.new_investors(inst.institution_id, rng.randint(3, 5), registered=0.0, firms=1.0)
        level = rng.randint(30, 80) * 10_000_000  # 3 to 8 million a weekday
        steps: list[tuple[int, list[Any]]] = []
        for day in self.days:
            weekday = day.weekday() < 5
            total = int(level * (rng.uniform(0.9, 1.1) if weekday else rng.uniform(0.2, 0.3)))
            count = rng.randint(2, 4) if weekday else rng.randint(1, 2)
            try:
                moments = sorted(self.moment_in(day, 9.0, 17.0) for _ in range(count))
            except _Unsuitable:
                continue
            weights = [rng.random() + 0.5 for _ in moments]
            for at, weight in zip(moments, weights, strict=True):
                cents = max(1_000_000, int(total * weight / sum(weights)) // 100_000 * 100_000)
                steps.append((at, [rng.randrange(len(payers)), cents]))
        if len({_day_of(t) for t, _ in steps}) < 2:
            raise _Unsuitable
        # The day a naive rule flags first: the first working day after a quiet one.
        days = sorted({_day_of(t) for t, _ in steps})
        jump = next((d for d, before in zip(days[1:], days, strict=False)
                     if date.fromisoformat(d).weekday() < 5 and date.fromisoformat(before).weekday() >= 5),
                    days[1])  # fmt: skip
        return [t for t, _ in steps], {
            "account": account,
            "payers": payers,
            "steps": [s for _, s in steps],
            "products": products,
            "weekday_level_cents": level,
            "key_day": jump,
        }


class GrowthSteps:
    """The ``_step_<variant>`` methods of the investor-cap and rapid-growth variants (a mixin of
    ``violations_institutions.InstitutionSteps``, whose ``_pay_in`` they use)."""

    # -- investor cap ----------------------------------------------------------------------

    def _step_campaign(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        return [self._pay_in(inj, rng, at, p["investors"][step], p["account"], p["amounts_cents"][step],
                             product_id=p["product_id"])]  # fmt: skip

    _step_private_oversubscribed = _step_campaign
    _step_public_many_investors = _step_campaign

    # -- rapid growth ----------------------------------------------------------------------

    def _growth_check(self, inj, step, at) -> tuple[int, Fraction, Fraction, dict[str, Any]]:
        iid = inj.institution_id
        cfg = self._truth.cfg("rapid_growth", iid)
        history, baseline, baseline_new = self._truth.growth_baseline(iid, _day_of(at))
        if history < int(cfg["min_history_days"]):
            self._note(inj, step, f"short: only {history} day(s) of history before the surge")
        return history, baseline, baseline_new, cfg

    def _step_inflow_surge(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        if step == 0:
            _, baseline, _, cfg = self._growth_check(inj, step, at)
            ratio, least = frac(cfg["growth_ratio"]), money(cfg["min_inflow"])
            floor = max(baseline, Fraction(least) / ratio)
            st["target"] = max(least, math.ceil(floor * Fraction(str(p["multiple"]))))
            st["paid"] = 0
        weights = p["weights"]
        if step == len(weights) - 1:
            cents = st["target"] - st["paid"]
        else:
            cents = int(st["target"] * weights[step] / sum(weights))
        cents = max(100_000, -(-cents // 100_000) * 100_000)  # whole thousands of yuan
        st["paid"] += cents
        product = rng.choice(p["products"]) if p["products"] else None
        return [self._pay_in(inj, rng, at, p["payers"][step], p["account"], cents, product_id=product,
                             purpose=None if product else "备付金充值")]  # fmt: skip

    def _step_new_investor_surge(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        moments = len(inj.times)
        if step == 0:
            _, _, baseline_new, cfg = self._growth_check(inj, step, at)
            needed = max(int(cfg["min_new_investors"]),
                         math.ceil(frac(cfg["growth_ratio"]) * max(Fraction(1), baseline_new)))  # fmt: skip
            wanted = max(moments, math.ceil(needed * Fraction(str(p["margin"]))))
            if wanted > len(p["payers"]):
                self._note(inj, step, f"short: {needed} new investors needed, {len(p['payers'])} planned")
            st["per_moment"] = [
                wanted // moments + (1 if n < wanted % moments else 0) for n in range(moments)
            ]
            st["next"] = 0
        events: list[Event] = []
        for _ in range(st["per_moment"][step]):
            n = st["next"]
            if n >= len(p["payers"]):
                break
            st["next"] += 1
            product = rng.choice(p["products"]) if p["products"] else None
            events.append(self._pay_in(inj, rng, at, p["payers"][n], p["account"], p["amounts_cents"][n],
                                       product_id=product, card=product is None))  # fmt: skip
        return events

    def _step_steady_high_volume(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        payer, cents = p["steps"][step]
        product = p["products"][payer % len(p["products"])] if p["products"] else None
        return [self._pay_in(inj, rng, at, p["payers"][payer], p["account"], cents, product_id=product,
                             purpose=None if product else "企业客户备付金充值")]  # fmt: skip
