"""Injected violations and hard negatives, with ground-truth labels, deterministic from a seed.

A ``ViolationPlan`` says what happens, to which institution and when: a tuple of ``Injection``s,
each one variant of a typology (``VARIANTS``) with its scheduled steps and the accounts and
draws chosen when planning. ``plan_violations`` draws one from a seed; a hand-written plan works
the same way. ``Feed(..., violations=plan)`` runs it: the steps come due as one more event source
beside the normal ones and book ``Movement``s tagged with the injection id, and every tick's
records pass by the plan's ``Injector``, which labels them. ``Feed.labels`` is then a list of
``ViolationLabel``s and ``push.write_files(..., violations=plan)`` writes them to ``labels.jsonl``.

Where the truth comes from:

- Signals a rule defines on the records are labelled by that rule over the *whole* feed, injected
  or not, so that the ground truth is complete and precision can be measured: large-value
  reports (the normal feed makes many: custody accounts take in millions a day, and every such
  account-day is labelled), uninstructed debits from custody or reserve accounts, instructed
  fees to own accounts above the contractual share of the 30-day inflow, instructed custody
  outflows to related parties, commingling credits, and balance snapshots below the customer
  liabilities. ``episode_id`` names the injection behind a label (None: normal activity).
- The product- and institution-level typologies (excess_return, maturity_mismatch,
  investor_cap_breach, rapid_growth, disguised_clearing) are labelled the same way by
  ``institution_truth``: the rules on reference data (yields against the project rate, the legal
  cap and the peers; split terms; investor caps) over *every* product of the province and the
  plan, the rules on records (payout coverage, distinct investors, growth on the trend, mirrored
  legs at two banks) over every record. Their variants live in ``violations_institutions``; the
  products and investor accounts they need are new reference items the plan carries
  (``ViolationPlan.products``, ``.accounts``; ``push`` upserts them with the province's).
- A fund pool is a pattern over many movements and days: it is labelled from the injection that
  made it. Hard negatives are labelled from their injections too, one label per typology they
  resemble, and dropped (with a note in ``Injector.conflicts``) if the records ever made them a
  positive of that typology or their finding key is a positive's.

Labels follow the detectors' keys (DOMAIN.md), so an alert and a label pair up by typology and
key or by shared record ids: misappropriation and commingling per (account, Beijing day),
self_financing per (custody account, related account), reserve_shortfall per account and
unbroken run of short snapshots, large_value per (account, Beijing day, line), excess_return,
maturity_mismatch and investor_cap_breach per product (``product:<id>``), rapid_growth and
disguised_clearing per (institution, Beijing day) (``<institution>:<day>``), fund_pool per
injection; hard negatives take their typology's key where it has one of these forms (a hard
negative over several days takes its most conspicuous day), else the injection id. Thresholds come from models/thresholds.toml (the file, not the
environment, so that a seed always gives the same labels) unless the plan is given others.

Injected steps draw only from their own generators (one per injection), never from the feed's,
and name every channel, so the normal activity around them keeps its own random stream.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from functools import partial
from statistics import median
from typing import Any

import msgspec

from models.thresholds import Thresholds, load_thresholds
from schemas.fields import BEIJING, amount_to_cents, cents_to_text
from schemas.reference import Account, AccountRole, Institution, InstitutionType, Product, Relation
from services.simulator.activities import Action
from services.simulator.institution_truth import DAY_TYPOLOGIES, PRODUCT_TYPOLOGIES, InstitutionTruth
from services.simulator.ledger import HOLDS_CUSTOMER_MONEY, HVPS_FROM_CENTS, Event, Label, Movement, Party
from services.simulator.province import CUSTODY_TYPES, ExternalParty, Province
from services.simulator.rhythm import HOUR_WEIGHTS
from services.simulator.violations_base import (
    HARD_NEGATIVE,
    POSITIVE,
    Variant,
    ViolationLabel,
    _Bucket,
    _copy,
    _day_of,
    _iso,
    _merge,
    _ratio,
    _ts,
    _Unsuitable,
    _window,
)
from services.simulator.violations_institutions import (
    INSTITUTION_VARIANTS,
    InstitutionPlanning,
    InstitutionSteps,
    clashes,
    register_parties,
)
from services.simulator.violations_institutions import PREFERRED as _INSTITUTION_PREFERRED
from services.simulator.violations_pools import POOL_EXCLUSIVE, POOL_VARIANTS, PoolPlanning, PoolSteps
from services.simulator.world import World, draw_cents

TYPOLOGIES = (
    "misappropriation", "self_financing", "commingling", "reserve_shortfall", "large_value", "fund_pool",
    "excess_return", "maturity_mismatch", "investor_cap_breach", "rapid_growth", "disguised_clearing",
)  # fmt: skip

_PAYMENT = frozenset({InstitutionType.payment})
_HOLDER_TYPES = CUSTODY_TYPES | _PAYMENT
_ALL_TYPES = frozenset(InstitutionType)
_PROJECT_TYPES = frozenset({InstitutionType.equity_crowdfunding, InstitutionType.asset_management})

_PURPOSES: dict[InstitutionType, dict[str, str]] = {
    InstitutionType.p2p_lending: {"deposit": "出借资金充值", "loan": "借款放款", "payout": "出借本息回款", "fee": "平台服务费"},
    InstitutionType.equity_crowdfunding: {"deposit": "股权众筹认购款", "loan": "融资款划付", "payout": "投资收益分配", "fee": "融资顾问费"},
    InstitutionType.asset_management: {"deposit": "基金认购款", "loan": "投资款划付", "payout": "基金收益分配", "fee": "基金管理费"},
}  # fmt: skip
_RESERVE_FEE_PURPOSE = "手续费收入划转"  # the reserve sweep's wording (activities._collect_reserve_fees)
_UNINSTRUCTED_PURPOSES = {
    "own": ("资金调拨", "往来款", "备用金", ""),
    "related": ("借款", "往来款", "资金周转", ""),
    "outside": ("往来款", "投资款", "货款", ""),
}
# Amount bands in yuan: under misappropriation's high_amount, between high and critical, above.
_AMOUNT_BANDS = ((20_000, 95_000), (100_000, 950_000), (1_000_000, 6_000_000))


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("uninstructed_to_own", "misappropriation", POSITIVE, _HOLDER_TYPES, 1,
                "1-3 debits without instruction from custody/reserve to the institution's own account"),
        Variant("uninstructed_to_related", "misappropriation", POSITIVE, _HOLDER_TYPES, 1,
                "1-3 debits without instruction from custody/reserve to a related party's account"),
        Variant("uninstructed_to_outside", "misappropriation", POSITIVE, _HOLDER_TYPES, 1,
                "1-3 debits without instruction from custody/reserve to an unmonitored outside account"),
        Variant("fee_excess", "misappropriation", POSITIVE, _HOLDER_TYPES, 1,
                "instructed fees to own accounts above the contractual share of the 30-day inflow"),
        Variant("loan_to_related", "self_financing", POSITIVE, CUSTODY_TYPES, 2,
                "1-3 instructed custody 'loans' to a related party's account over a few days"),
        Variant("investors_to_own", "commingling", POSITIVE, CUSTODY_TYPES, 1,
                "3-12 investors paying into the institution's own operating account in a day"),
        Variant("own_to_custody", "commingling", POSITIVE, _HOLDER_TYPES, 1,
                "1-2 transfers of own funds into the custody or reserve account"),
        Variant("over_payout", "reserve_shortfall", POSITIVE, CUSTODY_TYPES, 1,
                "an instructed payout to an investor beyond what the investor is owed: the excess "
                "comes out of other customers' money, liabilities stay"),
        Variant("advance_settlement", "reserve_shortfall", POSITIVE, _PAYMENT, 1,
                "a merchant settled in advance from the reserve, beyond the customers' payments"),
        Variant("cash", "large_value", POSITIVE, _ALL_TYPES, 1,
                "cash deposits (or withdrawals) on an own account at or above 50,000 in a day"),
        Variant("natural_person_transfer", "large_value", POSITIVE, _ALL_TYPES, 1,
                "a related natural person sending at or above 500,000 in a day"),
        Variant("organisation_transfer", "large_value", POSITIVE, _ALL_TYPES, 1,
                "an own account paying a supplier at or above 2,000,000 in a day (funded first if need be)"),
        *POOL_VARIANTS,
        Variant("contractual_fee", "misappropriation", HARD_NEGATIVE, CUSTODY_TYPES, 1,
                "an instructed fee from custody to own within the contractual share",
                ("misappropriation",)),
        Variant("covered_high_yield", "excess_return", HARD_NEGATIVE, CUSTODY_TYPES, 1,
                "the highest declared yield of the province that its project rate still covers "
                "(reference data: no records)", ("excess_return",)),
        Variant("own_transfer_between_banks", "disguised_clearing", HARD_NEGATIVE, _ALL_TYPES, 1,
                "a payment institution moving its own money between its own accounts at two banks",
                ("disguised_clearing", "commingling")),
        Variant("mirrored_legs", "disguised_clearing", HARD_NEGATIVE, _ALL_TYPES, 1,
                "one transfer between monitored accounts at two banks (a shareholder's loan or capital to the "
                "institution): a debit record at one bank, a credit at the other, one label",
                ("disguised_clearing", "commingling")),
        Variant("large_loan", "self_financing", HARD_NEGATIVE, CUSTODY_TYPES, 1,
                "a large instructed loan from custody to an unrelated borrower",
                ("misappropriation", "self_financing")),
        Variant("below_line", "large_value", HARD_NEGATIVE, _ALL_TYPES, 1,
                "a natural person sending just under 500,000 in a day", ("large_value",)),
        *INSTITUTION_VARIANTS,
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Injection:
    """One planned violation or hard negative: ``times`` are its steps (Unix seconds, ascending),
    ``params`` the accounts and draws fixed when planning (amounts that depend on the state of
    the books are sized when the step runs)."""

    injection_id: str
    variant: str
    institution_id: str
    times: tuple[int, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def typology(self) -> str:
        return VARIANTS[self.variant].typology

    @property
    def kind(self) -> str:
        return VARIANTS[self.variant].kind

    def to_builtins(self) -> dict[str, Any]:
        return {
            "injection_id": self.injection_id,
            "variant": self.variant,
            "typology": self.typology,
            "kind": self.kind,
            "institution_id": self.institution_id,
            "times": [_iso(t) for t in self.times],
            "params": msgspec.to_builtins(dict(self.params)),
        }


def _file_thresholds() -> Thresholds:
    return load_thresholds(env={})


@dataclass(frozen=True)
class ViolationPlan:
    """What to inject over [``start``, ``end``) (Unix seconds) and the thresholds that decide the
    labels. ``skipped`` says what was asked for but found no suitable institution. A feed runs the
    steps that fall into the time it simulates; steps before its start never happen.

    ``products`` and ``accounts`` are reference items the injections need (new products with bad
    yields or split terms, new investor accounts): they go to the API with the province's reference
    data (``reference_payloads``). ``externals`` are new parties unknown to the reference data."""

    seed: int
    start: int
    end: int
    injections: tuple[Injection, ...] = ()
    thresholds: Thresholds = field(default_factory=_file_thresholds)
    skipped: tuple[str, ...] = ()
    products: tuple[Product, ...] = ()
    accounts: tuple[Account, ...] = ()
    externals: tuple[ExternalParty, ...] = ()

    def injector(self, world: World) -> Injector:
        return Injector(self, world)

    def count(self, typology: str | None = None, kind: str | None = None) -> int:
        return sum(
            1
            for inj in self.injections
            if (typology is None or inj.typology == typology) and (kind is None or inj.kind == kind)
        )

    def to_builtins(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "thresholds_version": self.thresholds.version,
            "injections": [inj.to_builtins() for inj in self.injections],
            "skipped": list(self.skipped),
            "reference": {
                "products": [msgspec.to_builtins(p) for p in self.products],
                "accounts": [msgspec.to_builtins(a) for a in self.accounts],
            },
            "unknown_accounts": len(self.externals),
        }

    def reference_payloads(self, province: Province) -> dict[str, list[dict]]:
        """The province's reference data with the plan's items upserted (same id: replaced; new:
        appended), keyed like ``Province.reference_payloads``."""
        payloads = province.reference_payloads()
        for kind, items, key in (
            ("products", self.products, "product_id"),
            ("accounts", self.accounts, "account_id"),
        ):
            if not items:
                continue
            extra = {getattr(item, key): msgspec.to_builtins(item) for item in items}
            merged = [extra.pop(item[key], item) for item in payloads[kind]]
            payloads[kind] = merged + list(extra.values())
        return payloads

    def all_products(self, province: Province) -> list[Product]:
        patched = {p.product_id: p for p in self.products}
        merged = [patched.pop(p.product_id, p) for p in province.products]
        return merged + list(patched.values())


# -- planning -------------------------------------------------------------------------------


def plan_violations(
    province: Province,
    seed: int = 7,
    *,
    start: datetime | None = None,
    days: float = 7.0,
    counts: Mapping[str, int] | None = None,
    typologies: Iterable[str] | None = None,
    institutions: Iterable[str] | None = None,
    hard_negatives: bool = True,
    thresholds: Thresholds | None = None,
    patterns: int = 0,
) -> ViolationPlan:
    """A plan over ``days`` from ``start`` (default: midnight of the province's ``as_of`` day, the
    feed's default start), the same for the same arguments.

    Every variant runs ``default_count`` times unless ``counts`` says otherwise (keyed by variant
    name, or by typology for all its positive variants; 0 leaves it out). ``typologies`` keeps
    only the positives of those typologies; ``hard_negatives=False`` leaves the hard negatives
    out; ``institutions`` limits the candidates. Institutions of a suitable type are drawn from
    the seed, the least used first, so injections spread over the province.

    ``patterns`` adds that many of each AMLSim-style laundering pattern among customers' accounts,
    labelled ``anomaly`` (and, unless ``hard_negatives=False``, as many of each lawful look-alike):
    a ``violations_patterns_run.PatternPlan``. 0 leaves the plan exactly as it is without them.
    """
    if days <= 0:
        raise ValueError("days must be above 0")
    if start is None:
        start = datetime.combine(province.as_of, time(0), BEIJING)
    if start.tzinfo is None:
        raise ValueError("start must carry a time zone")
    wanted = {name: variant.default_count for name, variant in VARIANTS.items()}
    if typologies is not None:
        keep = set(typologies)
        unknown = keep - set(TYPOLOGIES)
        if unknown:
            raise ValueError(f"unknown typologies: {sorted(unknown)}")
        for name, variant in VARIANTS.items():
            if variant.kind == POSITIVE and variant.typology not in keep:
                wanted[name] = 0
    if not hard_negatives:
        for name, variant in VARIANTS.items():
            if variant.kind == HARD_NEGATIVE:
                wanted[name] = 0
    for key, count in (counts or {}).items():
        if count < 0:
            raise ValueError("counts must not be negative")
        if key in VARIANTS:
            wanted[key] = count
        elif key in TYPOLOGIES:
            for name, variant in VARIANTS.items():
                if variant.kind == POSITIVE and variant.typology == key:
                    wanted[name] = count
        else:
            raise ValueError(f"{key!r} is neither a variant nor a typology")
    begin = int(start.timestamp())
    planner = _Planner(
        province,
        random.Random(f"fundwatch-violation-plan:{seed}"),
        begin,
        begin + int(days * 86_400),
        thresholds or _file_thresholds(),
        None if institutions is None else set(institutions),
    )
    for name, variant in VARIANTS.items():
        for _ in range(wanted[name]):
            planner.add(variant)
    plan = ViolationPlan(
        seed=seed,
        start=planner.start,
        end=planner.end,
        injections=tuple(planner.injections),
        thresholds=planner.thresholds,
        skipped=tuple(planner.skipped),
        products=tuple(planner.new_products),
        accounts=tuple(planner.new_accounts),
        externals=tuple(planner.new_externals),
    )
    if not patterns:
        return plan
    # Imported here: the patterns' injector builds on this module's.
    from services.simulator.violations_patterns_run import with_patterns

    return with_patterns(plan, province, patterns, lookalikes=hard_negatives)


class _Planner(InstitutionPlanning, PoolPlanning):
    def __init__(
        self,
        province: Province,
        rng: random.Random,
        start: int,
        end: int,
        thresholds: Thresholds,
        only: set[str] | None,
    ) -> None:
        self.p = province
        self.rng = rng
        self.start = start
        self.end = end
        self.thresholds = thresholds
        self.only = only
        self.injections: list[Injection] = []
        self.skipped: list[str] = []
        self.usage: Counter[str] = Counter()
        self.variants_at: dict[str, set[str]] = {}
        # Accounts some injection names, and those an injection needs to itself (a pool's day-end
        # balance, a person's day total under the line): no other injection may move money there.
        self.touched: set[str] = set()
        self.used_accounts: set[str] = set()
        first = datetime.fromtimestamp(start, BEIJING).date()
        last = datetime.fromtimestamp(end - 1, BEIJING).date()
        self.days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        related: dict[str, list[str]] = {}
        self.relation: dict[str, Relation] = {}
        for party in province.related_parties:
            for account in party.accounts:
                related.setdefault(party.institution_id, []).append(account)
                self.relation[account] = party.relation
        self.related = related
        self.outside_firms = [e.account_id for e in province.externals if not e.person]
        self.outside_persons = [e.account_id for e in province.externals if e.person]
        self.free_investors = list(province.accounts_of(None, AccountRole.investor))
        self._init_institution_planning()

    # -- helpers ---------------------------------------------------------------------------

    def own(self, iid: str) -> tuple[str, ...]:
        return self.p.accounts_of(iid, AccountRole.own_operating)

    def holder(self, inst: Institution) -> str:
        iid = inst.institution_id
        if inst.type is InstitutionType.payment:
            return self.p.accounts_of(iid, AccountRole.payment_reserve)[0]  # the main reserve
        return self.p.accounts_of(iid, AccountRole.customer_custody)[0]

    def persons(self, iid: str) -> list[str]:
        return [a for a in self.related.get(iid, ()) if a in self.p.natural_persons and a not in self.touched]

    def free(self, accounts: Iterable[str]) -> list[str]:
        """``accounts`` less those an exclusive injection holds."""
        return [a for a in accounts if a not in self.used_accounts]

    def pick_day(self, weekday: bool = True, span: int = 1) -> date:
        days = self.days[: max(1, len(self.days) - span + 1)]
        working = [d for d in days if d.weekday() < 5]
        return self.rng.choice(working if weekday and working else days)

    def moment(self, day: date, from_hour: float, to_hour: float) -> int:
        midnight = int(datetime.combine(day, time(0), BEIJING).timestamp())
        return midnight + self.rng.randrange(int(from_hour * 3600), int(to_hour * 3600))

    def band_amount(self, bands: tuple[tuple[int, int], ...], weights: tuple[float, ...]) -> int:
        """Whole yuan from one of ``bands``, rounded as people move money."""
        low, high = self.rng.choices(bands, weights=weights)[0]
        yuan = self.rng.uniform(low, high)
        step = 10_000 if yuan >= 1_000_000 else 1_000 if yuan >= 20_000 else 100
        return int(max(low, round(yuan / step) * step))

    def cfg(self, typology: str, inst: Institution) -> dict[str, Any]:
        return self.thresholds.get(typology, inst.type.value)

    # -- choosing the institution ----------------------------------------------------------

    def add(self, variant: Variant) -> None:
        planner = getattr(self, "plan_" + variant.name)
        candidates = [
            inst
            for inst in self.p.institutions
            if inst.type in variant.types
            and (self.only is None or inst.institution_id in self.only)
            and not self._clashes(variant.name, inst.institution_id)
        ]
        # Least used first; a variant's preferred types before the others (the issue's own-money
        # transfer is a payment institution's; large loans are projects', P2P caps them; cash
        # deposits are a developer's).
        preferred = _PREFERRED.get(variant.name, frozenset())
        self.rng.shuffle(candidates)
        candidates.sort(key=lambda inst: (inst.type not in preferred, self.usage[inst.institution_id]))
        for inst in candidates:
            # A planner that gives up leaves no new reference item behind.
            made = (
                len(self.new_products),
                len(self.new_accounts),
                len(self.new_externals),
                self.next_product,
            )
            try:
                times, params = planner(inst)
                if any(not self.start <= t < self.end for t in times):
                    raise _Unsuitable
            except _Unsuitable:
                del self.new_products[made[0] :], self.new_accounts[made[1] :], self.new_externals[made[2] :]
                self.next_product = made[3]
                continue
            number = len(self.injections) + 1
            injection = Injection(
                f"V{number:03d}-{variant.name}", variant.name, inst.institution_id, tuple(times), params
            )
            self.injections.append(injection)
            self.after_planning(variant, inst.institution_id, times)
            self.usage[inst.institution_id] += 1
            self.variants_at.setdefault(inst.institution_id, set()).add(variant.name)
            if variant.name in _EXCLUSIVE:
                self.used_accounts.add(params[_EXCLUSIVE[variant.name]])
            for key in ("account", "destination", "related", "own", "payer", "payee"):
                if isinstance(params.get(key), str):
                    self.touched.add(params[key])
            return
        self.skipped.append(f"{variant.name}: no suitable institution in the plan's period")

    def _clashes(self, name: str, iid: str) -> bool:
        # A contractual fee must stay lawful: no excess fee in the same custody account's window.
        there = self.variants_at.get(iid, set())
        if name == "contractual_fee":
            return "fee_excess" in there
        if name == "fee_excess":
            return "contractual_fee" in there
        return clashes(name, there)

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

    # -- self-financing --------------------------------------------------------------------

    def plan_loan_to_related(self, inst: Institution):
        iid, rng = inst.institution_id, self.rng
        accounts = self.free(self.related.get(iid, ()))
        if not accounts:
            raise _Unsuitable
        # Controllers and affiliates are the usual "borrowers".
        favoured = [
            a for a in accounts if self.relation[a] in (Relation.actual_controller, Relation.affiliate)
        ]
        related = rng.choice(favoured or accounts)
        count = rng.choices((1, 2, 3), weights=(0.4, 0.35, 0.25))[0]
        day = self.pick_day(span=count + 2)
        times = [self.moment(day, 9.5, 16.0)]
        for _ in range(count - 1):
            nxt = datetime.fromtimestamp(times[-1], BEIJING).date() + timedelta(days=1)
            while nxt.weekday() >= 5:
                nxt += timedelta(days=1)
            times.append(self.moment(nxt, 9.5, 16.0))
        amounts = [self.band_amount(((30_000, 95_000), (100_000, 950_000), (1_000_000, 8_000_000)), (0.2, 0.5, 0.3))
                   for _ in range(count)]  # fmt: skip
        return times, {"account": self.holder(inst), "related": related, "amounts_yuan": amounts}

    # -- commingling -----------------------------------------------------------------------

    def plan_investors_to_own(self, inst: Institution):
        iid, rng = inst.institution_id, self.rng
        products = self.p.products_by_institution.get(iid, ())
        pool = self.p.investor_pools.get(iid, ())
        if not products or len(pool) < 12:
            raise _Unsuitable
        count = rng.randint(3, 12)
        investors = rng.sample(pool, count)
        day = self.pick_day(weekday=False)
        times = sorted(self.moment(day, 8.5, 21.0) for _ in investors)
        return times, {
            "own": self.own(iid)[0],
            "investors": investors,
            "product_id": rng.choice(products).product_id,
            "purpose": _PURPOSES[inst.type]["deposit"],
        }

    def plan_own_to_custody(self, inst: Institution):
        rng = self.rng
        count = rng.choices((1, 2), weights=(0.7, 0.3))[0]
        day = self.pick_day()
        times = sorted(self.moment(day, 10.0, 16.0) for _ in range(count))
        amounts = [self.band_amount(((5_000, 95_000), (100_000, 900_000), (1_000_000, 3_000_000)), (0.3, 0.5, 0.2))
                   for _ in range(count)]  # fmt: skip
        if inst.type is InstitutionType.payment:
            purpose = "备付金补足"
        else:
            purpose = rng.choice(("逾期垫付款", "风险准备金划入", "代偿款"))
        return times, {
            "account": self.holder(inst),
            "own": self.own(inst.institution_id)[0],
            "amounts_yuan": amounts,
            "purpose": purpose,
        }

    # -- reserve shortfall -----------------------------------------------------------------

    def plan_over_payout(self, inst: Institution):
        bands = ((0.002, 0.009), (0.01, 0.049), (0.05, 0.19), (0.2, 0.3))
        band = self.rng.choices(bands, weights=(0.25, 0.35, 0.25, 0.15))[0]
        day = self.pick_day()
        return [self.moment(day, 10.0, 16.5)], {
            "account": self.holder(inst),
            "gap_ratio": round(self.rng.uniform(*band), 4),
        }

    def plan_advance_settlement(self, inst: Institution):
        merchants = self.p.merchants.get(inst.institution_id, ())
        if not merchants:
            raise _Unsuitable
        # A reserve earns fees all day, which close small gaps within hours: no tiny band here.
        band = self.rng.choices(((0.012, 0.049), (0.05, 0.19), (0.2, 0.3)), weights=(0.4, 0.4, 0.2))[0]
        day = self.pick_day()
        return [self.moment(day, 10.0, 16.5)], {
            "account": self.holder(inst),
            "merchant": self.rng.choice(merchants),
            "gap_ratio": round(self.rng.uniform(*band), 4),
        }

    # -- large value -----------------------------------------------------------------------

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

    # -- hard negatives --------------------------------------------------------------------

    def plan_contractual_fee(self, inst: Institution):
        day = self.pick_day()
        return [self.moment(day, 17.6, 17.95)], {
            "account": self.holder(inst),
            "own": self.own(inst.institution_id)[0],
            "share_of_limit": round(self.rng.uniform(0.5, 0.8), 4),
        }

    def plan_covered_high_yield(self, inst: Institution):
        """The highest declared yield in the province that its project still covers, below the
        legal cap and not an outlier among its peers: reference data, no records."""
        if not hasattr(self, "covered"):
            self.covered = self._covered_yields()
        planned = {i.params.get("product_id") for i in self.injections}
        for product, metrics in self.covered:
            # Not where another injection may pay a product's investors beyond its repayments.
            if product.product_id not in planned and not self._clashes(
                "covered_high_yield", product.institution_id
            ):
                if product.institution_id != inst.institution_id:
                    raise _Unsuitable
                return [], {"product_id": product.product_id, **metrics}
        raise _Unsuitable

    def _covered_yields(self) -> list[tuple[Any, dict[str, str]]]:
        found = []
        for inst in self.p.institutions_of_type(*CUSTODY_TYPES):
            cfg = self.cfg("excess_return", inst)
            cap = Fraction(str(cfg["lpr_one_year"])) * int(cfg["lpr_multiple"])
            peers = [float(p.declared_annual_yield) for p in self.p.products
                     if self.p.institution_by_id[p.institution_id].type is inst.type]  # fmt: skip
            mid = median(peers)
            mad = median(abs(y - mid) for y in peers) or 1e-9
            for product in self.p.products_by_institution.get(inst.institution_id, ()):
                declared = Fraction(product.declared_annual_yield)
                z = (float(declared) - mid) / (1.4826 * mad)
                if (
                    declared < Fraction(product.underlying_project_rate)
                    and declared < cap
                    and z < 0.85 * float(cfg["robust_z"])
                ):
                    found.append((declared, product.product_id, product, {
                        "declared_annual_yield": product.declared_annual_yield,
                        "underlying_project_rate": product.underlying_project_rate,
                        "peer_median": f"{mid:.4f}",
                        "robust_z": f"{z:.2f}",
                        "legal_cap": f"{float(cap):.4f}",
                    }))  # fmt: skip
        found.sort(key=lambda item: (-item[0], item[1]))
        return [(product, metrics) for _, _, product, metrics in found]

    def plan_own_transfer_between_banks(self, inst: Institution):
        own = self.free(self.own(inst.institution_id))
        banks = {self.p.account_by_id[a].bank_code: a for a in own}
        if len(banks) < 2:
            raise _Unsuitable
        first, second = self.rng.sample(sorted(banks.values()), 2)
        count = self.rng.choices((1, 2), weights=(0.7, 0.3))[0]
        day = self.pick_day()
        times = sorted(self.moment(day, 9.5, 16.0) for _ in range(count))
        return times, {
            "payer": first,
            "payee": second,
            "fractions": [round(self.rng.uniform(0.3, 0.6), 4) for _ in range(count)],
        }

    def plan_mirrored_legs(self, inst: Institution):
        iid = inst.institution_id
        pairs = [
            (r, o)
            for r in self.free(self.related.get(iid, ()))
            for o in self.free(self.own(iid))
            if self.p.account_by_id[r].bank_code != self.p.account_by_id[o].bank_code
        ]
        if not pairs:
            raise _Unsuitable
        related, own = self.rng.choice(pairs)
        day = self.pick_day()
        return [self.moment(day, 10.0, 15.0)], {
            "payer": related,
            "payee": own,
            "amount_cents": self.rng.randint(30, 300) * 1_000_000,
            "purpose": self.rng.choice(("股东借款", "股东增资款")),
        }

    def plan_large_loan(self, inst: Institution):
        """A project round: 3-5 large subscriptions to one product over a morning, then the loan
        of what they raised to a firm borrower 5-30 minutes after the last."""
        rng, iid = self.rng, inst.institution_id
        borrowers = self.p.accounts_of(iid, AccountRole.borrower)
        firms = [b for b in borrowers if b not in self.p.natural_persons]
        products = [
            product for product in self.p.products_by_institution.get(iid, ())
            if _ts(product.sale_start) <= self.start and _ts(product.sale_end) >= self.end
        ]  # fmt: skip
        pool = self.p.investor_pools.get(iid, ())
        if not firms or not products or len(pool) < 4:
            raise _Unsuitable
        # Firms subscribe project rounds; people join with what they can (up to 450,000 here).
        firms_first = sorted(pool, key=lambda a: (a in self.p.natural_persons, rng.random()))
        funders = firms_first[: rng.randint(3, 5)]
        amounts = [
            draw_cents(rng, 400_000, 0.1, 300_000, 450_000, step=1_000) if funder in self.p.natural_persons
            else draw_cents(rng, 1_800_000, 0.4, 800_000, 4_000_000, step=10_000)
            for funder in funders
        ]  # fmt: skip
        day = self.pick_day()
        times = sorted(self.moment(day, 9.5, 14.0) for _ in funders)
        times.append(times[-1] + rng.randrange(5 * 60, 30 * 60))
        return times, {
            "account": self.holder(inst),
            "product_id": rng.choice(products).product_id,
            "funders": funders,
            "funding_cents": amounts,
            "borrower": rng.choice(firms),
            "target_cents": rng.randint(220, 1200) * 1_000_000,
        }


_PREFERRED = {
    **_INSTITUTION_PREFERRED,
    "own_transfer_between_banks": _PAYMENT,
    "large_loan": _PROJECT_TYPES,
    "cash": frozenset({InstitutionType.real_estate}),
}
# Variants that need an account of their own: no other injection's flows may change their figures.
# Variant -> the parameter naming its account.
_EXCLUSIVE = {
    **POOL_EXCLUSIVE,
    "natural_person_transfer": "account",
    "below_line": "account",
    "mirrored_legs": "payer",
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


# -- running a plan -------------------------------------------------------------------------


@dataclass(slots=True)
class _ShortRun:
    account: str
    bucket: _Bucket = field(default_factory=_Bucket)
    max_gap: int = 0
    max_ratio: Fraction = Fraction(0)
    causes: list[str] = field(default_factory=list)


class Injector(InstitutionSteps, PoolSteps):
    """Runs a plan's steps in a feed and labels the feed's records (see the module docstring).

    ``source`` is the event source the feed adds; ``observe`` takes each tick's records;
    ``labels()`` is the ground truth so far; ``notes`` says, per injection, what a step could not
    do (e.g. a custody account too empty for the planned amount); ``conflicts`` the hard negatives
    dropped because the records made them positives.
    """

    def __init__(self, plan: ViolationPlan, world: World) -> None:
        self.plan = plan
        self.world = world
        p = self.province = world.province
        ids = [inj.injection_id for inj in plan.injections]
        if len(set(ids)) != len(ids):
            raise ValueError("injection ids must be unique")
        for inj in plan.injections:
            if inj.variant not in VARIANTS:
                raise ValueError(f"unknown variant {inj.variant!r}")
        self._due = sorted(
            (t, n, step) for n, inj in enumerate(plan.injections) for step, t in enumerate(inj.times)
        )
        self._due_times = [due[0] for due in self._due]
        self._state: dict[str, dict[str, Any]] = {i: {} for i in ids}
        self._rng = {i: random.Random(f"fundwatch-violations:{plan.seed}:{i}") for i in ids}
        self.notes: dict[str, list[str]] = {i: [] for i in ids}
        self.conflicts: list[str] = []
        self._moved: dict[str, list[tuple[str, str, int]]] = {i: [] for i in ids}
        self._record_injection: dict[str, str] = {}
        self._ledger_seen = len(world.ledger.labels)
        self._gap_cause: dict[str, str] = {}

        # The plan's new accounts join the world (and the reference data the oracles read).
        register_parties(world, list(plan.accounts), list(plan.externals))
        accounts = {a.account_id: a for a in (*p.accounts, *plan.accounts)}
        self._role = {aid: a.role for aid, a in accounts.items()}
        self._institution = {aid: a.institution_id for aid, a in accounts.items()}
        related: dict[str, set[str]] = {}
        for account in p.accounts:
            if account.role is AccountRole.related_party and account.institution_id:
                related.setdefault(account.institution_id, set()).add(account.account_id)
        for party in p.related_parties:
            related.setdefault(party.institution_id, set()).update(party.accounts)
        self._related = related
        self._type_of = {inst.institution_id: inst.type.value for inst in p.institutions}
        self._fee_limit: dict[str | None, Fraction] = {}
        self._lines: dict[str | None, dict[str, int]] = {}
        self._window_days = int(plan.thresholds.get("misappropriation").get("fee_window_days", 30))

        # The oracles' state (the module docstring says what each labels).
        self._unins: dict[tuple[str, str], _Bucket] = {}
        self._fees: dict[str, dict[str, _Bucket]] = {}
        self._inflow: dict[str, Counter[str]] = {}
        self._to_related: dict[tuple[str, str], _Bucket] = {}
        self._comm: dict[tuple[str, str], _Bucket] = {}
        self._lv: dict[tuple[str, str, str], _Bucket] = {}
        self._lv_crossed: dict[tuple[str, str, str], tuple[int, str]] = {}
        self._lv_day = ""
        self._short_open: dict[str, _ShortRun] = {}
        self._short_done: list[_ShortRun] = []
        # The product- and institution-level typologies (institution_truth).
        self._truth = InstitutionTruth(
            plan.thresholds, {i.institution_id: i.type for i in p.institutions}, accounts,
            plan.all_products(p), self._record_injection.get, lambda i: self._typology[i],
            plan.start, plan.end,
        )  # fmt: skip
        self._typology = {inj.injection_id: inj.typology for inj in plan.injections}
        self._named_products = {inj.params.get("product_id") for inj in plan.injections} - {None}
        # Products an injection let pay out more than their borrowers repaid (own money topped up).
        self._product_cause: dict[str, str] = {}
        # The product behind each product-level injection (reference-only labels have no records).
        self._product_episode = {
            inj.params["product_id"]: inj.injection_id
            for inj in plan.injections
            if inj.kind == POSITIVE and inj.typology in PRODUCT_TYPOLOGIES and "product_id" in inj.params
        }

    # -- the steps -------------------------------------------------------------------------

    def source(self, w: World, start: int, end: int) -> Iterator[tuple[int, Action]]:
        lo, hi = bisect_left(self._due_times, start), bisect_left(self._due_times, end)
        for at, n, step in self._due[lo:hi]:
            yield at, partial(self._run, n, step)

    def _run(self, n: int, step: int, w: World, at: int) -> list[Event]:
        inj = self.plan.injections[n]
        handler: Callable[..., list[Event]] = getattr(self, "_step_" + inj.variant)
        return handler(inj, self._state[inj.injection_id], self._rng[inj.injection_id], step, at)

    def _note(self, inj: Injection, step: int, text: str) -> list[Event]:
        self.notes[inj.injection_id].append(f"step {step}: {text}")
        return []

    def _party(self, account_id: str) -> Party:
        return self.world.parties[account_id]

    def _move(
        self,
        inj: Injection,
        rng: random.Random,
        at: int,
        payer: str | Party,
        payee: str | Party,
        cents: int,
        purpose: str,
        *,
        instruction: str | None = None,
        product_id: str | None = None,
        channel: str | None = None,
        payer_liability: int | None = None,
        payee_liability: int | None = None,
    ) -> Movement:
        payer = payer if isinstance(payer, Party) else self._party(payer)
        payee = payee if isinstance(payee, Party) else self._party(payee)
        if channel is None:
            # Chosen here, from the injection's generator: the ledger would draw from the feed's.
            if payer.bank_code == payee.bank_code:
                channel = "INTERNAL"
            elif cents >= HVPS_FROM_CENTS:
                channel = "HVPS"
            else:
                channel = "IBPS" if rng.random() < 0.6 else "BEPS"
        return Movement(
            at, payer, payee, cents, purpose, instruction, product_id, channel,
            payer_liability, payee_liability, (inj.injection_id,),
        )  # fmt: skip

    def _available(self, iid: str, account: str) -> int:
        """Customer money a step may move without overdrawing the account later."""
        w = self.world
        if self._role.get(account) is AccountRole.customer_custody:
            return sum(book.raised + book.repaid for book in w.books[iid])
        # A reserve pays withdrawals and settlements out of unsettled top-ups; the rest is the float.
        return max(0, w.ledger.balance[account] - w.unsettled.get(account, 0))

    def _take(self, iid: str, account: str, cents: int) -> None:
        """Money leaving custody leaves the product books too, so later loans and payouts fit."""
        if self._role.get(account) is not AccountRole.customer_custody:
            return
        left = cents
        for attr in ("raised", "repaid"):
            for book in self.world.books[iid]:
                taken = min(getattr(book, attr), left)
                setattr(book, attr, getattr(book, attr) - taken)
                left -= taken

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

    def _step_loan_to_related(self, inj, st, rng, step, at) -> list[Event]:
        iid = inj.institution_id
        book = max(self.world.books[iid], key=lambda b: (b.raised, b.product_id))
        cents = min(inj.params["amounts_yuan"][step] * 100, int(book.raised * 0.7))
        cents = cents // 1_000_000 * 1_000_000 if cents >= 10_000_000 else cents // 100_000 * 100_000
        if cents < 1_000_000:
            return self._note(inj, step, "skipped: the products had under 10,000.00 raised to lend")
        book.raised -= cents
        kind = self.province.institution_by_id[iid].type
        return [self._move(inj, rng, at, inj.params["account"], inj.params["related"], cents,
                           _PURPOSES[kind]["loan"], instruction=self.world.instruction("LN"),
                           product_id=book.product_id)]  # fmt: skip

    def _step_investors_to_own(self, inj, st, rng, step, at) -> list[Event]:
        investor = self._party(inj.params["investors"][step])
        if investor.person:
            cents = draw_cents(rng, 20_000, 1.0, 1_000, 200_000, step=100)
        else:
            cents = draw_cents(rng, 200_000, 0.8, 50_000, 1_500_000, step=1_000)
        return [self._move(inj, rng, at, investor, inj.params["own"], cents, inj.params["purpose"],
                           product_id=inj.params["product_id"])]  # fmt: skip

    def _step_own_to_custody(self, inj, st, rng, step, at) -> list[Event]:
        iid, account, own = inj.institution_id, inj.params["account"], inj.params["own"]
        cents = min(inj.params["amounts_yuan"][step] * 100, self.world.ledger.balance[own] // 2)
        cents = cents // 10_000 * 10_000
        if cents < 100_000:
            return self._note(inj, step, "skipped: the own account held under 2,000.00")
        w = self.world
        if self._role.get(account) is AccountRole.customer_custody:
            # Money to pay investors whose borrowers did not repay (垫付): payouts may use it.
            book = max(w.books[iid], key=lambda b: (len(b.positions), b.product_id))
            book.repaid += cents
            self._product_cause.setdefault(book.product_id, inj.injection_id)
        else:
            w.unsettled[account] += cents
        return [self._move(inj, rng, at, own, account, cents, inj.params["purpose"])]

    def _step_over_payout(self, inj, st, rng, step, at) -> list[Event]:
        iid, account, w = inj.institution_id, inj.params["account"], self.world
        books = [b for b in w.books[iid] if b.positions]
        if not books:
            return self._note(inj, step, "skipped: no investor positions")
        book = max(books, key=lambda b: (b.raised + b.repaid, b.product_id))
        investor = max(book.positions, key=lambda a: (book.positions[a], a))
        available = self._available(iid, account)
        gross = 1 + book.declared_yield * book.term_days / 365
        owed = min(int(book.positions[investor] * gross), int(available * 0.3))
        gap = min(int(w.ledger.liabilities[account] * inj.params["gap_ratio"]), int(available * 0.5) - owed)
        if gap < 10_000 or owed < 0:
            return self._note(inj, step, "skipped: too little in custody for a visible gap")
        principal = min(book.positions[investor], int(owed / gross))
        if book.positions[investor] - principal <= 0:
            del book.positions[investor]
        else:
            book.positions[investor] -= principal
        self._take(iid, account, owed + gap)
        self._gap_cause[account] = inj.injection_id
        purpose = _PURPOSES[self.province.institution_by_id[iid].type]["payout"]
        return [self._move(inj, rng, at, account, investor, owed + gap, purpose,
                           instruction=w.instruction("PO"), product_id=book.product_id,
                           payer_liability=owed)]  # fmt: skip

    def _step_advance_settlement(self, inj, st, rng, step, at) -> list[Event]:
        account, w = inj.params["account"], self.world
        balance, owed = w.ledger.balance[account], w.ledger.liabilities[account]
        surplus = max(0, balance - owed)  # fees earned since the last sweep
        backed = int(w.unsettled[account] * rng.uniform(0.2, 0.5))
        gap = surplus + int(owed * inj.params["gap_ratio"])
        if backed + gap > balance * 0.6:
            gap = int(balance * 0.6) - backed
        if gap <= surplus + 10_000:
            return self._note(inj, step, "skipped: too little in the reserve for a visible gap")
        w.unsettled[account] -= backed
        self._gap_cause[account] = inj.injection_id
        return [self._move(inj, rng, at, account, inj.params["merchant"], backed + gap, "商户结算款",
                           instruction=w.instruction("ST"), payer_liability=backed)]  # fmt: skip

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

    def _step_own_transfer_between_banks(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        cents = int(self.world.ledger.balance[p["payer"]] * p["fractions"][step]) // 1_000_000 * 1_000_000
        if cents < 1_000_000:
            return self._note(inj, step, "skipped: the own account held too little")
        return [self._move(inj, rng, at, p["payer"], p["payee"], cents, "自有资金调拨")]

    def _step_mirrored_legs(self, inj, st, rng, step, at) -> list[Event]:
        p = inj.params
        return [self._move(inj, rng, at, p["payer"], p["payee"], p["amount_cents"], p["purpose"])]

    def _step_large_loan(self, inj, st, rng, step, at) -> list[Event]:
        p, iid = inj.params, inj.institution_id
        book = next(b for b in self.world.books[iid] if b.product_id == p["product_id"])
        kind = self.province.institution_by_id[iid].type
        if step < len(p["funders"]):
            # The subscriptions are ordinary deposits, tagged apart so they are not the negative,
            # and held for the project (normal loans do not lend them out meanwhile).
            funder, cents = p["funders"][step], p["funding_cents"][step]
            st["committed"] = st.get("committed", 0) + cents
            book.positions[funder] = book.positions.get(funder, 0) + cents
            deposit = self._move(inj, rng, at, funder, p["account"], cents, _PURPOSES[kind]["deposit"],
                                 product_id=book.product_id)  # fmt: skip
            return [replace(deposit, labels=(f"{inj.injection_id}#funding",))]
        committed = st.get("committed", 0)
        cents = min(p["target_cents"], committed) // 1_000_000 * 1_000_000
        book.raised += committed - cents  # what the project did not need is lent as usual
        if cents < 100_000_000:
            return self._note(inj, step, "skipped: under 1,000,000.00 raised for the project")
        book.outstanding[p["borrower"]] = book.outstanding.get(p["borrower"], 0) + cents
        return [self._move(inj, rng, at, p["account"], p["borrower"], cents, _PURPOSES[kind]["loan"],
                           instruction=self.world.instruction("LN"), product_id=book.product_id)]  # fmt: skip

    # -- thresholds ------------------------------------------------------------------------

    def fee_limit(self, institution_id: str | None) -> Fraction:
        kind = self._type_of.get(institution_id or "")
        if kind not in self._fee_limit:
            cfg = self.plan.thresholds.get("misappropriation", kind)
            self._fee_limit[kind] = Fraction(str(cfg.get("fee_share_max", "0.05")))
        return self._fee_limit[kind]

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

    def observe(self, records_by_bank: Mapping[str, list[dict]]) -> None:
        """Take one tick's records (the feed calls this after every tick)."""
        labels = self.world.ledger.labels
        for label in labels[self._ledger_seen :]:
            injection = label.labels[0] if label.labels else None
            if injection in self._moved:
                for bank, record_id in label.records:
                    self._record_injection[record_id] = injection
                    self._moved[injection].append((bank, record_id, label.at))
        self._ledger_seen = len(labels)
        for bank, records in records_by_bank.items():
            for record in records:
                if record["kind"] == "balance":
                    self._see_balance(bank, record)
                else:
                    self._see_transaction(bank, record)
                    self._truth.see(bank, record)
        self._truth.settle()

    def _see_balance(self, bank: str, r: dict) -> None:
        account = r["account_id"]
        if "customer_liabilities" not in r or self._role.get(account) not in HOLDS_CUSTOMER_MONEY:
            return
        balance, owed = amount_to_cents(r["balance"]), amount_to_cents(r["customer_liabilities"])
        run = self._short_open.get(account)
        if balance >= owed:
            if run is not None:
                self._short_done.append(self._short_open.pop(account))
            return
        if run is None:
            run = self._short_open[account] = _ShortRun(account)
        run.bucket.add(bank, r["record_id"], r["as_of"], 0)
        gap = owed - balance
        run.max_gap = max(run.max_gap, gap)
        run.max_ratio = max(run.max_ratio, Fraction(gap, owed) if owed else Fraction(1))
        cause = self._gap_cause.get(account)
        if cause and cause not in run.causes:
            run.causes.append(cause)

    def _see_transaction(self, bank: str, r: dict) -> None:
        account, stamp = r["account_id"], r["booked_at"]
        day, cents, rid = stamp[:10], amount_to_cents(r["amount"]), r["record_id"]
        credit = r["direction"] == "credit"
        self._see_large_value(bank, r, account, day, cents, credit)
        role = self._role.get(account)
        institution = self._institution.get(account)
        counterparty = r["counterparty_account"]
        if role in HOLDS_CUSTOMER_MONEY:
            if credit:
                self._inflow.setdefault(account, Counter())[day] += cents
                if (
                    self._role.get(counterparty) is AccountRole.own_operating
                    and self._institution.get(counterparty) == institution
                ):
                    self._comm.setdefault((account, day), _Bucket()).add(
                        bank, rid, stamp, cents, "own_funds_into_custody"
                    )
                return
            destination = self._destination(institution, counterparty)
            if not r.get("instruction_id"):
                self._unins.setdefault((account, day), _Bucket()).add(bank, rid, stamp, cents, destination)
            elif destination == "own":
                self._fees.setdefault(account, {}).setdefault(day, _Bucket()).add(bank, rid, stamp, cents)
            elif destination == "related":
                self._to_related.setdefault((account, counterparty), _Bucket()).add(bank, rid, stamp, cents)
        elif (
            role is AccountRole.own_operating
            and credit
            and self._role.get(counterparty) is AccountRole.investor
        ):
            self._comm.setdefault((account, day), _Bucket()).add(
                bank, rid, stamp, cents, "investors_into_own"
            )

    def _destination(self, institution: str | None, account: str) -> str:
        if (
            self._role.get(account) is AccountRole.own_operating
            and self._institution.get(account) == institution
        ):
            return "own"
        if institution and account in self._related.get(institution, ()):
            return "related"
        return "other"

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

    def labels(self) -> list[Label]:
        """The ground truth for the records made so far, ordered by window start."""
        positives = [
            *self._misappropriation_labels(),
            *self._self_financing_labels(),
            *self._commingling_labels(),
            *self._shortfall_labels(),
            *self._large_value_labels(),
            *self._truth.labels({**self._product_cause, **self._product_episode}),
        ]
        out = positives + self._episode_labels(positives)
        out.sort(key=lambda lab: (lab.window_start, lab.typology, lab.label_id))
        return list(out)

    def _episode(self, ids: Iterable[tuple[str, str]]) -> str | None:
        for _, record_id in ids:
            found = self._record_injection.get(record_id)
            if found:
                return found
        return None

    def _make(
        self,
        typology: str,
        kind: str,
        what: str,
        key: str,
        account: str | None,
        bucket: _Bucket,
        metrics: dict[str, Any],
        note: str,
        *,
        episode: str | None = None,
        institution: str | None = None,
        product_id: str | None = None,
        label_id: str | None = None,
    ) -> ViolationLabel:
        first = bucket.first or _iso(self.plan.start)
        return ViolationLabel(
            labels=(typology, f"{kind}:{what}"),
            records=tuple(bucket.ids),
            institution_id=institution or self._institution.get(account or ""),
            at=int(datetime.fromisoformat(first).timestamp()),
            label_id=label_id or f"{typology}/{key}",
            typology=typology,
            kind=kind,
            what=what,
            key=key,
            account_id=account,
            record_ids=tuple(record_id for _, record_id in bucket.ids),
            window_start=first,
            window_end=bucket.last or _iso(self.plan.end),
            episode_id=episode if episode is not None else self._episode(bucket.ids),
            product_id=product_id,
            metrics=metrics,
            note=note,
        )

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

    def _role_name(self, account: str) -> str:
        role = self._role.get(account)
        return role.value if role is not None else "account"

    def _self_financing_labels(self) -> list[ViolationLabel]:
        out = []
        for (account, counterparty), bucket in sorted(self._to_related.items()):
            metrics = {
                "total": cents_to_text(bucket.cents),
                "count": bucket.count,
                "related_account": counterparty,
            }
            note = (f"{bucket.count} instructed outflow(s) from {self._role_name(account)} to a related "
                    f"party's account, {cents_to_text(bucket.cents)} in all")  # fmt: skip
            out.append(self._make("self_financing", POSITIVE, "instructed_to_related", f"{account}:{counterparty}",
                                  account, bucket, metrics, note))  # fmt: skip
        return out

    def _commingling_labels(self) -> list[ViolationLabel]:
        out = []
        for (account, day), bucket in sorted(self._comm.items()):
            signals = sorted(bucket.tags)
            metrics = {"day": day, "total": cents_to_text(bucket.cents), "count": bucket.count,
                       **{tag: cents_to_text(cents) for tag, cents in bucket.tags.items()}}  # fmt: skip
            note = f"{bucket.count} credit(s) on {self._role_name(account)} on {day}: {', '.join(signals)}"
            out.append(self._make("commingling", POSITIVE, "+".join(signals), f"{account}:{day}",
                                  account, bucket, metrics, note))  # fmt: skip
        return out

    def _shortfall_labels(self) -> list[ViolationLabel]:
        runs = sorted(
            [*self._short_done, *self._short_open.values()], key=lambda run: (run.bucket.first, run.account)
        )
        seen: Counter[str] = Counter()
        out = []
        for run in runs:
            seen[run.account] += 1
            metrics = {
                "snapshots": run.bucket.count,
                "max_gap": cents_to_text(run.max_gap),
                "max_gap_ratio": _ratio(run.max_ratio),
                "open": run.account in self._short_open and self._short_open[run.account] is run,
            }
            cause = run.causes[0] if run.causes else None
            note = (f"{run.bucket.count} snapshot(s) of {self._role_name(run.account)} below the customer "
                    f"liabilities, gap up to {metrics['max_gap']} ({metrics['max_gap_ratio']})"
                    + (f"; opened by {', '.join(run.causes)}" if run.causes else ""))  # fmt: skip
            key = f"{run.account}:{run.bucket.first}"
            out.append(self._make("reserve_shortfall", POSITIVE, "balance_below_liabilities", key,
                                  run.account, run.bucket, metrics, note, episode=cause))  # fmt: skip
        return out

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

    def _episode_labels(self, positives: list[ViolationLabel]) -> list[ViolationLabel]:
        """Fund pools and hard negatives, from their injections. A hard negative whose records
        ended up in a positive of its typology, or whose finding key is a positive's (a product;
        an institution on a day it moved money), is dropped and noted in ``conflicts``."""
        positive_ids: dict[str, set[str]] = {}
        positive_keys: dict[str, set[str]] = {}
        for label in positives:
            positive_ids.setdefault(label.typology, set()).update(label.record_ids)
            positive_keys.setdefault(label.typology, set()).add(label.key)
        out: list[ViolationLabel] = []
        self.conflicts = []
        for inj in self.plan.injections:
            variant = VARIANTS[inj.variant]
            moved = self._moved[inj.injection_id]
            bucket = _Bucket()
            for bank, record_id, at in moved:
                bucket.add(bank, record_id, _iso(at), 0)
            if variant.kind == POSITIVE:
                if variant.typology == "fund_pool" and moved:
                    out.append(self._pool_label(inj, bucket))
                continue
            if inj.variant == "covered_high_yield":
                bucket = _Bucket(first=_iso(self.plan.start), last=_iso(self.plan.end))
            elif not moved:
                continue
            for typology in variant.not_typologies:
                key, touched = self._negative_keys(inj, typology, moved)
                label = self._make(
                    typology, HARD_NEGATIVE, inj.variant, key, _main_account(inj), bucket,
                    _public_params(inj), variant.description, episode=inj.injection_id,
                    institution=inj.institution_id, product_id=inj.params.get("product_id"),
                    label_id=f"{typology}/hard_negative/{inj.injection_id}",
                )  # fmt: skip
                if positive_ids.get(typology, set()) & set(label.record_ids):
                    self.conflicts.append(f"{label.label_id}: its records are a {typology} positive")
                elif positive_keys.get(typology, set()) & touched:
                    self.conflicts.append(f"{label.label_id}: its key is a {typology} positive")
                else:
                    out.append(label)
        return out

    def _negative_keys(
        self, inj: Injection, typology: str, moved: list[tuple[str, str, int]]
    ) -> tuple[str, set[str]]:
        """A hard negative's key (the detector's, where the typology has one per product or per
        institution and day; else the injection id) and every such key it touches."""
        if typology in PRODUCT_TYPOLOGIES and inj.params.get("product_id"):
            key = f"product:{inj.params['product_id']}"
            return key, {key}
        if typology in DAY_TYPOLOGIES and moved:
            days = sorted({_day_of(at) for _, _, at in moved})
            touched = {f"{inj.institution_id}:{day}" for day in days}
            return f"{inj.institution_id}:{inj.params.get('key_day') or days[0]}", touched
        return inj.injection_id, set()

    def report(self) -> list[dict[str, Any]]:
        """Per injection: how many records it made and what its steps could not do."""
        return [
            {
                "injection_id": inj.injection_id,
                "variant": inj.variant,
                "institution_id": inj.institution_id,
                "steps": len(inj.times),
                "records": len(self._moved[inj.injection_id]),
                "notes": list(self.notes[inj.injection_id]),
            }
            for inj in self.plan.injections
        ]


def _main_account(inj: Injection) -> str | None:
    for key in ("account", "own", "payer"):
        if key in inj.params:
            return inj.params[key]
    return None


def _public_params(inj: Injection) -> dict[str, Any]:
    keep = ("declared_annual_yield", "underlying_project_rate", "peer_median", "robust_z", "legal_cap",
            "share_of_limit", "purpose", "product_id", "term_days", "underlying_term_days", "repaid_cents",
            "weekday_level_cents", "key_day", "payer_account")  # fmt: skip
    return {k: v for k, v in inj.params.items() if k in keep}


def _cross_border(r: dict) -> bool:
    # The convention the records carry (models/detectors/large_value.is_cross_border).
    if str(r.get("counterparty_bank") or "").upper().startswith("X-"):
        return True
    return r.get("channel") == "OTHER" and "跨境" in (r.get("purpose") or "")


def _rest_of_day(ts: int) -> float:
    """Activity still to come today over activity so far, by the day rhythm."""
    local = datetime.fromtimestamp(ts, BEIJING)
    part = (local.minute * 60 + local.second) / 3600
    done = sum(HOUR_WEIGHTS[: local.hour]) + HOUR_WEIGHTS[local.hour] * part
    rest = HOUR_WEIGHTS[local.hour] * (1 - part) + sum(HOUR_WEIGHTS[local.hour + 1 :])
    return rest / done if done > 0 else 1.0


# -- files ----------------------------------------------------------------------------------
