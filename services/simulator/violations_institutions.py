"""Injected violations and hard negatives of the product- and institution-level typologies.

Five typologies (DOMAIN.md; the detectors' rules in ``institution_truth``), each with the variants
below; those of excess return and maturity mismatch live in ``violations_products`` (its planning
and step mixins join the ones here). ``violations_catalogue`` merges ``INSTITUTION_VARIANTS`` into
``VARIANTS``, the planner of ``violations`` takes ``InstitutionPlanning`` (a ``plan_<variant>`` per
variant) and its injector ``InstitutionSteps`` (a ``_step_<variant>``), so these run exactly like
the account-level ones.

What is new here is reference data: a product with a bad yield or a split term is a *new product*
of the institution (``PRD`` numbers after the province's), and new investors are new accounts,
some registered as reference accounts (monitored: their bank reports their side too), most of
them unknown to the reference data (as real investors' accounts often are). The plan carries both
(``ViolationPlan.products``, ``.accounts``, ``.externals``); ``push`` upserts them with the
province's reference data. The normal activity never touches the new products: the steps book
their flows themselves.

Timing. ``rapid_growth`` compares a day with the median of the institution's previous days and
needs ``min_history_days`` of them: its positives fall on a day at least that far into the plan
(the plan is assumed to start with the feed), and the big investor campaigns of
``investor_cap_breach`` fall before it where the plan allows, so that they do not read as growth.
Payout-coverage positives size each top-up against the product's repayments so far and put the
last one near the plan's end, so that the payouts stay uncovered to the end (a product whose
payouts were uncovered once is labelled either way, as its alert stays).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

from schemas.fields import BEIJING
from schemas.reference import Account, AccountRole, Institution, InstitutionType, Product
from services.simulator.activities import _PURPOSES
from services.simulator.institution_truth import config, frac, money, robust_z, uncapped_types
from services.simulator.ledger import Event, Party
from services.simulator.province import (
    _BRAND_HEAD,
    _BRAND_TAIL,
    _GIVEN,
    _INDUSTRIES,
    _SURNAMES,
    CUSTODY_TYPES,
    EXTERNAL_BANKS,
    MONITORED_BANKS,
    REGIONS,
    ExternalParty,
    _beijing,
    _rate,
)
from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE, Variant, _day_of, _ts, _Unsuitable
from services.simulator.violations_products import (
    MATCHED_TERM,
    PRODUCT_VARIANTS,
    ProductPlanning,
    ProductSteps,
)
from services.simulator.world import draw_cents

_PAYMENT = frozenset({InstitutionType.payment})
_PRIVATE_TYPES = frozenset({InstitutionType.equity_crowdfunding, InstitutionType.asset_management})
_GROWTH_TYPES = CUSTODY_TYPES | _PAYMENT
_CARD_CHANNELS = ("UNIONPAY", "NETSUNION")
INSTITUTION_VARIANTS: tuple[Variant, ...] = (
    *PRODUCT_VARIANTS,
    Variant("private_oversubscribed", "investor_cap_breach", POSITIVE, _PRIVATE_TYPES, 1,
            "a private product (investor_cap 200) sold to 201-660 distinct investors in 1-2 days, "
            "most of them new accounts, many unknown to the reference data"),
    Variant("inflow_surge", "rapid_growth", POSITIVE, _GROWTH_TYPES, 1,
            "3-12 new payers bringing 3.2-14 times the institution's trailing median daily inflow "
            "in one day, at least min_history_days into the plan"),
    Variant("new_investor_surge", "rapid_growth", POSITIVE, _GROWTH_TYPES, 1,
            "1.1-1.8 times the new investors the trend needs to read as growth (at least 25; small "
            "amounts) paying in on one day, at least min_history_days into the plan"),
    Variant("cross_bank_mirrors", "disguised_clearing", POSITIVE, _PAYMENT, 1,
            "20-60 customers paying a payment institution at bank A, each mirrored minutes later by "
            "the same amount paid to a payee from its reserve at bank B"),
    MATCHED_TERM,
    Variant("public_many_investors", "investor_cap_breach", HARD_NEGATIVE,
            frozenset({InstitutionType.p2p_lending}), 1,
            "a public P2P product (no investor cap) sold to 210-360 distinct investors",
            ("investor_cap_breach",)),
    Variant("steady_high_volume", "rapid_growth", HARD_NEGATIVE, _GROWTH_TYPES, 1,
            "large corporate payments every day of the plan (weekdays 3-8 million, weekends a "
            "quarter): above min_inflow daily and up from the weekend, but no growth on the trend",
            ("rapid_growth",)),
    Variant("same_bank_mirrors", "disguised_clearing", HARD_NEGATIVE, _PAYMENT, 1,
            "20-60 customers' payments mirrored to payees within minutes from the same reserve account "
            "(one bank: no interbank clearing)", ("disguised_clearing",)),
    Variant("merchant_settlement_batch", "disguised_clearing", HARD_NEGATIVE, _PAYMENT, 1,
            "20-60 customers paying at bank A, settled to merchants from bank B minutes later in 3-6 "
            "batches (sums, net of the fee: no mirrored amounts)", ("disguised_clearing",)),
)  # fmt: skip

PREFERRED = {
    "inflow_surge": _PAYMENT,
    "new_investor_surge": frozenset({InstitutionType.p2p_lending}),
    "steady_high_volume": _PAYMENT,
    "payout_subsidy": frozenset({InstitutionType.p2p_lending}),
}
_GROWTH = frozenset({"inflow_surge", "new_investor_surge"})
# Campaigns bring hundreds of new investors in a day: they would lift a growth trend's baseline.
_CAMPAIGNS = frozenset({"private_oversubscribed", "public_many_investors"})
# The variants that pay into the main custody or reserve account (the others change reference
# data only, or take customers' money in at a secondary reserve).
_MOVING = frozenset(v.name for v in INSTITUTION_VARIANTS) - {
    "yield_above_project", "yield_above_legal_cap", "peer_outlier_yield", "term_split",
    "cross_bank_mirrors", "same_bank_mirrors", "merchant_settlement_batch",
}  # fmt: skip
# Injections that let a product's payouts exceed its repayments (payout-coverage positives).
_UNCOVERING = frozenset({"over_payout", "own_to_custody", "payout_subsidy"})


def clashes(name: str, there: set[str]) -> bool:
    """Whether variant ``name`` must not join an institution that hosts the variants ``there``."""
    # An excess fee is a share of the custody or reserve inflow: more money in would hide it.
    if name in _MOVING and "fee_excess" in there:
        return True
    # Disguised clearing is keyed per institution and day: its variants share an institution
    # only on different days (``InstitutionPlanning.clearing_day``).
    if name in _GROWTH or name == "steady_high_volume":
        return bool(there & (_GROWTH | _CAMPAIGNS | {"steady_high_volume"}))
    if name in _CAMPAIGNS:
        return bool(there & (_GROWTH | {"steady_high_volume"}))
    if name == "covered_high_yield":
        return bool(there & _UNCOVERING)
    if name == "payout_subsidy":
        return "covered_high_yield" in there
    return False


# -- planning -------------------------------------------------------------------------------


class InstitutionPlanning(ProductPlanning):
    """The ``plan_<variant>`` methods of the product- and institution-level variants (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and
    helpers)."""

    def _init_institution_planning(self) -> None:
        p = self.p
        self.new_products: list[Product] = []
        self.new_accounts: list[Account] = []
        self.new_externals: list[ExternalParty] = []
        self.new_persons: set[str] = set()  # the new accounts held by people
        self.numbers = {a.account_id for a in p.accounts} | {e.account_id for e in p.externals}
        numbers = [int(pr.product_id[3:]) for pr in p.products if pr.product_id[3:].isdigit()]
        self.next_product = max(numbers, default=0) + 1
        self._strict_outlier: bool | None = None
        self.clearing_days: dict[str, set[date]] = {}

    def after_planning(self, variant: Variant, institution_id: str, times: list[int]) -> None:
        """Note the days a disguised-clearing variant (positive or hard negative) took."""
        if variant.typology == "disguised_clearing":
            taken = self.clearing_days.setdefault(institution_id, set())
            taken.update(datetime.fromtimestamp(t, BEIJING).date() for t in times)

    def clearing_day(self, inst: Institution) -> date:
        """A day no other disguised-clearing variant uses at this institution (weekdays first)."""
        taken = self.clearing_days.get(inst.institution_id, set())
        free = [d for d in self.days if d not in taken and self._hours_left(d, 9.0, 20.0) >= 3]
        if not free:
            raise _Unsuitable
        return self._prefer_weekday(free)

    def rule(self, typology: str, inst: Institution) -> dict[str, Any]:
        return config(self.thresholds, typology, inst.type.value)

    # -- reference items -------------------------------------------------------------------

    def _number(self, prefix: str) -> str:
        while True:
            number = prefix + "".join(self.rng.choice("0123456789") for _ in range(19 - len(prefix)))
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def _person_name(self) -> str:
        return self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN)

    def _firm_name(self) -> str:
        city = self.rng.choice(REGIONS)[2]
        brand = self.rng.choice(_BRAND_HEAD) + self.rng.choice(_BRAND_TAIL)
        return f"{city}{brand}{self.rng.choice(_INDUSTRIES)}有限公司"

    def new_investors(
        self, iid: str | None, count: int, registered: float = 0.3, firms: float = 0.05
    ) -> list[str]:
        """``count`` new investor accounts: a share ``registered`` as reference accounts (monitored
        banks report their side), the rest unknown to the reference data."""
        monitored = [bank for bank in MONITORED_BANKS if bank[0] in self.p.bank_codes]
        out = []
        for _ in range(count):
            person = self.rng.random() >= firms
            name = self._person_name() if person else self._firm_name()
            if self.rng.random() < registered:
                code, _, corporate, personal = self.rng.choice(monitored)
                account = Account(
                    account_id=self._number(personal if person else corporate), bank_code=code,
                    role=AccountRole.investor, holder_name=name, institution_id=iid,
                )  # fmt: skip
                self.new_accounts.append(account)
                account_id = account.account_id
            else:
                # Unknown: mostly at banks outside the feed, some at monitored banks, unregistered.
                code, _, corporate, personal = self.rng.choice(
                    EXTERNAL_BANKS if self.rng.random() < 0.8 else tuple(monitored)
                )
                party = ExternalParty(self._number(personal if person else corporate), code, name, person)
                self.new_externals.append(party)
                account_id = party.account_id
            if person:
                self.new_persons.add(account_id)
            out.append(account_id)
        return out

    def new_borrower(self, inst: Institution, product_id: str) -> str:
        """A new borrower of a new product: a registered account at a monitored bank naming the
        product (a product lends to its own borrowers; see province._borrowers_by_product)."""
        monitored = [bank for bank in MONITORED_BANKS if bank[0] in self.p.bank_codes]
        code, _, corporate, _personal = self.rng.choice(monitored)
        account = Account(
            account_id=self._number(corporate), bank_code=code, role=AccountRole.borrower,
            holder_name=self._firm_name(), institution_id=inst.institution_id, product_id=product_id,
        )  # fmt: skip
        self.new_accounts.append(account)
        return account.account_id

    def _products_of_type(self, kind: InstitutionType) -> list[Product]:
        return [
            product
            for product in [*self.p.products, *self.new_products]
            if self.p.institution_by_id[product.institution_id].type is kind
        ]

    def z_of(self, kind: InstitutionType, yield_bp: int) -> Fraction | None:
        """The robust z a new product of ``yield_bp`` would have among its peers (itself included)."""
        value = Fraction(yield_bp, 10_000)
        yields = [frac(p.declared_annual_yield) for p in self._products_of_type(kind)] + [value]
        return robust_z(value, yields)

    def harmless(self, kind: InstitutionType, yield_bp: int, robust: Fraction) -> bool:
        """Whether a new product of ``yield_bp`` leaves every product of the province well inside
        its peers (robust z at most 0.9 of the line): new products must not make outliers of
        normal ones by moving the median or shrinking the MAD."""
        peers = self._products_of_type(kind)
        yields = [frac(p.declared_annual_yield) for p in peers] + [Fraction(yield_bp, 10_000)]
        own = {product.product_id for product in self.p.products}
        for product in peers:
            if product.product_id in own:
                z = robust_z(frac(product.declared_annual_yield), yields)
                if z is not None and z > robust * Fraction(9, 10):
                    return False
        return True

    def new_product(
        self, inst: Institution, yield_bp: int, project_bp: int, term: int, underlying: int, label: str
    ) -> Product:
        """A product registered before the plan and on sale through it."""
        if not self.harmless(inst.type, yield_bp, frac(self.rule("excess_return", inst)["robust_z"])):
            raise _Unsuitable
        number = self.next_product
        self.next_product += 1
        own = self.p.products_by_institution.get(inst.institution_id, ())
        brand = own[0].name[:2] if own else inst.name[2:4]
        first = datetime.fromtimestamp(self.start, BEIJING).date()
        private = inst.type is not InstitutionType.p2p_lending
        product = Product(
            product_id=f"PRD{number:04d}",
            institution_id=inst.institution_id,
            name=f"{brand}{label}{number % 100}号" if private else f"{brand}{label}{term}天",
            declared_annual_yield=_rate(yield_bp),
            term_days=term,
            underlying_project_rate=_rate(project_bp),
            underlying_term_days=underlying,
            investor_cap=200 if private else None,
            sale_start=_beijing(first - timedelta(days=self.rng.randint(10, 150)), time(9, 0)),
            sale_end=_beijing(first + timedelta(days=self.rng.randint(200, 700)), time(17, 0)),
        )
        self.new_products.append(product)
        return product

    def _normal_rates(self, inst: Institution, cfg: dict[str, Any]) -> tuple[int, int]:
        """A yield and project rate as the province draws them: covered, under the cap, no outlier."""
        robust = frac(cfg["robust_z"])
        for _ in range(50):
            project = self.rng.randint(650, 1000) if inst.type is InstitutionType.asset_management else (
                self.rng.randint(800, 1200))  # fmt: skip
            declared = max(350, project - self.rng.randint(150, 400))
            z = self.z_of(inst.type, declared)
            if (z is None or z < robust * Fraction(6, 10)) and self.harmless(inst.type, declared, robust):
                return declared, project
        raise _Unsuitable

    def _cap_bp(self, cfg: dict[str, Any]) -> int:
        return math.floor(frac(cfg["lpr_one_year"]) * frac(cfg["lpr_multiple"]) * 10_000)

    def _on_sale(self, iid: str, capped: bool | None = None) -> list[Product]:
        return [
            product for product in self.p.products_by_institution.get(iid, ())
            if _ts(product.sale_start) <= self.start and _ts(product.sale_end) >= self.end
            and (capped is None or (product.investor_cap is not None) == capped)
        ]  # fmt: skip

    # -- time ------------------------------------------------------------------------------

    def moment_in(self, day: date, from_hour: float, to_hour: float) -> int:
        """A moment of ``day`` between the hours, within the plan's period."""
        midnight = int(datetime.combine(day, time(0), BEIJING).timestamp())
        lo = max(midnight + int(from_hour * 3600), self.start)
        hi = min(midnight + int(to_hour * 3600), self.end - 60)
        if hi <= lo:
            raise _Unsuitable
        return self.rng.randrange(lo, hi)

    def _hours_left(self, day: date, from_hour: float, to_hour: float) -> float:
        midnight = int(datetime.combine(day, time(0), BEIJING).timestamp())
        lo = max(midnight + int(from_hour * 3600), self.start)
        hi = min(midnight + int(to_hour * 3600), self.end - 60)
        return (hi - lo) / 3600

    def early_days(self, inst: Institution) -> list[date]:
        """Days before a trend has ``min_history_days`` of history (no growth can be read there)."""
        history = int(self.rule("rapid_growth", inst)["min_history_days"])
        return self.days[: max(1, history)]

    def growth_days(self, inst: Institution, from_hour: float = 9.0, to_hour: float = 20.0) -> list[date]:
        """Days with ``min_history_days`` before them in the plan, with the hours still in it."""
        history = int(self.rule("rapid_growth", inst)["min_history_days"])
        return [d for d in self.days[history:] if self._hours_left(d, from_hour, to_hour) >= 3]

    def _prefer_weekday(self, days: list[date]) -> date:
        working = [d for d in days if d.weekday() < 5]
        return self.rng.choice(working or days)

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

    # -- disguised clearing ----------------------------------------------------------------

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


