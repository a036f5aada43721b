"""Running the AMLSim-style patterns of ``violations_patterns`` in a feed, and their labels.

``with_patterns`` turns a ``ViolationPlan`` into a ``PatternPlan``: the same plan (its injections,
thresholds, reference items untouched) and the patterns beside it. Its injector is a
``PatternInjector``: the plan's ``Injector`` with the patterns' hops as more steps. It labels the
records of each pattern with one ``PatternLabel`` of typology ``anomaly``: a positive for a
shape, a hard negative for a look-alike (``anomaly/hard_negative/<id>``, as the other hard
negatives are labelled). Its ``conflicts`` also list any pattern whose records a rule's ground
truth (the injector's oracles over the whole feed) counts as a positive: a pattern some rule names
is no anomaly-only case.

Kept apart from ``violations``, which imports this module only when a plan asks for patterns:
without them ``plan_violations`` builds exactly the plan it built before.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial
from typing import Any

from schemas.fields import BEIJING, cents_to_text
from services.simulator.activities import Action
from services.simulator.ledger import Event, Label, Movement
from services.simulator.province import Province
from services.simulator.violations import Injector, ViolationPlan
from services.simulator.violations_base import HARD_NEGATIVE, POSITIVE, ViolationLabel, _Bucket, _iso
from services.simulator.violations_patterns import LOOKALIKES, PatternPlanning
from services.simulator.violations_patterns_base import (
    TYPOLOGY,
    PatternInjection,
    PatternLabel,
    named_accounts,
)
from services.simulator.world import World

_LOOKALIKE_NOTES = {
    "payroll_run": "wages from a company's account to its staff in one payday batch",
    "family_circle": "relatives sending each other round monthly sums at month start",
    "rent_collection": "a landlord's month-start rents in, then the mortgage and the bills out",
}


@dataclass(frozen=True)
class PatternPlan(ViolationPlan):
    """A ``ViolationPlan`` with AMLSim-style patterns beside its injections."""

    patterns: tuple[PatternInjection, ...] = ()

    def injector(self, world: World) -> PatternInjector:
        return PatternInjector(self, world)

    def to_builtins(self) -> dict[str, Any]:
        return {**super().to_builtins(), "patterns": [p.to_builtins() for p in self.patterns]}


def with_patterns(
    plan: ViolationPlan, province: Province, count: int, *, lookalikes: bool = True
) -> PatternPlan:
    """``plan`` with ``count`` patterns of each shape (and, with ``lookalikes``, ``count`` of each
    look-alike) among accounts none of its injections names, over the plan's period; the accounts
    the patterns open join the plan's new reference accounts."""
    if count < 0:
        raise ValueError("patterns must not be negative")
    known = set(province.account_by_id) | set(province.external_by_id)
    taken = named_accounts(inj.params for inj in plan.injections) & known
    taken |= {account.account_id for account in plan.accounts} | {
        party.account_id for party in plan.externals
    }
    planning = PatternPlanning(province, plan.seed, plan.start, plan.end, plan.thresholds, taken)
    patterns, skipped = planning.plan(count, lookalikes)
    same = {f.name: getattr(plan, f.name) for f in fields(ViolationPlan)}
    same["skipped"] = (*plan.skipped, *skipped)
    same["accounts"] = (*plan.accounts, *planning.new_accounts)
    return PatternPlan(**same, patterns=tuple(patterns))


