"""The ``Injector``: it runs a ``ViolationPlan``'s steps in a feed and labels the feed's records
(``violations``' module docstring says where the truth comes from). Each typology's steps, its
watch on the records where it has one of its own, and its labels are mixins from the typology
modules; what is here is what they share: the due steps, a movement tagged with its injection,
the money a step may take, the watch on every transaction, the labels from injections (fund pools,
hard negatives) and the report.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from fractions import Fraction
from functools import partial
from typing import TYPE_CHECKING, Any

from schemas.fields import amount_to_cents
from schemas.reference import AccountRole
from services.simulator.activities import Action
from services.simulator.institution_truth import DAY_TYPOLOGIES, PRODUCT_TYPOLOGIES, InstitutionTruth
from services.simulator.ledger import HOLDS_CUSTOMER_MONEY, HVPS_FROM_CENTS, Event, Label, Movement, Party
from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE, ViolationLabel, _Bucket, _day_of, _iso
from services.simulator.violations_catalogue import VARIANTS, Injection
from services.simulator.violations_clearing import ClearingSteps
from services.simulator.violations_institutions import InstitutionSteps, register_parties
from services.simulator.violations_large_value import LargeValueSteps
from services.simulator.violations_misappropriation import MisappropriationSteps
from services.simulator.violations_pools import PoolSteps
from services.simulator.violations_reserves import ReserveSteps, _ShortRun
from services.simulator.violations_self_financing import SelfFinancingSteps
from services.simulator.world import World

if TYPE_CHECKING:
    from services.simulator.violations import ViolationPlan


class Injector(
    MisappropriationSteps,
    SelfFinancingSteps,
    ReserveSteps,
    LargeValueSteps,
    ClearingSteps,
    InstitutionSteps,
    PoolSteps,
):
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

    def _role_name(self, account: str) -> str:
        role = self._role.get(account)
        return role.value if role is not None else "account"

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