# -- running the steps ----------------------------------------------------------------------


class InstitutionSteps(ProductSteps):
    """The ``_step_<variant>`` methods (a mixin of ``violations_injector.Injector``: it uses the
    injector's world, movements, notes and the ``InstitutionTruth`` in ``self._truth``)."""

    def _kind(self, iid: str) -> InstitutionType:
        return self.province.institution_by_id[iid].type

    def _book(self, iid: str, product_id: str | None):
        return next((b for b in self.world.books.get(iid, ()) if b.product_id == product_id), None)

    def _pay_in(
        self,
        inj,
        rng,
        at: int,
        payer: str,
        account: str,
        cents: int,
        product_id: str | None = None,
        purpose: str | None = None,
        card: bool = False,
    ) -> Event:
        """Money from outside into custody (a subscription, kept on the product's book) or into a
        reserve (a top-up, unsettled until paid on)."""  # fmt: skip
        iid = inj.institution_id
        if self._role.get(account) is AccountRole.customer_custody:
            book = self._book(iid, product_id)
            if book is not None:
                book.raised += cents
                book.positions[payer] = book.positions.get(payer, 0) + cents
            purpose = purpose or _PURPOSES[self._kind(iid)]["deposit"]
            return self._move(inj, rng, at, payer, account, cents, purpose, product_id=product_id)
        self.world.unsettled[account] += cents
        channel = rng.choice(_CARD_CHANNELS) if card else None
        return self._move(inj, rng, at, payer, account, cents, purpose or "账户充值", channel=channel)

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

    # -- disguised clearing ----------------------------------------------------------------

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


def register_parties(world, accounts: list[Account], externals: list[ExternalParty]) -> None:
    """Make the plan's new accounts known to the world (monitored ones get a balance)."""
    for account in accounts:
        person = not account.holder_name.endswith("公司")  # new investors are people or 有限公司
        world.parties[account.account_id] = Party(
            account.account_id,
            account.bank_code,
            account.holder_name,
            account.role,
            account.institution_id,
            person,
        )
        world.ledger.balance.setdefault(account.account_id, 0)
    for party in externals:
        world.parties[party.account_id] = Party(
            party.account_id, party.bank_code, party.name, None, None, party.person
        )
