"""Injected large-value transactions (大额交易) and their hard negative, split out of
``violations``: its ``_Planner`` takes ``LargeValuePlanning`` (the ``plan_<variant>`` methods)
and its ``Injector`` takes ``LargeValueSteps`` (the ``_step_<variant>`` methods, the reporting
lines, the watch on every record's day totals and the labels), so these run exactly like the
other variants.

- ``cash``: cash deposits (or withdrawals) on an own account at or above 50,000 in a day;
- ``natural_person_transfer``: a related natural person sending at or above 500,000 in a day;
- ``organisation_transfer``: an own account paying a supplier at or above 2,000,000 in a day
  (funded first if need be).

The hard negative ``below_line`` is a natural person sending just under 500,000 in a day.

Large-value reports are labelled per (account, Beijing day, line) over the whole feed: the normal
feed makes many (custody accounts take in millions a day, and every such account-day is labelled).
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from schemas.fields import amount_to_cents, cents_to_text
from schemas.reference import Institution, InstitutionType
from services.simulator.ledger import Event, Party
from services.simulator.violations_base import (
    HARD_NEGATIVE,
    POSITIVE,
    Variant,
    ViolationLabel,
    _Bucket,
    _Unsuitable,
)

_ALL_TYPES = frozenset(InstitutionType)

LARGE_VALUE_VARIANTS: tuple[Variant, ...] = (
    Variant("cash", "large_value", POSITIVE, _ALL_TYPES, 1,
            "cash deposits (or withdrawals) on an own account at or above 50,000 in a day"),
    Variant("natural_person_transfer", "large_value", POSITIVE, _ALL_TYPES, 1,
            "a related natural person sending at or above 500,000 in a day"),
    Variant("organisation_transfer", "large_value", POSITIVE, _ALL_TYPES, 1,
            "an own account paying a supplier at or above 2,000,000 in a day (funded first if need be)"),
)  # fmt: skip

BELOW_LINE = Variant("below_line", "large_value", HARD_NEGATIVE, _ALL_TYPES, 1,
        "a natural person sending just under 500,000 in a day", ("large_value",))  # fmt: skip

# Cash deposits are a developer's (violations_planner._PREFERRED).
PREFERRED = {"cash": frozenset({InstitutionType.real_estate})}
# Variants that need an account of their own (violations_planner._EXCLUSIVE): the parameter
# naming it.
EXCLUSIVE = {"natural_person_transfer": "account", "below_line": "account"}


class LargeValuePlanning:
    """The ``plan_<variant>`` methods of the large-value variants (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and
    helpers)."""

    def plan_cash(self, inst: Institution):
        rng = self.rng
        line = amount_to_cents(str(self.cfg("large_value", inst)["cash"]))
        deposit = rng.random() < 0.7
        if deposit:
            total = line if rng.random() < 0.3 else line + rng.randint(1, 450) * 10_000
            parts = rng.randint(2, 4)
        else:
            total = line + rng.randint(0, 1000) * 10_000
            parts = rng.randint(1, 2)
        amounts = _split_notes(rng, total, parts)
        day = self.pick_day(weekday=inst.type is not InstitutionType.real_estate)
        times = sorted(self.moment(day, 9.0, 16.5) for _ in amounts)
        depositor = self.p.external_by_id[rng.choice(self.outside_persons)].name
        return times, {
            "own": rng.choice(self.free(self.own(inst.institution_id)) or self.own(inst.institution_id)[:1]),
            "direction": "in" if deposit else "out",
            "amounts_cents": amounts,
            "name": depositor,
            "purpose": ("购房定金" if inst.type is InstitutionType.real_estate else "现金缴存")
            if deposit
            else "备用金",
        }

    def _person_transfer(self, inst: Institution, total: int, parts: int):
        rng = self.rng
        persons = self.persons(inst.institution_id)
        if not persons:
            raise _Unsuitable
        account = rng.choice(persons)
        amounts = _split_cents(rng, total, parts, unit=100)
        day = self.pick_day(weekday=False)
        times = sorted(self.moment(day, 9.0, 20.0) for _ in amounts)
        payees = [rng.choice(self.outside_persons + self.outside_firms) for _ in amounts]
        purposes = [rng.choice(("个人往来款", "购房款", "投资款", "借款")) for _ in amounts]
        return times, {"account": account, "amounts_cents": amounts, "payees": payees, "purposes": purposes}

    def plan_natural_person_transfer(self, inst: Institution):
        line = amount_to_cents(str(self.cfg("large_value", inst)["natural_transfer"]))
        total = line if self.rng.random() < 0.3 else line + self.rng.randint(1, 400) * 100_000
        return self._person_transfer(inst, total, self.rng.randint(1, 3))

    def plan_below_line(self, inst: Institution):
        line = amount_to_cents(str(self.cfg("large_value", inst)["natural_transfer"]))
        total = line - self.rng.randint(100, 2_000_000)  # 1.00 to 20,000.00 under the line
        return self._person_transfer(inst, total, self.rng.randint(1, 2))

    def plan_organisation_transfer(self, inst: Institution):
        rng = self.rng
        iid = inst.institution_id
        suppliers = self.p.suppliers.get(iid, ())
        if not suppliers:
            raise _Unsuitable
        line = amount_to_cents(str(self.cfg("large_value", inst)["non_natural_transfer"]))
        total = line if rng.random() < 0.3 else line + rng.randint(1, 150) * 1_000_000
        parts = rng.randint(1, 3)
        day = self.pick_day()
        funding = self.moment(day, 9.5, 10.5)
        outs = sorted(funding + rng.randrange(5 * 60, 40 * 60) for _ in range(parts))
        return [funding, *outs], {
            "own": self.own(iid)[0],
            "supplier": rng.choice(suppliers),
            "funder": rng.choice([f for f in self.outside_firms if f not in suppliers]),
            "amounts_cents": _split_cents(rng, total, parts, unit=100_000),
            "margin_cents": rng.randint(300, 800) * 100_000,
        }


def _split_cents(rng: random.Random, total: int, parts: int, unit: int = 1) -> list[int]:
    """``total`` cents in ``parts`` shares of whole ``unit``s (the first takes the remainder)."""
    units = total // unit
    if parts <= 1 or units < parts:
        return [total]
    cuts = sorted(rng.sample(range(1, units), parts - 1))
    shares = [(b - a) * unit for a, b in zip([0, *cuts], [*cuts, units], strict=True)]
    shares[0] += total - sum(shares)
    return shares


def _split_notes(rng: random.Random, total: int, parts: int) -> list[int]:
    """Cash in 100-yuan notes; a total that is not whole notes keeps its rest in the first part."""
    return _split_cents(rng, total, parts, unit=10_000)


class LargeValueSteps:
    """The ``_step_<variant>`` methods of the large-value variants, the reporting lines, the watch
    on day totals and the labels (a mixin of ``violations_injector.Injector``)."""

    def _step_cash(self, inj, st, rng, step, at) -> list[Event]:
        own = self._party(inj.params["own"])
        cents = inj.params["amounts_cents"][step]
        # Cash has no account on the other side: the bank names the depositor, or the holder.
        cash = Party("CASH", own.bank_code, inj.params["name"], None, None, True)
        if inj.params["direction"] == "in":
            return [self._move(inj, rng, at, cash, own, cents, inj.params["purpose"], channel="CASH")]
        if self.world.ledger.balance[own.account_id] < cents:
            return self._note(inj, step, "skipped: the own account could not cover the withdrawal")
        cash = Party("CASH", own.bank_code, own.name, None, None, False)
        return [self._move(inj, rng, at, own, cash, cents, inj.params["purpose"], channel="CASH")]

    def _step_person_transfer(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        return [
            self._move(
                inj, rng, at, p["account"], p["payees"][step], p["amounts_cents"][step], p["purposes"][step]
            )
        ]

    _step_natural_person_transfer = _step_person_transfer
    _step_below_line = _step_person_transfer

    def _step_organisation_transfer(self, inj, st, rng, step, at) -> list[Event]:
        p, ledger = inj.params, self.world.ledger
        if step == 0:
            need = sum(p["amounts_cents"]) + p["margin_cents"] - ledger.balance[p["own"]]
            if need <= 0:
                return []
            need = -(-need // 1_000_000) * 1_000_000
            return [self._move(inj, rng, at, p["funder"], p["own"], need, "工程回款")]
        cents = p["amounts_cents"][step - 1]
        if ledger.balance[p["own"]] < cents:
            return self._note(inj, step, "skipped: the own account could not cover the payment")
        return [self._move(inj, rng, at, p["own"], p["supplier"], cents, "工程款")]

    # -- thresholds ------------------------------------------------------------------------

    def _line(self, institution_id: str | None, name: str) -> int:
        kind = self._type_of.get(institution_id or "")
        if kind not in self._lines:
            cfg = self.plan.thresholds.get("large_value", kind)
            self._lines[kind] = {
                key: amount_to_cents(str(cfg[key]))
                for key in ("cash", "non_natural_transfer", "natural_transfer", "natural_cross_border")
            }
        return self._lines[kind][name]

    # -- watching the records --------------------------------------------------------------

    def _see_large_value(self, bank: str, r: dict, account: str, day: str, cents: int, credit: bool) -> None:
        if day > self._lv_day:
            # Days are over once the feed is two days past them; what never crossed is forgotten.
            self._lv_day = day
            horizon = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
            for key in [k for k in self._lv if k[1] < horizon and k not in self._lv_crossed]:
                del self._lv[key]
        if r.get("currency", "CNY") != "CNY":
            return
        person = self.world.parties[account].person
        side = "in" if credit else "out"
        if r["channel"] == "CASH":
            line, threshold = f"cash_{side}", "cash"
        elif person and _cross_border(r):
            line, threshold = f"cross_border_{side}", "natural_cross_border"
        else:
            line, threshold = f"transfer_{side}", "natural_transfer" if person else "non_natural_transfer"
        key = (account, day, line)
        bucket = self._lv.setdefault(key, _Bucket())
        bucket.add(bank, r["record_id"], r["booked_at"], cents)
        reporting = self._line(self._institution.get(account), threshold)
        if bucket.cents >= reporting and key not in self._lv_crossed:
            self._lv_crossed[key] = (reporting, threshold)

    # -- the labels ------------------------------------------------------------------------

    def _large_value_labels(self) -> list[ViolationLabel]:
        out = []
        for key, (reporting, threshold) in sorted(self._lv_crossed.items()):
            account, day, line = key
            bucket = self._lv[key]
            metrics = {
                "day": day,
                "line": line,
                "total": cents_to_text(bucket.cents),
                "count": bucket.count,
                "reporting_line": cents_to_text(reporting),
                "threshold": threshold,
                "holder": "natural_person" if self.world.parties[account].person else "non_natural_person",
            }
            note = (f"{bucket.count} {line.replace('_', ' ')} record(s) on {day} totalling "
                    f"{metrics['total']}, at or above the {threshold} line {metrics['reporting_line']}")  # fmt: skip
            out.append(self._make("large_value", POSITIVE, line, f"{account}:{day}:{line}",
                                  account, bucket, metrics, note))  # fmt: skip
        return out


def _cross_border(r: dict) -> bool:
    # The convention the records carry (models/detectors/large_value.is_cross_border).
    if str(r.get("counterparty_bank") or "").upper().startswith("X-"):
        return True
    return r.get("channel") == "OTHER" and "跨境" in (r.get("purpose") or "")
