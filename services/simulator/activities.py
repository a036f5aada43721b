"""Normal activity: each function is one kind of lawful money movement in the province.

Two shapes, so that labelled violations can later be added the same way:

- an ``Activity`` is drawn at random moments (the day rhythm decides how often) and returns the
  movements it makes, or nothing when the state does not allow it right now;
- an ``EventSource`` is asked, for each slice of simulated time, which scheduled actions fall into
  it (daily fee sweeps, pay day, balance snapshots); an ``Action`` runs at its time against the
  state as it is then.

Every outflow from a custody or reserve account carries an instruction id, and every amount is
checked against what the books allow, so normal activity breaks none of the rules the detectors
look for. Large-value reports can still arise, as they do for lawful money.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from functools import partial

from schemas.fields import BEIJING
from schemas.reference import InstitutionType
from services.simulator.ledger import Event, Movement, Snapshot
from services.simulator.world import ProductBook, World, draw_cents

Activity = Callable[[World, int], list[Event]]
Action = Callable[[World, int], Iterable[Event]]
EventSource = Callable[[World, int, int], Iterable[tuple[int, Action]]]

_PURPOSES: dict[InstitutionType, dict[str, str]] = {
    InstitutionType.p2p_lending: {
        "deposit": "出借资金充值", "loan": "借款放款", "repay": "借款人还款",
        "payout": "出借本息回款", "fee": "平台服务费",
    },
    InstitutionType.equity_crowdfunding: {
        "deposit": "股权众筹认购款", "loan": "融资款划付", "repay": "项目分红款",
        "payout": "投资收益分配", "fee": "融资顾问费",
    },
    InstitutionType.asset_management: {
        "deposit": "基金认购款", "loan": "投资款划付", "repay": "项目投资回款",
        "payout": "基金收益分配", "fee": "基金管理费",
    },
}  # fmt: skip

_EXPENSES = ("房租", "技术服务费", "广告推广费", "办公采购款", "咨询服务费", "物业费")
_CARD_CHANNELS = ("UNIONPAY", "NETSUNION")

# Largest single loan: the P2P rules' limits per borrower and platform (200,000 for a person,
# 1,000,000 for a firm); crowdfunded and fund projects are larger.
_P2P_PERSON_CAP = 20_000_000
_P2P_FIRM_CAP = 100_000_000
_PROJECT_CAP = 500_000_000


def _purpose(w: World, iid: str, what: str) -> str:
    return _PURPOSES[w.province.institution_by_id[iid].type][what]


def _pick_book(w: World, iid: str, usable: Callable[[ProductBook], bool]) -> ProductBook | None:
    books = [book for book in w.books[iid] if usable(book)]
    return w.rng.choice(books) if books else None


# -- custody platforms: P2P lending, equity crowdfunding, asset management ------------------


def investor_deposit(w: World, at: int) -> list[Event]:
    """An investor pays into the platform's custody account to buy a product on sale."""
    iid = w.pick("custody")
    book = _pick_book(w, iid, lambda b: b.on_sale(at))
    if book is None:
        return []
    investor = w.party(w.rng.choice(w.province.investor_pools[iid]))
    if investor.person:
        cents = draw_cents(w.rng, 20_000, 1.0, 1_000, 450_000, step=100)
    else:
        cents = draw_cents(w.rng, 300_000, 0.8, 50_000, 1_900_000, step=1_000)
    book.raised += cents
    book.positions[investor.account_id] = book.positions.get(investor.account_id, 0) + cents
    custody = w.party(w.custody[iid])
    return [Movement(at, investor, custody, cents, _purpose(w, iid, "deposit"), product_id=book.product_id)]


