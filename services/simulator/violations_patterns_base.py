"""What the AMLSim-style patterns of ``violations_patterns`` are made of: the plan's records (a
``PatternInjection`` of ``Hop``s), their label (``PatternLabel``), and ``PatternTools``, the
accounts, times and amounts the shapes draw, and the last touches every pattern gets (inside the
plan's period, under the large-value lines, a channel per transfer).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

from models.thresholds import Thresholds
from schemas.fields import BEIJING, amount_to_cents, cents_to_text
from schemas.reference import Account, AccountRole
from services.simulator.ledger import HVPS_FROM_CENTS
from services.simulator.province import (
    _BRAND_HEAD,
    _BRAND_TAIL,
    _GIVEN,
    _INDUSTRIES,
    _SURNAMES,
    MONITORED_BANKS,
    REGIONS,
    Province,
)
from services.simulator.rhythm import HOUR_WEIGHTS
from services.simulator.violations_base import ViolationLabel, _iso

TYPOLOGY = "anomaly"
# The share of an account's daily large-value line a pattern may use, per direction.
LINE_SHARE = Fraction(1, 2)
# How often a pattern takes an idle account of the province rather than opening one.
_IDLE_SHARE = 0.35
_LAYERING_PURPOSES = ("转账", "往来款", "借款", "还款", "货款", "投资款", "")
_LAYERING_WEIGHTS = (0.3, 0.2, 0.15, 0.1, 0.08, 0.07, 0.1)
PAYROLL_PURPOSES = ("代发工资", "工资")


@dataclass(frozen=True, slots=True)
class Hop:
    """One transfer of a pattern: money from ``payer`` to ``payee`` at ``at`` (Unix seconds)."""

    at: int
    payer: str
    payee: str
    cents: int
    purpose: str
    channel: str

    def to_builtins(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "payer": self.payer, "payee": self.payee,
                "amount": cents_to_text(self.cents), "purpose": self.purpose, "channel": self.channel}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PatternInjection:
    """One planned pattern. ``shape`` is a shape of ``SHAPES`` or a look-alike of ``LOOKALIKES``;
    ``pattern`` the AMLSim shape (a look-alike's: the one it resembles); ``roles`` the accounts
    by their part in it (``ring``; ``source``/``intermediaries``/``collector``; ...), the role
    first whose first account the label names as its ``account_id`` (the ring's start, the
    source, the hub, the first layer's first, the employer, the landlord); ``hops`` every
    transfer, fixed when planning, in time order."""

    injection_id: str
    shape: str
    kind: str
    pattern: str
    roles: Mapping[str, tuple[str, ...]]
    hops: tuple[Hop, ...]

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for accounts in self.roles.values() for a in accounts))

    @property
    def main_account(self) -> str:
        return next(iter(self.roles.values()))[0]

    def to_builtins(self) -> dict[str, Any]:
        return {
            "injection_id": self.injection_id,
            "shape": self.shape,
            "typology": TYPOLOGY,
            "kind": self.kind,
            "pattern": self.pattern,
            "roles": {role: list(accounts) for role, accounts in self.roles.items()},
            "hops": [hop.to_builtins() for hop in self.hops],
        }


@dataclass(frozen=True, slots=True)
class PatternLabel(ViolationLabel):
    """A ``ViolationLabel`` that also names the AMLSim shape and every account taking part."""

    pattern: str = ""
    accounts: tuple[str, ...] = ()


class Unplannable(Exception):
    """Not enough free outside accounts left for this shape."""


@dataclass(slots=True)
class Draft:
    at: int
    payer: str
    payee: str
    cents: int
    purpose: str


class PatternTools:
    """Accounts, times and amounts for the patterns of one plan over [``start``, ``end``) (Unix
    seconds), from a generator of their own, so the rest of the plan draws what it drew before.
    ``taken`` are the account ids the plan uses already (its injections' accounts, its new
    accounts and outside parties)."""

    def __init__(
        self, province: Province, seed: int, start: int, end: int, thresholds: Thresholds, taken: set[str]
    ) -> None:
        self.province, self.start, self.end, self.thresholds = province, start, end, thresholds
        self.rng = random.Random(f"fundwatch-pattern-plan:{seed}")
        p = province
        pooled = {a for pool in p.investor_pools.values() for a in pool}
        # Free investors in no platform's pool: the normal feed never moves their money.
        self.idle = [
            a for a in p.accounts_of(None, AccountRole.investor) if a not in pooled and a not in taken
        ]
        self.outside_persons = [e.account_id for e in p.externals if e.person and e.account_id not in taken]
        self.outside_firms = [e.account_id for e in p.externals if not e.person and e.account_id not in taken]
        self.new_accounts: list[Account] = []
        self.accounts = dict(p.account_by_id)
        self.persons = set(p.natural_persons)
        self.numbers = set(taken) | set(p.account_by_id) | set(p.external_by_id)
        self.banks = [bank for bank in MONITORED_BANKS if bank[0] in p.bank_codes]
        first = datetime.fromtimestamp(start, BEIJING).date()
        last = datetime.fromtimestamp(end - 1, BEIJING).date()
        self.days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        self._type = {inst.institution_id: inst.type.value for inst in p.institutions}

    # -- accounts, times and amounts -------------------------------------------------------

    def _take(self, n: int) -> list[str]:
        """``n`` quiet natural persons' accounts (violations_patterns says why), each in one pattern only."""
        out = []
        for _ in range(n):
            if self.idle and self.rng.random() < _IDLE_SHARE:
                out.append(self.idle.pop(self.rng.randrange(len(self.idle))))
            else:
                out.append(self._open(person=True))
        return out

    def _open(self, person: bool) -> str:
        """A new account at a monitored bank: a person's as a platform-less investor (as the
        province's free investors are), a company's as ``other``."""
        code, _, corporate, personal = self.rng.choice(self.banks)
        while True:
            prefix = personal if person else corporate
            number = prefix + "".join(self.rng.choices("0123456789", k=19 - len(prefix)))
            if number not in self.numbers:
                break
        self.numbers.add(number)
        if person:
            name, role = self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN), AccountRole.investor
            self.persons.add(number)
        else:
            brand = self.rng.choice(_BRAND_HEAD) + self.rng.choice(_BRAND_TAIL)
            name = f"{self.rng.choice(REGIONS)[2]}{brand}{self.rng.choice(_INDUSTRIES)}有限公司"
            role = AccountRole.other
        account = Account(account_id=number, bank_code=code, role=role, holder_name=name, institution_id=None)
        self.new_accounts.append(account)
        self.accounts[number] = account
        return number

    def _outside(self, pool: list[str], n: int) -> list[str]:
        if len(pool) < n:
            raise Unplannable("no free outside account left")
        return [pool.pop(self.rng.randrange(len(pool))) for _ in range(n)]

    def _first(self, span_h: float) -> int:
        """A start at an hour the day rhythm favours, leaving ``span_h`` (or most of the plan) after it."""
        room = min(int(span_h * 3600), (self.end - self.start) // 2)
        latest = self.end - 1 - room
        for _ in range(40):
            at = self._on(self.rng.choice(self.days))
            if self.start <= at <= latest:
                return at
        return self.start + self.rng.randrange(max(1, latest - self.start + 1))

    def _on(self, day: date) -> int:
        """A moment of ``day`` at an hour the day rhythm favours."""
        hour = self.rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        return midnight(day) + hour * 3600 + self.rng.randrange(3600)

    def _later(self, at: int, low_h: float, high_h: float) -> int:
        """``low_h``-``high_h`` hours on; most moves landing in the small hours wait for the morning."""
        at += max(60, int(self.rng.uniform(low_h, high_h) * 3600))
        local = datetime.fromtimestamp(at, BEIJING)
        if 1 <= local.hour < 7 and self.rng.random() < 0.85:
            at = midnight(local.date()) + int(self.rng.uniform(7.0, 10.0) * 3600)
        return at

    def _styled(self, cents: float) -> int:
        """As people key amounts in: whole hundreds, whole yuan or to the cent (rounded down, so a
        fee taken off always leaves less)."""
        unit = self.rng.choices((10_000, 100, 1), weights=(0.3, 0.25, 0.45))[0]
        return max(unit, int(cents) // unit * unit)

    def _yuan(self, low: float, high: float) -> int:
        return self._styled(self.rng.uniform(low, high) * 100)

    def _less(self, cents: int, low: float, high: float) -> int:
        return self._styled(cents * (1 - self.rng.uniform(low, high)))

    def _split(self, cents: int, parts: int) -> list[int]:
        weights = [self.rng.uniform(0.4, 1.6) for _ in range(parts)]
        return [self._styled(cents * w / sum(weights)) for w in weights]

    def _purpose(self) -> str:
        return self.rng.choices(_LAYERING_PURPOSES, weights=_LAYERING_WEIGHTS)[0]

    def _finish(self, drafts: list[Draft]) -> tuple[Hop, ...]:
        """The hops in time order, inside the plan, under the lines, with their channels."""
        drafts.sort(key=lambda d: d.at)
        # Whole days earlier or later keep every transfer's hour; a pattern longer than the plan
        # is squeezed into it instead, in the same order.
        if drafts[0].at < self.start:
            self._move(drafts, -(-(self.start - drafts[0].at) // 86_400) * 86_400)
        first, last = drafts[0].at, drafts[-1].at
        if last >= self.end:
            back = -(-(last - self.end + 1) // 86_400) * 86_400
            if first - back >= self.start:
                self._move(drafts, -back)
            else:
                begin = max(self.start, min(first, self.end - 1))
                stop = self.end - 1 - self.rng.randrange(max(1, (self.end - 1 - begin) // 8))
                scale = (stop - begin) / max(1, last - first)
                for d in drafts:
                    d.at = begin + int((d.at - first) * scale)
        for _ in range(8):
            factor = self._over_lines(drafts)
            if factor >= 1:
                break
            for d in drafts:
                d.cents = max(100, int(d.cents * factor * 0.97))
        return tuple(Hop(d.at, d.payer, d.payee, d.cents, d.purpose, self._channel(d)) for d in drafts)

    @staticmethod
    def _move(drafts: list[Draft], seconds: int) -> None:
        for d in drafts:
            d.at += seconds

    def _over_lines(self, drafts: list[Draft]) -> float:
        """How far the drafts must shrink so that no account-day-direction passes its share of the line."""
        sums: dict[tuple[str, date, str], int] = defaultdict(int)
        for d in drafts:
            day = datetime.fromtimestamp(d.at, BEIJING).date()
            sums[(d.payer, day, "out")] += d.cents
            sums[(d.payee, day, "in")] += d.cents
        factor = 1.0
        for (account, _, _), cents in sums.items():
            cap = self._cap(account)
            if cap is not None and cents > cap:
                factor = min(factor, cap / cents)
        return factor

    def _cap(self, account: str) -> int | None:
        found = self.accounts.get(account)
        if found is None:
            return None  # unmonitored: its bank reports nothing
        cfg = self.thresholds.get("large_value", self._type.get(found.institution_id or ""))
        line = "natural_transfer" if account in self.persons else "non_natural_transfer"
        return int(amount_to_cents(str(cfg[line])) * LINE_SHARE)

    def _channel(self, d: Draft) -> str:
        banks = [self._bank(d.payer), self._bank(d.payee)]
        if banks[0] == banks[1]:
            return "INTERNAL"
        if d.cents >= HVPS_FROM_CENTS:
            return "HVPS"
        if d.purpose in PAYROLL_PURPOSES:
            return "BEPS"  # payroll goes as one bulk file
        return "IBPS" if self.rng.random() < 0.6 else "BEPS"

    def _bank(self, account: str) -> str:
        found = self.accounts.get(account)
        return found.bank_code if found is not None else self.province.external_by_id[account].bank_code


def named_accounts(values: Iterable[Any]) -> set[str]:
    """Every string inside ``values`` (nested lists, tuples and dicts): an injection's params name
    accounts in many places."""
    found: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return found


def midnight(day: date) -> int:
    return int(datetime.combine(day, time(0), BEIJING).timestamp())
