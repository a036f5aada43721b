"""Injected violations and hard negatives of the product- and institution-level typologies.

Five typologies (DOMAIN.md; the detectors' rules in ``institution_truth``), each with the variants
below. ``violations`` merges ``INSTITUTION_VARIANTS`` into its ``VARIANTS``, its planner takes
``InstitutionPlanning`` (a ``plan_<variant>`` per variant) and its injector ``InstitutionSteps``
(a ``_step_<variant>``), so these run exactly like the account-level ones.

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
from services.simulator.institution_truth import config, frac, is_split, money, robust_z, uncapped_types
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
from services.simulator.world import draw_cents

_PAYMENT = frozenset({InstitutionType.payment})
_PRIVATE_TYPES = frozenset({InstitutionType.equity_crowdfunding, InstitutionType.asset_management})
_GROWTH_TYPES = CUSTODY_TYPES | _PAYMENT
_CARD_CHANNELS = ("UNIONPAY", "NETSUNION")
# Product terms by type, as the province draws them.
_TERMS = {
    InstitutionType.p2p_lending: (30, 90, 180, 360),
    InstitutionType.equity_crowdfunding: (360, 540, 720, 1080),
    InstitutionType.asset_management: (180, 270, 360, 720),
}
# Split terms: (term, underlying) pairs, near the line (ratio 0.4-0.5) and far below it.
_SPLIT_NEAR = ((170, 360), (180, 360), (250, 540), (270, 540), (300, 720), (350, 720), (500, 1080))
_SPLIT_FAR = ((30, 360), (60, 360), (90, 360), (90, 540), (90, 720), (180, 720), (30, 1080), (180, 1080))

INSTITUTION_VARIANTS: tuple[Variant, ...] = (
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
    Variant("matched_term_high_yield", "maturity_mismatch", HARD_NEGATIVE, CUSTODY_TYPES, 1,
            "a new product with its term equal to its project's, a high yield its project still covers, "
            "and payouts its borrower's repayment covers", ("maturity_mismatch", "excess_return")),
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


class InstitutionPlanning:
    """The ``plan_<variant>`` methods of the product- and institution-level variants (a mixin of
    ``violations._Planner``: it uses the planner's province, generator, days and helpers)."""

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


# -- running the steps ----------------------------------------------------------------------


class InstitutionSteps:
    """The ``_step_<variant>`` methods (a mixin of ``violations.Injector``: it uses the injector's
    world, movements, notes and the ``InstitutionTruth`` in ``self._truth``)."""

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
