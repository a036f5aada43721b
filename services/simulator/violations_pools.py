"""Injected fund pools (设立资金池) and their hard negative, split out of ``violations``: its
``_Planner`` takes ``PoolPlanning`` (the ``plan_<variant>`` methods) and its ``Injector`` takes
``PoolSteps`` (the ``_step_<variant>`` methods and the pool's label), so these run exactly like
the other variants.

Three shapes of pool, all labelled from their injection (a pool is a pattern over many movements
and days, DOMAIN.md):

- ``pool_related_party``: a related party's account takes in from 21-60 investors and pays
  11-30 borrowers or investors within 1-3 days, drained to near zero at each day's end;
- ``pool_own_account``: the same through a platform's second own account;
- ``pool_week``: collect first, pay later: 21-60 investors pay in over 2-3 days while the money
  stays, then 11-30 borrowers or investors are paid over the next 1-3 days until the account is
  near empty (up to 6 days in all: wider than a three-day window, inside a week).

The hard negative ``payroll_fanout`` is an own account paying bonuses to 12-40 employees and
executives: a fan-out with no investors in.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from fractions import Fraction
from typing import Any

from schemas.fields import cents_to_text
from schemas.reference import AccountRole, Institution, InstitutionType, Relation
from services.simulator.ledger import Event
from services.simulator.province import CUSTODY_TYPES
from services.simulator.violations_base import (
    HARD_NEGATIVE,
    POSITIVE,
    Variant,
    ViolationLabel,
    _Bucket,
    _ratio,
    _Unsuitable,
)
from services.simulator.world import draw_cents

_POOL_TYPES = CUSTODY_TYPES | {InstitutionType.other}
_ALL_TYPES = frozenset(InstitutionType)

POOL_VARIANTS: tuple[Variant, ...] = (
    Variant("pool_related_party", "fund_pool", POSITIVE, _POOL_TYPES, 1,
            "a related party's account collecting from 21-60 investors and paying 11-30 "
            "borrowers/investors within 1-3 days, drained to near zero each day"),
    Variant("pool_own_account", "fund_pool", POSITIVE, CUSTODY_TYPES, 1,
            "the same through a platform's second own account (also commingling)"),
    Variant("pool_week", "fund_pool", POSITIVE, _POOL_TYPES, 1,
            "a related party's (or second own) account collecting from 21-60 investors over 2-3 days, "
            "then paying 11-30 borrowers/investors over the next 1-3 days until near empty"),
    Variant("payroll_fanout", "fund_pool", HARD_NEGATIVE, _ALL_TYPES, 1,
            "bonuses from an own account to 12-40 employees and executives", ("fund_pool",)),
)  # fmt: skip

# Variants that need an account of their own (violations_planner._EXCLUSIVE): the parameter
# naming it.
POOL_EXCLUSIVE = {"pool_related_party": "account", "pool_own_account": "account", "pool_week": "account"}


class PoolPlanning:
    """The ``plan_<variant>`` methods of the fund-pool variants (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and
    helpers)."""

    def _pool_parties(self, inst: Institution) -> tuple[list[str], list[str], list[str], set[str]]:
        """Investors paying in, and borrowers or investors paid, for a pool of this institution."""
        rng, iid = self.rng, inst.institution_id
        cfg = self.cfg("fund_pool", inst)
        min_in, min_out = int(cfg["min_distinct_in"]), int(cfg["min_distinct_out"])
        if inst.type in CUSTODY_TYPES:
            source = list(self.p.investor_pools.get(iid, ()))
            borrowers = list(self.p.accounts_of(iid, AccountRole.borrower))
        else:
            source, borrowers = list(self.free_investors), []
        low, high = rng.choices(((min_in + 1, min_in + 5), (30, 45), (46, 60)), weights=(0.3, 0.5, 0.2))[0]
        n_in = min(rng.randint(low, high), len(source) - min_out - 2)
        if n_in <= min_in:
            raise _Unsuitable
        payers = rng.sample(source, n_in)
        paying = set(payers)
        others = borrowers + [a for a in source if a not in paying]
        low, high = rng.choices(((min_out + 1, min_out + 3), (min_out + 4, 30)), weights=(0.35, 0.65))[0]
        n_out = min(rng.randint(low, high), len(others))
        if n_out <= min_out:
            raise _Unsuitable
        # Borrowers first: the pool lends; the rest goes back to earlier investors as "returns".
        payees = borrowers[:]
        rng.shuffle(payees)
        lenders = set(borrowers)
        rest = [a for a in others if a not in lenders]
        payees = (payees + rng.sample(rest, min(len(rest), n_out)))[:n_out]
        return payers, payees, source, lenders

    def _pool(
        self, inst: Institution, account: str, collect_first: bool = False
    ) -> tuple[list[int], dict[str, Any]]:
        rng = self.rng
        payers, payees, _, lenders = self._pool_parties(inst)
        n_in, n_out = len(payers), len(payees)
        if collect_first:
            collecting, paying = rng.randint(2, 3), rng.randint(1, 3)
            span = collecting + paying
            in_days = sorted(n % collecting for n in range(n_in))
            out_days = sorted(collecting + n % paying for n in range(n_out))
        else:
            span = min(rng.randint(1, 3), n_out, n_in)
            in_days = sorted(n % span for n in range(n_in))
            out_days = sorted(n % span for n in range(n_out))
        first = self.pick_day(weekday=True, span=span)
        days = [first + timedelta(days=n) for n in range(span)]
        steps: list[tuple[int, list[Any]]] = []
        for payer, d in zip(payers, in_days, strict=True):
            steps.append((self.moment(days[d], 8.5, 16.0), ["in", payer, d]))
        for payee, d in zip(payees, out_days, strict=True):
            steps.append((self.moment(days[d], 16.1, 17.5), ["out", payee, d]))
        steps.sort(key=lambda s: s[0])
        times = [t for t, _ in steps]
        if len(set(times)) != len(times):
            raise _Unsuitable  # two steps at the same second: redraw at another institution
        person = set(self.p.natural_persons)
        in_amounts = [
            draw_cents(rng, 50_000, 0.7, 5_000, 300_000, step=1000) if payer in person
            else draw_cents(rng, 300_000, 0.6, 50_000, 1_500_000, step=10_000)
            for payer in payers
        ]  # fmt: skip
        amount_of = dict(zip(payers, in_amounts, strict=True))
        return times, {
            "account": account,
            "steps": [s for _, s in steps],
            "in_cents": [amount_of[s[1]] if s[0] == "in" else 0 for _, s in steps],
            "keep": [round(rng.uniform(0.0, 0.05), 4) for _ in days],
            "expected_in_per_day": sum(in_amounts) // span,
            "borrowers": [a for a in payees if a in lenders],
            "in_purpose": rng.choice(("理财认购款", "投资款", "出借资金")),
            "collect_first": collect_first,
        }

    def _related_pool_account(self, inst: Institution) -> str:
        accounts = [a for a in self.related.get(inst.institution_id, ()) if a not in self.touched]
        if not accounts:
            raise _Unsuitable
        favoured = [
            a for a in accounts if self.relation[a] in (Relation.affiliate, Relation.actual_controller)
        ]
        return self.rng.choice(favoured or accounts)

    def plan_pool_related_party(self, inst: Institution):
        return self._pool(inst, self._related_pool_account(inst))

    def plan_pool_own_account(self, inst: Institution):
        own = [a for a in self.own(inst.institution_id)[1:] if a not in self.touched]
        if not own:
            raise _Unsuitable  # the main own account takes fees and pays salaries
        return self._pool(inst, own[0])

    def plan_pool_week(self, inst: Institution):
        own = [a for a in self.own(inst.institution_id)[1:] if a not in self.touched]
        try:
            account = self._related_pool_account(inst)
        except _Unsuitable:
            if not own:
                raise
            account = own[0]
        return self._pool(inst, account, collect_first=True)

    def plan_payroll_fanout(self, inst: Institution):
        rng, iid = self.rng, inst.institution_id
        executives = [a for a in self.persons(iid) if self.relation[a] is Relation.executive]
        payees = list(self.p.employees.get(iid, ())) + executives
        wanted = int(self.cfg("fund_pool", inst)["min_distinct_out"]) + 2
        if len(payees) < wanted:
            raise _Unsuitable
        payees = rng.sample(payees, rng.randint(wanted, min(40, len(payees))))
        days = [d for d in self.days if d.weekday() < 5 and d.day not in (13, 14, 15)] or self.days
        day = rng.choice(days)
        return [self.moment(day, 10.25, 11.0)], {
            "own": self.own(iid)[0],
            "payees": payees,
            "amounts_cents": [draw_cents(rng, 8_000, 0.6, 2_000, 60_000, step=100) for _ in payees],
        }


class PoolSteps:
    """The ``_step_<variant>`` methods of the fund-pool variants and the pool's label (a mixin of
    ``violations_injector.Injector``)."""

    def _step_pool(self, inj, st, rng, step, at) -> list[Event]:
        p, ledger = inj.params, self.world.ledger
        account = p["account"]
        if not st:
            # A pool through an own account (which holds the firm's money already) takes in
            # enough that the day-end balance can still come near zero against the day's inflow.
            scale = 1.0
            if self._role.get(account) is AccountRole.own_operating:
                scale = min(4.0, max(1.0, 12 * ledger.balance[account] / max(1, p["expected_in_per_day"])))
            st.update(scale=scale, in_day=Counter(), in_total=0, out_total=0, payers=set(), payees=set())
        kind, who, day = p["steps"][step]
        if kind == "in":
            cents = max(100_000, round(p["in_cents"][step] * st["scale"] / 100_000) * 100_000)
            st["in_day"][day] += cents
            st["in_total"] += cents
            st["payers"].add(who)
            return [self._move(inj, rng, at, who, account, cents, p["in_purpose"])]
        # the payouts left today, and (collecting first) on the pool's later days: what is kept
        # back today is shared out over them
        left = [s for s in p["steps"][step:] if s[0] == "out"]
        left_today = sum(1 for s in left if s[2] == day)
        share = left_today / len(left) if p.get("collect_first") else 1.0
        keep = int(st["in_day"][day] * p["keep"][day])
        to_pay = int((ledger.balance[account] - keep) * share)
        cents = to_pay if left_today == 1 else int(to_pay / left_today * rng.uniform(0.6, 1.4))
        cents = min(cents, to_pay)
        if cents < 10_000:
            return self._note(inj, step, "skipped: nothing left to pay out")
        st["out_total"] += cents
        st["payees"].add(who)
        purpose = "借款" if who in p["borrowers"] else rng.choice(("收益兑付", "本息兑付"))
        return [self._move(inj, rng, at, account, who, cents, purpose)]

    _step_pool_related_party = _step_pool
    _step_pool_own_account = _step_pool
    _step_pool_week = _step_pool

    def _step_payroll_fanout(self, inj, st, rng, step, at) -> list[Event]:
        p, ledger = inj.params, self.world.ledger
        amounts = list(p["amounts_cents"])
        budget = ledger.balance[p["own"]] // 2
        if sum(amounts) > budget:
            amounts = [max(50_000, a * budget // sum(amounts) // 100 * 100) for a in amounts]
        if sum(amounts) > budget:
            return self._note(inj, step, "skipped: the own account could not cover the bonuses")
        return [self._move(inj, rng, at, p["own"], payee, cents, "年终奖金")
                for payee, cents in zip(p["payees"], amounts, strict=True)]  # fmt: skip

    def _pool_label(self, inj, bucket: _Bucket) -> ViolationLabel:
        st, account = self._state[inj.injection_id], inj.params["account"]
        in_total, out_total = st.get("in_total", 0), st.get("out_total", 0)
        metrics = {
            "distinct_in": len(st.get("payers", ())),
            "distinct_out": len(st.get("payees", ())),
            "total_in": cents_to_text(in_total),
            "total_out": cents_to_text(out_total),
            "pass_through": _ratio(Fraction(out_total, in_total)) if in_total else None,
            "days": len(inj.params["keep"]),
        }
        note = (f"{self._role_name(account)} collected {metrics['total_in']} from {metrics['distinct_in']} "
                f"investors and paid {metrics['total_out']} to {metrics['distinct_out']} borrowers/investors "
                f"within {metrics['days']} day(s)")  # fmt: skip
        return self._make("fund_pool", POSITIVE, inj.variant, f"{account}:{inj.injection_id}", account,
                          bucket, metrics, note, episode=inj.injection_id,
                          label_id=f"fund_pool/{inj.injection_id}")  # fmt: skip
