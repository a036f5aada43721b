"""Injected misappropriation (挪用) and its hard negative, split out of ``violations``: its
``_Planner`` takes ``MisappropriationPlanning`` (the ``plan_<variant>`` methods) and its
``Injector`` takes ``MisappropriationSteps`` (the ``_step_<variant>`` methods, the fee limit and
the labels), so these run exactly like the other variants.

Money leaving a custody or reserve account against the rules:

- ``uninstructed_to_own`` / ``_to_related`` / ``_to_outside``: 1-3 debits without instruction
  from custody/reserve to the institution's own account, a related party's account, or an
  unmonitored outside account;
- ``fee_excess``: instructed fees to own accounts above the contractual share of the 30-day inflow.

The hard negative ``contractual_fee`` is an instructed fee from custody to own within the
contractual share.

Misappropriation is labelled per (account, Beijing day) by its rule over the whole feed, injected
or not (``violations``' module docstring).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from fractions import Fraction
from typing import Any

from schemas.fields import BEIJING, cents_to_text
from schemas.reference import AccountRole, Institution, InstitutionType
from services.simulator.ledger import Event
from services.simulator.province import CUSTODY_TYPES
from services.simulator.rhythm import HOUR_WEIGHTS
from services.simulator.violations_base import (
    _PURPOSES,
    HARD_NEGATIVE,
    POSITIVE,
    Variant,
    ViolationLabel,
    _Bucket,
    _copy,
    _day_of,
    _merge,
    _ratio,
    _Unsuitable,
    _window,
)

_PAYMENT = frozenset({InstitutionType.payment})
_HOLDER_TYPES = CUSTODY_TYPES | _PAYMENT

_RESERVE_FEE_PURPOSE = "手续费收入划转"  # the reserve sweep's wording (activities._collect_reserve_fees)
_UNINSTRUCTED_PURPOSES = {
    "own": ("资金调拨", "往来款", "备用金", ""),
    "related": ("借款", "往来款", "资金周转", ""),
    "outside": ("往来款", "投资款", "货款", ""),
}
# Amount bands in yuan: under misappropriation's high_amount, between high and critical, above.
_AMOUNT_BANDS = ((20_000, 95_000), (100_000, 950_000), (1_000_000, 6_000_000))

MISAPPROPRIATION_VARIANTS: tuple[Variant, ...] = (
    Variant("uninstructed_to_own", "misappropriation", POSITIVE, _HOLDER_TYPES, 1,
            "1-3 debits without instruction from custody/reserve to the institution's own account"),
    Variant("uninstructed_to_related", "misappropriation", POSITIVE, _HOLDER_TYPES, 1,
            "1-3 debits without instruction from custody/reserve to a related party's account"),
    Variant("uninstructed_to_outside", "misappropriation", POSITIVE, _HOLDER_TYPES, 1,
            "1-3 debits without instruction from custody/reserve to an unmonitored outside account"),
    Variant("fee_excess", "misappropriation", POSITIVE, _HOLDER_TYPES, 1,
            "instructed fees to own accounts above the contractual share of the 30-day inflow"),
)  # fmt: skip

CONTRACTUAL_FEE = Variant("contractual_fee", "misappropriation", HARD_NEGATIVE, CUSTODY_TYPES, 1,
        "an instructed fee from custody to own within the contractual share",
        ("misappropriation",))  # fmt: skip


class MisappropriationPlanning:
    """The ``plan_<variant>`` methods of the misappropriation variants (a mixin of
    ``violations_planner._Planner``: it uses the planner's province, generator, days and
    helpers)."""

    # -- misappropriation ------------------------------------------------------------------

    def _uninstructed(self, inst: Institution, where: str) -> tuple[list[int], dict[str, Any]]:
        iid, rng = inst.institution_id, self.rng
        if where == "own":
            destination = rng.choice(self.free(self.own(iid)) or self.own(iid)[:1])
        elif where == "related":
            choices = self.free(self.related.get(iid, ()))
            if not choices:
                raise _Unsuitable
            destination = rng.choice(choices)
        else:
            destination = rng.choice(self.outside_firms + self.outside_persons[:50])
        count = rng.choices((1, 2, 3), weights=(0.6, 0.25, 0.15))[0]
        band = rng.choices(_AMOUNT_BANDS, weights=(0.3, 0.45, 0.25))[0]
        amounts = [self.band_amount((band,), (1.0,)) for _ in range(count)]
        day = self.pick_day()
        first = self.moment(day, 9.5, 16.5) if rng.random() < 0.8 else self.moment(day, 19.5, 21.0)
        times = [first]
        for _ in range(count - 1):
            times.append(times[-1] + rng.randrange(20 * 60, 60 * 60))
        params = {
            "account": self.holder(inst),
            "destination": destination,
            "destination_kind": where,
            "amounts_yuan": amounts,
            "purpose": rng.choice(_UNINSTRUCTED_PURPOSES[where]),
        }
        return times, params

    def plan_uninstructed_to_own(self, inst: Institution):
        return self._uninstructed(inst, "own")

    def plan_uninstructed_to_related(self, inst: Institution):
        return self._uninstructed(inst, "related")

    def plan_uninstructed_to_outside(self, inst: Institution):
        return self._uninstructed(inst, "outside")

    def plan_fee_excess(self, inst: Institution):
        # The detector's 30-day window holds only what the feed pushed: an excess early in the run
        # needs a share of days of inflow, later it would need a share of up to 30 days' at once.
        # A custody account holds a fraction of a day's inflow at any time: the fee is taken in
        # three debits (midday, afternoon, the evening batch), the last sized to end the day over.
        working = [d for d in self.days if d.weekday() < 5] or self.days
        k = self.rng.choices((1, 2), weights=(0.7, 0.3))[0]
        days = working[:k]
        times = [self.moment(d, a, b) for d in days for a, b in ((12.0, 13.5), (16.0, 17.4), (22.0, 23.6))]
        bands = ((1.04, 1.2), (1.3, 2.5), (3.0, 6.0))
        multiples = [
            round(self.rng.uniform(*self.rng.choices(bands, weights=(0.35, 0.45, 0.2))[0]), 4) for _ in days
        ]
        return times, {
            "account": self.holder(inst),
            "own": self.own(inst.institution_id)[0],
            "multiples": [m for m in multiples for _ in range(3)],
            "last_of_day": [n % 3 == 2 for n in range(len(times))],
        }

    # -- hard negatives --------------------------------------------------------------------

    def plan_contractual_fee(self, inst: Institution):
        day = self.pick_day()
        return [self.moment(day, 17.6, 17.95)], {
            "account": self.holder(inst),
            "own": self.own(inst.institution_id)[0],
            "share_of_limit": round(self.rng.uniform(0.5, 0.8), 4),
        }


class MisappropriationSteps:
    """The ``_step_<variant>`` methods of the misappropriation variants, the fee limit and the
    labels (a mixin of ``violations_injector.Injector``)."""

    def _fee_purpose(self, iid: str) -> tuple[str, str]:
        kind = self.province.institution_by_id[iid].type
        if kind is InstitutionType.payment:
            return _RESERVE_FEE_PURPOSE, "FS"
        return _PURPOSES[kind]["fee"], "FE"

    def _step_uninstructed(self, inj, st, rng, step, at) -> list[Event]:
        iid, account = inj.institution_id, inj.params["account"]
        cap = int(self._available(iid, account) * 0.3)
        cents = min(inj.params["amounts_yuan"][step] * 100, cap)
        cents = cents // 100_000 * 100_000 if cents >= 1_000_000 else cents // 10_000 * 10_000
        if cents < 100_000:
            return self._note(
                inj, step, f"skipped: the account held too little ({cents_to_text(cap)} usable)"
            )
        self._take(iid, account, cents)
        self._gap_cause[account] = inj.injection_id
        # The customers are owed as much as before: payer_liability 0 opens a shortfall.
        return [self._move(inj, rng, at, account, inj.params["destination"], cents, inj.params["purpose"],
                           payer_liability=0)]  # fmt: skip

    _step_uninstructed_to_own = _step_uninstructed
    _step_uninstructed_to_related = _step_uninstructed
    _step_uninstructed_to_outside = _step_uninstructed

    def _step_fee_excess(self, inj, st, rng, step, at) -> list[Event]:
        iid, account = inj.institution_id, inj.params["account"]
        limit = self.fee_limit(iid)
        day = _day_of(at)
        window = _window(day, self._window_days)
        inflow = sum(self._inflow.get(account, {}).get(d, 0) for d in window)
        fees = sum(b.cents for d, b in self._fees.get(account, {}).items() if d in window)
        today = self._inflow.get(account, {}).get(day, 0)
        last = inj.params["last_of_day"][step]
        # Inflow still to come today lowers the share. Earlier debits take a part of the target on
        # the expected inflow; the evening one the rest, counting what may still come in twice.
        projected = inflow + math.ceil(today * _rest_of_day(at) * (2 if last else 1))
        if projected <= 0:
            return self._note(inj, step, "skipped: no inflow in the window yet")
        part = Fraction(step % 3 + 1, 3)  # three debits a day: a third, two thirds, all
        target = limit * Fraction(str(inj.params["multiples"][step])) * projected
        wanted = math.ceil(target * part) - fees
        needed = math.floor(limit * Fraction(102, 100) * projected) - fees + 1
        cents = min(wanted, int(self._available(iid, account) * 0.6))
        if last and cents < needed:
            self._note(inj, step, f"short: {cents_to_text(needed)} needed to end the day over the share")
        if cents < 10_000:
            return []
        purpose, kind = self._fee_purpose(iid)
        reserve = self._role.get(account) is AccountRole.payment_reserve
        self._take(iid, account, cents)
        if reserve:
            self._gap_cause[account] = inj.injection_id
        # Custody: the platform books it as its fee, so the customers' claims fall with it.
        # Reserve: fees beyond those earned come out of the customers' money, which stays owed.
        return [self._move(inj, rng, at, account, inj.params["own"], cents, purpose,
                           instruction=self.world.instruction(kind),
                           payer_liability=0 if reserve else cents)]  # fmt: skip

    def _step_contractual_fee(self, inj, st, rng, step, at) -> list[Event]:
        iid, account = inj.institution_id, inj.params["account"]
        limit = self.fee_limit(iid)
        window = _window(_day_of(at), self._window_days)
        inflow = sum(self._inflow.get(account, {}).get(d, 0) for d in window)
        fees = sum(b.cents for d, b in self._fees.get(account, {}).items() if d in window)
        # Later inflow only lowers the share, and no other fee follows today: lawful stays lawful.
        cents = math.floor(limit * Fraction(str(inj.params["share_of_limit"])) * inflow) - fees
        cents = min(cents, int(self._available(iid, account) * 0.3))
        if cents < 100_000:
            return self._note(inj, step, "skipped: the contractual share left under 1,000.00")
        self._take(iid, account, cents)
        purpose, kind = self._fee_purpose(iid)
        return [self._move(inj, rng, at, account, inj.params["own"], cents, purpose,
                           instruction=self.world.instruction(kind), payer_liability=cents)]  # fmt: skip

    # -- thresholds ------------------------------------------------------------------------

    def fee_limit(self, institution_id: str | None) -> Fraction:
        kind = self._type_of.get(institution_id or "")
        if kind not in self._fee_limit:
            cfg = self.plan.thresholds.get("misappropriation", kind)
            self._fee_limit[kind] = Fraction(str(cfg.get("fee_share_max", "0.05")))
        return self._fee_limit[kind]

    # -- the labels ------------------------------------------------------------------------

    def _misappropriation_labels(self) -> list[ViolationLabel]:
        found: dict[tuple[str, str], tuple[list[str], _Bucket, dict[str, Any]]] = {}
        for (account, day), bucket in self._unins.items():
            metrics = {
                "day": day,
                "uninstructed_count": bucket.count,
                "uninstructed_total": cents_to_text(bucket.cents),
                **{
                    f"uninstructed_to_{tag}": cents_to_text(bucket.tags[tag])
                    for tag in ("own", "related", "other")
                },
            }
            found[(account, day)] = (["uninstructed_debit"], _copy(bucket), metrics)
        for account, by_day in self._fees.items():
            limit = self.fee_limit(self._institution.get(account))
            inflow_by_day = self._inflow.get(account, Counter())
            for day in sorted(by_day):
                window = set(_window(day, self._window_days))
                fees = [b for d, b in sorted(by_day.items()) if d in window]
                total = sum(b.cents for b in fees)
                inflow = sum(c for d, c in inflow_by_day.items() if d in window)
                if total * limit.denominator <= limit.numerator * inflow:
                    continue
                signals, bucket, metrics = found.setdefault((account, day), ([], _Bucket(), {"day": day}))
                signals.append("fee_excess")
                for b in fees:  # the detector cites every fee in the window
                    _merge(bucket, b)
                metrics.update(
                    fee_window_days=self._window_days,
                    fees_to_own_in_window=cents_to_text(total),
                    inflow_in_window=cents_to_text(inflow),
                    fee_share=_ratio(Fraction(total, inflow)) if inflow else None,
                    fee_share_max=_ratio(limit),
                )
        out = []
        for (account, day), (signals, bucket, metrics) in sorted(found.items()):
            parts = []
            if "uninstructed_debit" in signals:
                parts.append(f"{metrics['uninstructed_count']} debit(s) without instruction, "
                             f"{metrics['uninstructed_total']} in all")  # fmt: skip
            if "fee_excess" in signals:
                parts.append(f"fees to own accounts {metrics['fees_to_own_in_window']} are "
                             f"{metrics['fee_share']} of the {self._window_days}-day inflow "
                             f"{metrics['inflow_in_window']}, above {metrics['fee_share_max']}")  # fmt: skip
            note = f"{self._role_name(account)} on {day}: " + "; ".join(parts)
            out.append(self._make("misappropriation", POSITIVE, "+".join(signals), f"{account}:{day}",
                                  account, bucket, metrics, note))  # fmt: skip
        return out


def _rest_of_day(ts: int) -> float:
    """Activity still to come today over activity so far, by the day rhythm."""
    local = datetime.fromtimestamp(ts, BEIJING)
    part = (local.minute * 60 + local.second) / 3600
    done = sum(HOUR_WEIGHTS[: local.hour]) + HOUR_WEIGHTS[local.hour] * part
    rest = HOUR_WEIGHTS[local.hour] * (1 - part) + sum(HOUR_WEIGHTS[local.hour + 1 :])
    return rest / done if done > 0 else 1.0
