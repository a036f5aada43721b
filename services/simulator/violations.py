"""Injected violations and hard negatives, with ground-truth labels, deterministic from a seed.

A ``ViolationPlan`` says what happens, to which institution and when: a tuple of ``Injection``s,
each one variant of a typology (``VARIANTS``) with its scheduled steps and the accounts and
draws chosen when planning. ``plan_violations`` draws one from a seed; a hand-written plan works
the same way. ``Feed(..., violations=plan)`` runs it: the steps come due as one more event source
beside the normal ones and book ``Movement``s tagged with the injection id, and every tick's
records pass by the plan's ``Injector``, which labels them. ``Feed.labels`` is then a list of
``ViolationLabel``s and ``push.write_files(..., violations=plan)`` writes them to ``labels.jsonl``.

Where the parts are: this module holds the plan; ``violations_planner`` the planner (``_Planner``:
choosing the institution); ``violations_catalogue`` the typologies, the variants in planning order
and ``Injection``; ``violations_injector`` the ``Injector``. Each typology group's variants,
planning (a mixin of ``_Planner``) and steps and labels (a mixin of ``Injector``) are a module of
their own: ``violations_misappropriation``, ``violations_self_financing``, ``violations_reserves``
(commingling and reserve shortfall), ``violations_large_value``, ``violations_pools``,
``violations_clearing`` (disguised clearing), and for the product- and institution-level
typologies ``violations_excess_return``, ``violations_maturity_mismatch`` and ``violations_growth``
(investor cap breach, rapid growth), whose mixins join those of ``violations_institutions``.
``violations_base`` is what they all share.

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

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import msgspec

from models.thresholds import Thresholds, load_thresholds
from schemas.fields import BEIJING
from schemas.reference import Account, Product
from services.simulator.province import ExternalParty, Province
from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE, ViolationLabel, _iso
from services.simulator.violations_catalogue import TYPOLOGIES, VARIANTS, Injection
from services.simulator.violations_injector import Injector
from services.simulator.violations_planner import _Planner
from services.simulator.world import World

__all__ = [
    "HARD_NEGATIVE",
    "POSITIVE",
    "TYPOLOGIES",
    "VARIANTS",
    "Injection",
    "Injector",
    "ViolationLabel",
    "ViolationPlan",
    "plan_violations",
]


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
