"""The state behind the feed: who owes what to whom, per product and per account.

Activities read and change this state, so the money stays consistent: a platform lends only what
investors paid in, pays out only what borrowers repaid, and a custody account always holds what
its customers are owed. Injected violations will break exactly these rules, on purpose.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from schemas.fields import parse_time
from schemas.reference import AccountRole, InstitutionType, Product, Relation
from services.simulator.ledger import Ledger, Party
from services.simulator.province import CUSTODY_TYPES, Province

GROUPS: dict[str, frozenset[InstitutionType]] = {
    "custody": CUSTODY_TYPES,
    "payment": frozenset({InstitutionType.payment}),
    # Institutions that earn from outside customers straight into their own accounts.
    "trading": frozenset(
        {InstitutionType.internet_insurance, InstitutionType.real_estate, InstitutionType.other}
    ),
    "all": frozenset(InstitutionType),
}


@dataclass(slots=True)
class ProductBook:
    product_id: str
    institution_id: str
    sale_from: int
    sale_until: int
    project_rate: float
    declared_yield: float
    term_days: int
    raised: int = 0  # investors' money not yet lent
    repaid: int = 0  # borrowers' repayments not yet paid out to investors
    fee_due: int = 0  # the platform's contractual share of borrower interest, swept daily
    outstanding: dict[str, int] = field(default_factory=dict)  # borrower -> principal
    positions: dict[str, int] = field(default_factory=dict)  # investor -> principal

    def on_sale(self, at: int) -> bool:
        return self.sale_from <= at <= self.sale_until

    @property
    def held(self) -> int:
        """What of this product sits in the custody account."""
        return self.raised + self.repaid + self.fee_due


def draw_cents(
    rng: random.Random, median: float, sigma: float, low: float, high: float, step: float | None = None
) -> int:
    """A log-normal amount in yuan between ``low`` and ``high``, as cents.

    ``step`` rounds to whole units (people invest 5,000.00, not 4,987.31); without it the amount
    keeps its cents, as repayments and card payments do.
    """
    yuan = min(high, max(low, rng.lognormvariate(math.log(median), sigma)))
    if step:
        return int(max(step, round(yuan / step) * step) * 100)
    return max(1, round(yuan * 100))


def split_cents(rng: random.Random, total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` random shares that add up exactly."""
    weights = [rng.random() + 0.2 for _ in range(parts)]
    scale = sum(weights)
    shares = [int(total * w / scale) for w in weights]
    shares[0] += total - sum(shares)
    return shares


