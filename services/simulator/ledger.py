"""Movements of money, and the bank records they leave behind.

An activity decides *that* money moves; the ledger decides what each custody bank sees: a debit
leg at the payer's bank and a credit leg at the payee's bank, for whichever side is monitored.
Balances are integer cents so the records reconcile to the cent with the snapshots.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from schemas.fields import BEIJING, cents_to_text
from schemas.reference import AccountRole

# Accounts that hold customers' money and so report what they owe customers on a snapshot.
HOLDS_CUSTOMER_MONEY = frozenset({AccountRole.customer_custody, AccountRole.payment_reserve})
# Banks report a running balance only for the institutions' own accounts; a person's balance
# depends on flows the simulator does not model.
REPORTS_BALANCE_AFTER = HOLDS_CUSTOMER_MONEY | {AccountRole.own_operating}

# Transfers at or above this go through the large-value system (HVPS) rather than bulk BEPS/IBPS.
HVPS_FROM_CENTS = 5_000_000


@dataclass(frozen=True, slots=True)
class Party:
    """One end of a movement. ``role`` is None for accounts the banks do not monitor."""

    account_id: str
    bank_code: str
    name: str
    role: AccountRole | None
    institution_id: str | None
    person: bool

    @property
    def monitored(self) -> bool:
        return self.role is not None


@dataclass(frozen=True, slots=True)
class Movement:
    """Money moving from ``payer`` to ``payee``.

    The liability fields say how much the customers are owed less (payer) or more (payee) on a
    custody or reserve account; by default exactly the amount, which keeps balance and
    liabilities in step. A fee retained in a reserve, or money taken without the customers'
    consent, is where the two part, and that is what a shortfall detector sees.
    """

    at: int  # Unix seconds
    payer: Party
    payee: Party
    cents: int
    purpose: str = ""
    instruction_id: str | None = None
    product_id: str | None = None
    channel: str | None = None  # None: chosen from the banks and the amount
    payer_liability_cents: int | None = None
    payee_liability_cents: int | None = None
    labels: tuple[str, ...] = ()  # ground truth carried to the records (injected violations)


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: int
    account_id: str


Event = Movement | Snapshot


@dataclass(frozen=True, slots=True)
class Label:
    """The records one labelled movement produced, for evaluation against detector output."""

    labels: tuple[str, ...]
    records: tuple[tuple[str, str], ...]  # (bank_code, record_id)
    institution_id: str | None
    at: int


def format_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, BEIJING).isoformat()


class Ledger:
    """Balances of every monitored account and the records waiting to be sent, per bank."""

    def __init__(self, parties: dict[str, Party], run_id: str, rng: random.Random) -> None:
        self.parties = parties
        self.run_id = run_id
        self.rng = rng
        self.balance: dict[str, int] = {aid: 0 for aid, p in parties.items() if p.monitored}
        self.liabilities: dict[str, int] = {
            aid: 0 for aid, p in parties.items() if p.role in HOLDS_CUSTOMER_MONEY
        }
        self.labels: list[Label] = []
        self.records_made = 0
        self._seq: dict[str, int] = {}
        self._pending: dict[str, list[dict]] = {}

    def open(self, account_id: str, cents: int, liabilities: int | None = None) -> None:
        """Set an opening position before the feed starts; produces no record."""
        self.balance[account_id] = cents
        if account_id in self.liabilities:
            self.liabilities[account_id] = cents if liabilities is None else liabilities

    def book(self, event: Event) -> int:
        """Record ``event`` and return how many bank records it produced."""
        if isinstance(event, Snapshot):
            self._snapshot(event)
            return 1
        return self._move(event)

    def drain(self) -> dict[str, list[dict]]:
        pending, self._pending = self._pending, {}
        return pending

    def _record_id(self, bank_code: str) -> str:
        seq = self._seq.get(bank_code, 0) + 1
        self._seq[bank_code] = seq
        return f"{self.run_id}-{bank_code}-{seq:09d}"

    def _emit(self, bank_code: str, record: dict) -> None:
        self._pending.setdefault(bank_code, []).append(record)
        self.records_made += 1

    def _channel(self, mv: Movement) -> str:
        if mv.channel is not None:
            return mv.channel
        if mv.payer.bank_code == mv.payee.bank_code:
            return "INTERNAL"
        if mv.cents >= HVPS_FROM_CENTS:
            return "HVPS"
        return "IBPS" if self.rng.random() < 0.6 else "BEPS"

    def _move(self, mv: Movement) -> int:
        if mv.cents <= 0:
            raise ValueError("a movement must carry a positive amount")
        channel = self._channel(mv)
        booked_at = format_time(mv.at)
        made: list[tuple[str, str]] = []
        for own, other, direction, liability in (
            (mv.payer, mv.payee, "debit", mv.payer_liability_cents),
            (mv.payee, mv.payer, "credit", mv.payee_liability_cents),
        ):
            if not own.monitored:
                continue
            sign = -1 if direction == "debit" else 1
            self.balance[own.account_id] += sign * mv.cents
            if own.account_id in self.liabilities:
                owed = mv.cents if liability is None else liability
                self.liabilities[own.account_id] += sign * owed
            record_id = self._record_id(own.bank_code)
            record = {
                "kind": "transaction",
                "record_id": record_id,
                "account_id": own.account_id,
                "direction": direction,
                "amount": cents_to_text(mv.cents),
                "currency": "CNY",
                "booked_at": booked_at,
                "counterparty_account": other.account_id,
                "counterparty_bank": other.bank_code,
                "counterparty_name": other.name,
                "channel": channel,
            }
            if mv.instruction_id is not None:
                record["instruction_id"] = mv.instruction_id
            if mv.purpose:
                record["purpose"] = mv.purpose
            if mv.product_id is not None:
                record["product_id"] = mv.product_id
            if own.role in REPORTS_BALANCE_AFTER:
                record["balance_after"] = cents_to_text(self.balance[own.account_id])
            self._emit(own.bank_code, record)
            made.append((own.bank_code, record_id))
        if mv.labels and made:
            institution = mv.payer.institution_id or mv.payee.institution_id
            self.labels.append(Label(mv.labels, tuple(made), institution, mv.at))
        return len(made)

    def _snapshot(self, snap: Snapshot) -> None:
        party = self.parties[snap.account_id]
        record = {
            "kind": "balance",
            "record_id": self._record_id(party.bank_code),
            "account_id": snap.account_id,
            "as_of": format_time(snap.at),
            "balance": cents_to_text(self.balance[snap.account_id]),
            "currency": "CNY",
        }
        if snap.account_id in self.liabilities:
            # The contract has no negative liabilities; a drained account owes nothing more.
            record["customer_liabilities"] = cents_to_text(max(0, self.liabilities[snap.account_id]))
        self._emit(party.bank_code, record)
