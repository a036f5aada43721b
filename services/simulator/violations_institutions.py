"""Injected violations and hard negatives of the product- and institution-level typologies.

Five typologies (DOMAIN.md; the detectors' rules in ``institution_truth``): the variants of excess
return live in ``violations_excess_return``, of maturity mismatch in
``violations_maturity_mismatch``, of investor cap breach and rapid growth in ``violations_growth``
(their planning and step mixins join the ones here), those of
disguised clearing in ``violations_clearing`` (a mixin of the planner and the injector themselves);
this module holds what they share. ``violations_catalogue`` merges ``INSTITUTION_VARIANTS`` into
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

Timing (rapid growth's and investor campaigns': ``violations_growth``). Payout-coverage positives
size each top-up against the product's repayments so far and put the last one near the plan's end,
so that the payouts stay uncovered to the end (a product whose payouts were uncovered once is
labelled either way, as its alert stays).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

from schemas.fields import BEIJING
from schemas.reference import Account, AccountRole, Institution, InstitutionType, Product
from services.simulator.activities import _PURPOSES
from services.simulator.institution_truth import config, frac, robust_z
from services.simulator.ledger import Event, Party
from services.simulator.province import (
    _BRAND_HEAD,
    _BRAND_TAIL,
    _GIVEN,
    _INDUSTRIES,
    _SURNAMES,
    EXTERNAL_BANKS,
    MONITORED_BANKS,
    REGIONS,
    ExternalParty,
    _beijing,
    _rate,
)
from services.simulator.violations_base import Variant, _ts, _Unsuitable
from services.simulator.violations_clearing import (
    CROSS_BANK_MIRRORS,
    MERCHANT_SETTLEMENT_BATCH,
    SAME_BANK_MIRRORS,
)
from services.simulator.violations_excess_return import (
    EXCESS_RETURN_VARIANTS,
    ExcessReturnPlanning,
    ExcessReturnSteps,
)
from services.simulator.violations_growth import (
    INFLOW_SURGE,
    NEW_INVESTOR_SURGE,
    PRIVATE_OVERSUBSCRIBED,
    PUBLIC_MANY_INVESTORS,
    STEADY_HIGH_VOLUME,
    GrowthPlanning,
    GrowthSteps,
)
from services.simulator.violations_maturity_mismatch import (
    MATCHED_TERM,
    ROLLOVER,
    TERM_SPLIT,
    MaturityMismatchPlanning,
    MaturityMismatchSteps,
)

_PAYMENT = frozenset({InstitutionType.payment})
_CARD_CHANNELS = ("UNIONPAY", "NETSUNION")
INSTITUTION_VARIANTS: tuple[Variant, ...] = (
    *EXCESS_RETURN_VARIANTS,
    TERM_SPLIT,
    ROLLOVER,
    PRIVATE_OVERSUBSCRIBED,
    INFLOW_SURGE,
    NEW_INVESTOR_SURGE,
    CROSS_BANK_MIRRORS,
    MATCHED_TERM,
    PUBLIC_MANY_INVESTORS,
    STEADY_HIGH_VOLUME,
    SAME_BANK_MIRRORS,
    MERCHANT_SETTLEMENT_BATCH,
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
    # only on different days (``violations_clearing.ClearingPlanning.clearing_day``).
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


class InstitutionPlanning(ExcessReturnPlanning, MaturityMismatchPlanning, GrowthPlanning):
    """The ``plan_<variant>`` methods of the product- and institution-level variants (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and helpers):
    those of ``ExcessReturnPlanning``, ``MaturityMismatchPlanning`` and ``GrowthPlanning``, and the
    helpers they share with the
    disguised-clearing variants (reference items, moments in the plan)."""

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

    def _prefer_weekday(self, days: list[date]) -> date:
        working = [d for d in days if d.weekday() < 5]
        return self.rng.choice(working or days)


# -- running the steps ----------------------------------------------------------------------


class InstitutionSteps(ExcessReturnSteps, MaturityMismatchSteps, GrowthSteps):
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