class World:
    """The province in motion: parties, balances, product books and the activity knobs."""

    def __init__(
        self,
        province: Province,
        rng: random.Random,
        run_id: str,
        started_at: int,
        volume_scale: float = 1.0,
    ) -> None:
        self.province = province
        self.rng = rng
        self.run_id = run_id
        self.started_at = started_at
        self.now = started_at
        self.parties = _parties(province)
        self.ledger = Ledger(self.parties, run_id, rng)
        self._instruction_seq = 0

        p = province
        self.custody = {
            i.institution_id: p.accounts_of(i.institution_id, AccountRole.customer_custody)[0]
            for i in p.institutions_of_type(*CUSTODY_TYPES)
        }
        self.reserves = {
            i.institution_id: p.accounts_of(i.institution_id, AccountRole.payment_reserve)
            for i in p.institutions_of_type(InstitutionType.payment)
        }
        self.own = {
            i.institution_id: p.accounts_of(i.institution_id, AccountRole.own_operating)
            for i in p.institutions
        }
        self.borrowers = {iid: p.accounts_of(iid, AccountRole.borrower) for iid in self.custody}
        # The borrowers of each product (the product on the borrower's account): a product lends
        # to its own borrowers, who repay into it.
        self.borrowers_of: dict[str, tuple[str, ...]] = {}
        for account in p.accounts:
            if account.role is AccountRole.borrower and account.product_id:
                self.borrowers_of.setdefault(account.product_id, ())
                self.borrowers_of[account.product_id] += (account.account_id,)
        self.books: dict[str, list[ProductBook]] = {
            iid: [_book(product) for product in p.products_by_institution.get(iid, ())]
            for iid in self.custody
        }
        # Each institution's size, so a few large platforms carry most of the flow.
        self.size = {i.institution_id: rng.lognormvariate(0.0, 0.8) for i in p.institutions}
        self._groups = {
            name: (
                [i.institution_id for i in p.institutions if i.type in types],
                _cumulative([self.size[i.institution_id] for i in p.institutions if i.type in types]),
            )
            for name, types in GROUPS.items()
        }
        # Merchant discount rates are contractual: fixed per payment institution.
        self.merchant_fee_rate = {iid: rng.uniform(0.0038, 0.006) for iid in self.reserves}
        # Top-ups per reserve account not yet settled to merchants or withdrawn.
        self.unsettled = {account: 0 for reserves in self.reserves.values() for account in reserves}
        self.salaries = self._salaries()
        self._open_positions(volume_scale)

    def party(self, account_id: str) -> Party:
        return self.parties[account_id]

    def pick(self, group: str) -> str | None:
        """An institution of ``group``, drawn by size."""
        ids, cumulative = self._groups[group]
        if not ids:
            return None
        return self.rng.choices(ids, cum_weights=cumulative)[0]

    def instruction(self, kind: str) -> str:
        """A new custody or customer instruction id; ``kind`` says what it authorised."""
        self._instruction_seq += 1
        return f"{kind}-{self.run_id}-{self._instruction_seq:09d}"

    def _salaries(self) -> dict[str, list[tuple[str, int]]]:
        p = self.province
        salaries: dict[str, list[tuple[str, int]]] = {}
        for inst in p.institutions:
            iid = inst.institution_id
            staff = [
                (aid, draw_cents(self.rng, 7000, 0.4, 3500, 30000, step=100)) for aid in p.employees[iid]
            ]
            for party in p.related_parties:
                if party.institution_id == iid and party.relation is Relation.executive:
                    for aid in party.accounts:
                        if aid in p.natural_persons:
                            staff.append((aid, draw_cents(self.rng, 40000, 0.3, 20000, 90000, step=500)))
            salaries[iid] = staff
        return salaries

    def _open_positions(self, scale: float) -> None:
        """Where the province stands when the feed starts; the first snapshots show it.

        ``scale`` follows the feed's intensity, so opening balances fit the flows that follow.
        """
        rng, p = self.rng, self.province
        for iid, books in self.books.items():
            pool = p.investor_pools[iid]
            for book in books:
                borrowers = self.borrowers_of.get(book.product_id) or self.borrowers[iid]
                total = draw_cents(
                    rng, 3_000_000 * scale * self.size[iid], 0.5, 300_000, 600_000_000, step=1000
                )
                book.raised = int(total * rng.uniform(0.1, 0.3))
                lent = total - book.raised
                debtors = rng.sample(borrowers, min(len(borrowers), rng.randint(3, 8)))
                for borrower, principal in zip(debtors, split_cents(rng, lent, len(debtors)), strict=True):
                    book.outstanding[borrower] = principal
                holders = rng.sample(pool, min(len(pool), rng.randint(20, 60)))
                for investor, principal in zip(holders, split_cents(rng, total, len(holders)), strict=True):
                    book.positions[investor] = principal
            self.ledger.open(self.custody[iid], sum(book.held for book in books))
        for reserves in self.reserves.values():
            for index, account in enumerate(reserves):
                median = (12_000_000 if index == 0 else 3_000_000) * scale
                self.ledger.open(account, draw_cents(rng, median, 0.5, 500_000, 800_000_000, step=1000))
        for iid, accounts in self.own.items():
            for account in accounts:
                median = 2_000_000 * scale * self.size[iid]
                self.ledger.open(account, draw_cents(rng, median, 0.6, 300_000, 300_000_000, step=100))


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _book(product: Product) -> ProductBook:
    return ProductBook(
        product_id=product.product_id,
        institution_id=product.institution_id,
        sale_from=int(parse_time(product.sale_start).timestamp()),
        sale_until=int(parse_time(product.sale_end).timestamp()),
        project_rate=float(product.underlying_project_rate),
        declared_yield=float(product.declared_annual_yield),
        term_days=product.term_days,
    )


def _parties(province: Province) -> dict[str, Party]:
    parties = {
        acc.account_id: Party(
            account_id=acc.account_id,
            bank_code=acc.bank_code,
            name=acc.holder_name,
            role=acc.role,
            institution_id=acc.institution_id,
            person=acc.account_id in province.natural_persons,
        )
        for acc in province.accounts
    }
    for ext in province.externals:
        parties[ext.account_id] = Party(ext.account_id, ext.bank_code, ext.name, None, None, ext.person)
    return parties