def loan_disbursement(w: World, at: int) -> list[Event]:
    """The custody bank pays raised money to a borrower on the platform's loan instruction."""
    iid = w.pick("custody")
    book = _pick_book(w, iid, lambda b: b.raised >= 1_000_000)
    if book is None:
        return []
    borrower = w.party(w.rng.choice(w.borrowers_of.get(book.product_id) or w.borrowers[iid]))
    if w.province.institution_by_id[iid].type is InstitutionType.p2p_lending:
        cap = _P2P_PERSON_CAP if borrower.person else _P2P_FIRM_CAP
    else:
        cap = _PROJECT_CAP
    cents = min(int(book.raised * w.rng.uniform(0.3, 0.9)), cap) // 10_000 * 10_000
    if cents < 1_000_000:
        return []
    book.raised -= cents
    book.outstanding[borrower.account_id] = book.outstanding.get(borrower.account_id, 0) + cents
    return [
        Movement(
            at, w.party(w.custody[iid]), borrower, cents, _purpose(w, iid, "loan"),
            instruction_id=w.instruction("LN"), product_id=book.product_id,
        )
    ]  # fmt: skip


def borrower_repayment(w: World, at: int) -> list[Event]:
    """A borrower repays part of the principal with the interest on it."""
    iid = w.pick("custody")
    book = _pick_book(w, iid, lambda b: bool(b.outstanding))
    if book is None:
        return []
    account = w.rng.choice(list(book.outstanding))
    owed = book.outstanding[account]
    principal = min(owed, max(100_000, int(owed * w.rng.uniform(0.1, 0.4))))
    interest = round(principal * book.project_rate * book.term_days / 365)
    if owed == principal:
        del book.outstanding[account]
    else:
        book.outstanding[account] = owed - principal
    # The platform keeps the spread between the borrower's rate and the investors' yield.
    fee = round(interest * max(0.0, book.project_rate - book.declared_yield) / book.project_rate)
    cents = principal + interest
    book.repaid += cents - fee
    book.fee_due += fee
    return [
        Movement(
            at, w.party(account), w.party(w.custody[iid]), cents, _purpose(w, iid, "repay"),
            product_id=book.product_id,
        )
    ]  # fmt: skip


def investor_payout(w: World, at: int) -> list[Event]:
    """Principal and yield back to an investor, paid only out of what borrowers repaid."""
    iid = w.pick("custody")
    book = _pick_book(w, iid, lambda b: b.repaid >= 10_000 and bool(b.positions))
    if book is None:
        return []
    account = w.rng.choice(list(book.positions))
    position = book.positions[account]
    gross = 1 + book.declared_yield * book.term_days / 365
    cents = min(int(position * gross), int(book.repaid * w.rng.uniform(0.2, 0.7)))
    if cents < 10_000:
        return []
    principal = min(position, int(cents / gross))
    if position - principal <= 0:
        del book.positions[account]
    else:
        book.positions[account] = position - principal
    book.repaid -= cents
    return [
        Movement(
            at, w.party(w.custody[iid]), w.party(account), cents, _purpose(w, iid, "payout"),
            instruction_id=w.instruction("PO"), product_id=book.product_id,
        )
    ]  # fmt: skip


# -- payment institutions -------------------------------------------------------------------


def _reserve(w: World, iid: str) -> str:
    reserves = w.reserves[iid]
    # The first reserve bank is the main one; the others take a smaller share.
    return w.rng.choices(reserves, weights=[3.0] + [1.0] * (len(reserves) - 1))[0]


