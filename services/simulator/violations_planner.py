"""The planner of ``plan_violations``: for each variant, in ``VARIANTS`` order, the institutions of
a suitable type, the least used first (a variant's preferred types before the others), until one
takes it; the accounts an injection names are then kept from the others where it needs them to
itself. Its ``plan_<variant>`` methods come from the typology modules' planning mixins; the helpers
here (an institution's own and holding accounts, its related persons, a day, a moment, an amount)
are what they share.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from models.thresholds import Thresholds
from schemas.fields import BEIJING
from schemas.reference import AccountRole, Institution, InstitutionType, Relation
from services.simulator.province import Province
from services.simulator.violations_base import Variant, _Unsuitable
from services.simulator.violations_catalogue import Injection
from services.simulator.violations_clearing import EXCLUSIVE as _CLEARING_EXCLUSIVE
from services.simulator.violations_clearing import PREFERRED as _CLEARING_PREFERRED
from services.simulator.violations_clearing import ClearingPlanning
from services.simulator.violations_institutions import PREFERRED as _INSTITUTION_PREFERRED
from services.simulator.violations_institutions import InstitutionPlanning, clashes
from services.simulator.violations_large_value import EXCLUSIVE as _LARGE_VALUE_EXCLUSIVE
from services.simulator.violations_large_value import PREFERRED as _LARGE_VALUE_PREFERRED
from services.simulator.violations_large_value import LargeValuePlanning
from services.simulator.violations_misappropriation import MisappropriationPlanning
from services.simulator.violations_pools import POOL_EXCLUSIVE, PoolPlanning
from services.simulator.violations_reserves import ReservePlanning
from services.simulator.violations_self_financing import PREFERRED as _SELF_FINANCING_PREFERRED
from services.simulator.violations_self_financing import SelfFinancingPlanning


class _Planner(
    MisappropriationPlanning,
    SelfFinancingPlanning,
    ReservePlanning,
    LargeValuePlanning,
    ClearingPlanning,
    InstitutionPlanning,
    PoolPlanning,
):
    def __init__(
        self,
        province: Province,
        rng: random.Random,
        start: int,
        end: int,
        thresholds: Thresholds,
        only: set[str] | None,
    ) -> None:
        self.p = province
        self.rng = rng
        self.start = start
        self.end = end
        self.thresholds = thresholds
        self.only = only
        self.injections: list[Injection] = []
        self.skipped: list[str] = []
        self.usage: Counter[str] = Counter()
        self.variants_at: dict[str, set[str]] = {}
        # Accounts some injection names, and those an injection needs to itself (a pool's day-end
        # balance, a person's day total under the line): no other injection may move money there.
        self.touched: set[str] = set()
        self.used_accounts: set[str] = set()
        first = datetime.fromtimestamp(start, BEIJING).date()
        last = datetime.fromtimestamp(end - 1, BEIJING).date()
        self.days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        related: dict[str, list[str]] = {}
        self.relation: dict[str, Relation] = {}
        for party in province.related_parties:
            for account in party.accounts:
                related.setdefault(party.institution_id, []).append(account)
                self.relation[account] = party.relation
        self.related = related
        self.outside_firms = [e.account_id for e in province.externals if not e.person]
        self.outside_persons = [e.account_id for e in province.externals if e.person]
        self.free_investors = list(province.accounts_of(None, AccountRole.investor))
        self._init_institution_planning()

    # -- helpers ---------------------------------------------------------------------------

    def own(self, iid: str) -> tuple[str, ...]:
        return self.p.accounts_of(iid, AccountRole.own_operating)

    def holder(self, inst: Institution) -> str:
        iid = inst.institution_id
        if inst.type is InstitutionType.payment:
            return self.p.accounts_of(iid, AccountRole.payment_reserve)[0]  # the main reserve
        return self.p.accounts_of(iid, AccountRole.customer_custody)[0]

    def persons(self, iid: str) -> list[str]:
        return [a for a in self.related.get(iid, ()) if a in self.p.natural_persons and a not in self.touched]

    def free(self, accounts: Iterable[str]) -> list[str]:
        """``accounts`` less those an exclusive injection holds."""
        return [a for a in accounts if a not in self.used_accounts]

    def pick_day(self, weekday: bool = True, span: int = 1) -> date:
        days = self.days[: max(1, len(self.days) - span + 1)]
        working = [d for d in days if d.weekday() < 5]
        return self.rng.choice(working if weekday and working else days)

    def moment(self, day: date, from_hour: float, to_hour: float) -> int:
        midnight = int(datetime.combine(day, time(0), BEIJING).timestamp())
        return midnight + self.rng.randrange(int(from_hour * 3600), int(to_hour * 3600))

    def band_amount(self, bands: tuple[tuple[int, int], ...], weights: tuple[float, ...]) -> int:
        """Whole yuan from one of ``bands``, rounded as people move money."""
        low, high = self.rng.choices(bands, weights=weights)[0]
        yuan = self.rng.uniform(low, high)
        step = 10_000 if yuan >= 1_000_000 else 1_000 if yuan >= 20_000 else 100
        return int(max(low, round(yuan / step) * step))

    def cfg(self, typology: str, inst: Institution) -> dict[str, Any]:
        return self.thresholds.get(typology, inst.type.value)

    # -- choosing the institution ----------------------------------------------------------

    def add(self, variant: Variant) -> None:
        planner = getattr(self, "plan_" + variant.name)
        candidates = [
            inst
            for inst in self.p.institutions
            if inst.type in variant.types
            and (self.only is None or inst.institution_id in self.only)
            and not self._clashes(variant.name, inst.institution_id)
        ]
        # Least used first; a variant's preferred types before the others (the issue's own-money
        # transfer is a payment institution's; large loans are projects', P2P caps them; cash
        # deposits are a developer's).
        preferred = _PREFERRED.get(variant.name, frozenset())
        self.rng.shuffle(candidates)
        candidates.sort(key=lambda inst: (inst.type not in preferred, self.usage[inst.institution_id]))
        for inst in candidates:
            # A planner that gives up leaves no new reference item behind.
            made = (
                len(self.new_products),
                len(self.new_accounts),
                len(self.new_externals),
                self.next_product,
            )
            try:
                times, params = planner(inst)
                if any(not self.start <= t < self.end for t in times):
                    raise _Unsuitable
            except _Unsuitable:
                del self.new_products[made[0] :], self.new_accounts[made[1] :], self.new_externals[made[2] :]
                self.next_product = made[3]
                continue
            number = len(self.injections) + 1
            injection = Injection(
                f"V{number:03d}-{variant.name}", variant.name, inst.institution_id, tuple(times), params
            )
            self.injections.append(injection)
            self.after_planning(variant, inst.institution_id, times)
            self.usage[inst.institution_id] += 1
            self.variants_at.setdefault(inst.institution_id, set()).add(variant.name)
            if variant.name in _EXCLUSIVE:
                self.used_accounts.add(params[_EXCLUSIVE[variant.name]])
            for key in ("account", "destination", "related", "own", "payer", "payee"):
                if isinstance(params.get(key), str):
                    self.touched.add(params[key])
            return
        self.skipped.append(f"{variant.name}: no suitable institution in the plan's period")

    def _clashes(self, name: str, iid: str) -> bool:
        # A contractual fee must stay lawful: no excess fee in the same custody account's window.
        there = self.variants_at.get(iid, set())
        if name == "contractual_fee":
            return "fee_excess" in there
        if name == "fee_excess":
            return "contractual_fee" in there
        return clashes(name, there)


_PREFERRED = {
    **_INSTITUTION_PREFERRED,
    **_CLEARING_PREFERRED,
    **_SELF_FINANCING_PREFERRED,
    **_LARGE_VALUE_PREFERRED,
}
# Variants that need an account of their own: no other injection's flows may change their figures.
# Variant -> the parameter naming its account.
_EXCLUSIVE = {
    **POOL_EXCLUSIVE,
    **_LARGE_VALUE_EXCLUSIVE,
    **_CLEARING_EXCLUSIVE,
}