class PatternInjector(Injector):
    """The plan's injector, plus the patterns' hops as steps and their labels (see the module
    docstring)."""

    def __init__(self, plan: PatternPlan, world: World) -> None:
        super().__init__(plan, world)
        ids = [p.injection_id for p in plan.patterns]
        if len(set(ids)) != len(ids) or set(ids) & set(self._state):
            raise ValueError("pattern ids must be unique and differ from the injections'")
        self.patterns = plan.patterns
        self._hops = sorted(
            (hop.at, n, step)
            for n, pattern in enumerate(plan.patterns)
            for step, hop in enumerate(pattern.hops)
        )
        self._hop_times = [due[0] for due in self._hops]
        self._pattern_moved: dict[str, list[tuple[str, str, int]]] = {i: [] for i in ids}

    def source(self, w: World, start: int, end: int) -> Iterator[tuple[int, Action]]:
        yield from super().source(w, start, end)
        lo, hi = bisect_left(self._hop_times, start), bisect_left(self._hop_times, end)
        for at, n, step in self._hops[lo:hi]:
            yield at, partial(self._book_hop, n, step)

    def _book_hop(self, n: int, step: int, w: World, at: int) -> list[Event]:
        pattern = self.patterns[n]
        hop = pattern.hops[step]
        # The channel was fixed when planning: the ledger would draw it from the feed's generator.
        return [Movement(at, self._party(hop.payer), self._party(hop.payee), hop.cents, hop.purpose,
                         channel=hop.channel, labels=(pattern.injection_id,))]  # fmt: skip

    def observe(self, records_by_bank: Mapping[str, list[dict]]) -> None:
        # The base class moves its mark past the ledger's new labels: read them before it does.
        fresh = self.world.ledger.labels[self._ledger_seen :]
        super().observe(records_by_bank)
        for label in fresh:
            moved = self._pattern_moved.get(label.labels[0]) if label.labels else None
            if moved is not None:
                moved.extend((bank, record_id, label.at) for bank, record_id in label.records)

    def labels(self) -> list[Label]:
        out = super().labels()  # also starts ``conflicts`` afresh
        by_rule: dict[str, set[str]] = {}
        for label in out:
            if isinstance(label, ViolationLabel) and label.kind == POSITIVE:
                for record_id in label.record_ids:
                    by_rule.setdefault(record_id, set()).add(label.label_id)
        for pattern in self.patterns:
            moved = self._pattern_moved[pattern.injection_id]
            if not moved:
                continue
            named = sorted({rule for _, record_id, _ in moved for rule in by_rule.get(record_id, ())})
            if named:
                self.conflicts.append(f"{pattern.injection_id}: records in rule positives {', '.join(named)}")
            out.append(self._pattern_label(pattern, moved))
        out.sort(key=lambda lab: (lab.window_start, lab.typology, lab.label_id))
        return out

    def _pattern_label(self, pattern: PatternInjection, moved: list[tuple[str, str, int]]) -> PatternLabel:
        bucket = _Bucket()
        for bank, record_id, at in moved:
            bucket.add(bank, record_id, _iso(at), 0)
        hops = pattern.hops
        span_h = (hops[-1].at - hops[0].at) / 3600
        metrics = {
            "pattern": pattern.pattern,
            "roles": {role: list(accounts) for role, accounts in pattern.roles.items()},
            "transfers": len(hops),
            "total": cents_to_text(sum(hop.cents for hop in hops)),
            "first_amount": cents_to_text(hops[0].cents),
            "last_amount": cents_to_text(hops[-1].cents),
            "span_hours": round(span_h, 2),
            "distinct_hours": len({datetime.fromtimestamp(hop.at, BEIJING).hour for hop in hops}),
        }
        shape = pattern.shape.replace("_", "-")
        note = (f"{shape}: {len(hops)} transfers among {len(pattern.accounts)} accounts, {metrics['total']} in all, "
                f"over {span_h:.1f} h")  # fmt: skip
        if pattern.kind == HARD_NEGATIVE:
            note = f"{_LOOKALIKE_NOTES[pattern.shape]} (looks like {LOOKALIKES[pattern.shape]}): {note}"
            label_id = f"{TYPOLOGY}/hard_negative/{pattern.injection_id}"
        else:
            label_id = f"{TYPOLOGY}/{pattern.injection_id}"
        main = pattern.main_account
        return PatternLabel(
            labels=(TYPOLOGY, f"{pattern.kind}:{pattern.shape}"),
            records=tuple(bucket.ids),
            institution_id=self._institution.get(main),
            at=int(datetime.fromisoformat(bucket.first).timestamp()),
            label_id=label_id,
            typology=TYPOLOGY,
            kind=pattern.kind,
            what=pattern.shape,
            key=pattern.injection_id,  # an anomaly alert's key is a window no plan knows: pair by records
            account_id=main,
            record_ids=tuple(record_id for _, record_id in bucket.ids),
            window_start=bucket.first,
            window_end=bucket.last,
            episode_id=pattern.injection_id,
            metrics=metrics,
            note=note,
            pattern=pattern.pattern,
            accounts=pattern.accounts,
        )

    def report(self) -> list[dict[str, Any]]:
        return [
            *super().report(),
            *(
                {
                    "injection_id": p.injection_id,
                    "variant": p.shape,
                    "institution_id": None,
                    "steps": len(p.hops),
                    "records": len(self._pattern_moved[p.injection_id]),
                    "notes": [],
                }
                for p in self.patterns
            ),
        ]