def payment_topup(w: World, at: int) -> list[Event]:
    """A customer tops up the wallet: money into the reserve, owed back to the customer."""
    iid = w.pick("payment")
    customer = w.party(w.rng.choice(w.province.customers[iid]))
    cents = draw_cents(w.rng, 200, 1.2, 1, 50_000)
    if w.rng.random() < 0.5:
        cents = max(100, cents // 100 * 100)
    reserve = _reserve(w, iid)
    # Wallet money is spent at merchants inside the institution's books; the reserve sees it
    # again only when it settles with the merchant or the customer withdraws.
    w.unsettled[reserve] += cents
    return [Movement(at, customer, w.party(reserve), cents, "账户充值", channel=w.rng.choice(_CARD_CHANNELS))]


def customer_withdrawal(w: World, at: int) -> list[Event]:
    """A customer withdraws wallet money to a bank card, on the customer's instruction."""
    iid = w.pick("payment")
    reserve = _reserve(w, iid)
    cents = min(draw_cents(w.rng, 500, 1.0, 10, 50_000), w.unsettled[reserve] // 4)
    if cents < 1_000:
        return []
    w.unsettled[reserve] -= cents
    customer = w.party(w.rng.choice(w.province.customers[iid]))
    return [
        Movement(
            at, w.party(reserve), customer, cents, "余额提现",
            instruction_id=w.instruction("WD"), channel=w.rng.choice(_CARD_CHANNELS),
        )
    ]  # fmt: skip


def merchant_settlement(w: World, at: int) -> list[Event]:
    """Settlement of a merchant's takings, net of the contractual discount rate.

    The customers are owed the gross less, the reserve pays out the net: the fee stays in the
    reserve until the daily sweep moves it to the institution's own account.
    """
    iid = w.pick("payment")
    reserve = _reserve(w, iid)
    gross = min(int(w.unsettled[reserve] * w.rng.uniform(0.2, 0.6)), 300_000_000)
    if gross < 100_000:
        return []
    w.unsettled[reserve] -= gross
    net = gross - round(gross * w.merchant_fee_rate[iid])
    merchant = w.party(w.rng.choice(w.province.merchants[iid]))
    return [
        Movement(
            at, w.party(reserve), merchant, net, "商户结算款",
            instruction_id=w.instruction("ST"), payer_liability_cents=gross,
        )
    ]  # fmt: skip


# -- every institution's own business ------------------------------------------------------


def operating_income(w: World, at: int) -> list[Event]:
    """Premiums, home sales and service fees paid straight into an own operating account."""
    iid = w.pick("trading")
    kind = w.province.institution_by_id[iid].type
    rng = w.rng
    channel = None
    if kind is InstitutionType.internet_insurance:
        payer = w.party(rng.choice(w.province.customers[iid]))
        cents, purpose, channel = draw_cents(rng, 1_500, 0.9, 100, 50_000), "保费", rng.choice(_CARD_CHANNELS)
    elif kind is InstitutionType.real_estate:
        if rng.random() > 0.05:
            return []  # homes sell a few dozen a day, not with every card payment
        payer = w.party(rng.choice(w.province.customers[iid]))
        cents, purpose = draw_cents(rng, 150_000, 0.6, 20_000, 450_000, step=100), "购房款"
    else:
        payer = w.party(rng.choice(w.province.suppliers[iid]))
        cents, purpose = draw_cents(rng, 8_000, 1.0, 500, 800_000), "服务费收入"
    own = w.party(rng.choice(w.own[iid]))
    return [Movement(at, payer, own, cents, purpose, channel=channel)]


def operating_expense(w: World, at: int) -> list[Event]:
    """Rent, services and supplies paid from an own operating account, within its means."""
    iid = w.pick("all")
    account = w.rng.choice(w.own[iid])
    balance = w.ledger.balance[account]
    if balance < 5_000_000:
        return []
    # Spending follows means: a developer pays contractors millions, a small agency pays rent.
    cents = max(50_000, int(balance * w.rng.lognormvariate(-7.5, 0.8)))
    cents = min(cents, balance // 10)
    supplier = w.party(w.rng.choice(w.province.suppliers[iid]))
    return [Movement(at, w.party(account), supplier, cents, w.rng.choice(_EXPENSES))]


NORMAL_ACTIVITIES: tuple[tuple[Activity, float], ...] = (
    (investor_deposit, 26.0),
    (loan_disbursement, 7.0),
    (borrower_repayment, 12.0),
    (investor_payout, 10.0),
    (payment_topup, 40.0),
    (customer_withdrawal, 8.0),
    (merchant_settlement, 8.0),
    (operating_income, 6.0),
    (operating_expense, 5.0),
)


# -- scheduled actions ----------------------------------------------------------------------


def _local_days(start: int, end: int) -> Iterator[date]:
    first = datetime.fromtimestamp(start, BEIJING).date()
    last = datetime.fromtimestamp(end - 1, BEIJING).date()
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _at(day: date, hour: int, minute: int = 0) -> int:
    return int(datetime.combine(day, time(hour, minute), BEIJING).timestamp())


def _pay_day(day: date) -> bool:
    """The 15th, or the Friday before when the 15th falls on a weekend."""
    if day.weekday() >= 5:
        return False
    if day.day == 15:
        return True
    return day.weekday() == 4 and day.day in (13, 14)


def snapshot_source(every_s: int = 4 * 3600) -> EventSource:
    """Balance snapshots of custody and reserve accounts every ``every_s`` seconds from Beijing
    midnight, own operating accounts once a day at midnight, and all of them when the feed opens."""
    if every_s <= 0 or 86_400 % every_s:
        raise ValueError("every_s must divide a day (e.g. 3600, 14400, 86400)")

    def source(w: World, start: int, end: int) -> Iterator[tuple[int, Action]]:
        offset = 8 * 3600
        first = -(-(start + offset) // every_s) * every_s - offset
        if start == w.started_at and first != start:
            yield start, partial(_snapshots, include_own=True)
        for at in range(first, end, every_s):
            yield at, partial(_snapshots, include_own=(at + offset) % 86_400 == 0 or at == w.started_at)

    return source


def _snapshots(w: World, at: int, include_own: bool) -> list[Event]:
    accounts = list(w.custody.values())
    for reserves in w.reserves.values():
        accounts.extend(reserves)
    if include_own:
        for own in w.own.values():
            accounts.extend(own)
    return [Snapshot(at, account) for account in accounts]


def custody_fee_sweep(w: World, start: int, end: int) -> Iterator[tuple[int, Action]]:
    """Weekdays at 17:30 the platforms collect their contractual fees from custody."""
    for day in _local_days(start, end):
        at = _at(day, 17, 30)
        if day.weekday() < 5 and start <= at < end:
            yield at, _collect_custody_fees


def _collect_custody_fees(w: World, at: int) -> list[Event]:
    events: list[Event] = []
    for iid, books in w.books.items():
        fee = sum(book.fee_due for book in books)
        if fee < 100:
            continue
        for book in books:
            book.fee_due = 0
        events.append(
            Movement(
                at, w.party(w.custody[iid]), w.party(w.own[iid][0]), fee, _purpose(w, iid, "fee"),
                instruction_id=w.instruction("FE"),
            )
        )  # fmt: skip
    return events


def reserve_fee_sweep(w: World, start: int, end: int) -> Iterator[tuple[int, Action]]:
    """Every day at 18:00 payment institutions move their earned discount fees out of reserve."""
    for day in _local_days(start, end):
        at = _at(day, 18)
        if start <= at < end:
            yield at, _collect_reserve_fees


def _collect_reserve_fees(w: World, at: int) -> list[Event]:
    events: list[Event] = []
    for iid, reserves in w.reserves.items():
        for reserve in reserves:
            earned = w.ledger.balance[reserve] - w.ledger.liabilities[reserve]
            if earned >= 100:
                events.append(
                    Movement(
                        at, w.party(reserve), w.party(w.own[iid][0]), earned, "手续费收入划转",
                        instruction_id=w.instruction("FS"), payer_liability_cents=0,
                    )
                )  # fmt: skip
    return events


def payroll(w: World, start: int, end: int) -> Iterator[tuple[int, Action]]:
    """Monthly salaries at 10:00 on pay day, from each institution's main own account."""
    for day in _local_days(start, end):
        at = _at(day, 10)
        if _pay_day(day) and start <= at < end:
            yield at, _pay_salaries


def _pay_salaries(w: World, at: int) -> list[Event]:
    events: list[Event] = []
    for iid, staff in w.salaries.items():
        payer = w.party(w.own[iid][0])
        left = w.ledger.balance[payer.account_id]
        for account, salary in staff:
            if salary > left:
                break
            left -= salary
            payee = w.party(account)
            channel = "INTERNAL" if payee.bank_code == payer.bank_code else "BEPS"
            events.append(Movement(at, payer, payee, salary, "工资", channel=channel))
    return events


NORMAL_SOURCES: tuple[EventSource, ...] = (snapshot_source(), custody_fee_sweep, reserve_fee_sweep, payroll)
