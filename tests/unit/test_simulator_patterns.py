"""AMLSim-style patterns (services/simulator/violations_patterns*): each shape is what it claims,
the plan is deterministic and opt-in, the labels name the accounts and the time span, and no
rule of the in-process detectors fires on them."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from types import SimpleNamespace

import msgspec
import pytest

from models.detectors import DetectContext, StaticReferences
from models.evaluation import fold_alert_events
from models.thresholds import load_thresholds
from schemas.fields import BEIJING, amount_to_cents
from schemas.reference import AccountRole
from services.simulator import Feed, build_province, plan_violations
from services.simulator.pipeline import InProcessPipeline
from services.simulator.violations import HARD_NEGATIVE, POSITIVE, ViolationPlan
from services.simulator.violations_patterns import LOOKALIKES, SHAPES
from services.simulator.violations_patterns_base import LINE_SHARE, PatternLabel, named_accounts
from services.simulator.violations_patterns_run import PatternPlan

START = datetime(2026, 11, 2, 0, 0, tzinfo=BEIJING)  # a Monday: month-start days and a payday follow
DAYS = 4
SEED = 11
# The detectors' run: short and sparse, so that both feeds go through them in a few seconds.
RUN_DAYS = 3
INTENSITY = 200.0
THRESHOLDS = load_thresholds(env={})


@pytest.fixture(scope="module")
def province():
    return build_province(SEED, 7)


@pytest.fixture(scope="module")
def plans(province):
    """Three plans of three patterns of each shape and look-alike, for the shape checks."""
    return [plan_violations(province, seed, start=START, days=DAYS, patterns=3) for seed in (SEED, 12, 13)]


def _by_shape(plans):
    found = defaultdict(list)
    for plan in plans:
        for pattern in plan.patterns:
            found[pattern.shape].append(pattern)
    return found


def _day(ts: int):
    return datetime.fromtimestamp(ts, BEIJING).date()


# -- the shapes -----------------------------------------------------------------------------


def test_every_shape_and_look_alike_is_planned(plans):
    for plan in plans:
        assert isinstance(plan, PatternPlan)
        assert not [s for s in plan.skipped if s.split(":")[0] in (*SHAPES, *LOOKALIKES)]
        counts = defaultdict(int)
        for pattern in plan.patterns:
            counts[pattern.shape] += 1
            assert pattern.kind == (POSITIVE if pattern.shape in SHAPES else HARD_NEGATIVE)
            assert pattern.pattern == (
                pattern.shape if pattern.kind == POSITIVE else LOOKALIKES[pattern.shape]
            )
        assert counts == dict.fromkeys((*SHAPES, *LOOKALIKES), 3)


def test_a_cycle_closes_and_shrinks_by_its_fees(plans):
    for pattern in _by_shape(plans)["cycle"]:
        ring, hops = pattern.roles["ring"], pattern.hops
        assert 3 <= len(ring) == len(hops) <= 6 and len(set(ring)) == len(ring)
        assert [h.payer for h in hops] == list(ring)
        assert [h.payee for h in hops] == [*ring[1:], ring[0]]  # back to where it started
        for before, after in zip(hops, hops[1:], strict=False):
            assert after.at > before.at
            assert 0.95 * before.cents <= after.cents < before.cents
        assert hops[-1].at - hops[0].at <= 4 * 86_400


def test_scatter_gather_has_one_source_and_one_collector(plans):
    for pattern in _by_shape(plans)["scatter_gather"]:
        (source,), middle, (collector,) = (
            pattern.roles[r] for r in ("source", "intermediaries", "collector")
        )
        assert 3 <= len(middle) <= 8 and len({source, collector, *middle}) == len(middle) + 2
        got, sent, received_at = defaultdict(int), defaultdict(int), {}
        for hop in pattern.hops:
            if hop.payer == source:
                assert hop.payee in middle and hop.payee not in received_at  # one payment each
                got[hop.payee] += hop.cents
                received_at[hop.payee] = hop.at
            else:
                assert hop.payer in middle and hop.payee == collector
                assert hop.at > received_at[hop.payer]  # forwarded after it came in
                sent[hop.payer] += hop.cents
        assert set(got) == set(sent) == set(middle)
        assert all(0.95 * got[m] <= sent[m] < got[m] for m in middle)


def test_gather_scatter_pays_out_of_one_hub_after_collecting(plans):
    for pattern in _by_shape(plans)["gather_scatter"]:
        payers, (hub,), payees = (pattern.roles[r] for r in ("payers", "hub", "payees"))
        assert 3 <= len(payers) <= 8 and 3 <= len(payees) <= 8
        assert not set(payers) & set(payees) and hub not in (*payers, *payees)
        ins = [h for h in pattern.hops if h.payee == hub]
        outs = [h for h in pattern.hops if h.payer == hub]
        assert len(ins) + len(outs) == len(pattern.hops)
        assert sorted(h.payer for h in ins) == sorted(payers) and sorted(h.payee for h in outs) == sorted(
            payees
        )
        assert min(h.at for h in outs) > max(h.at for h in ins)
        assert sum(h.cents for h in outs) < sum(h.cents for h in ins)


def test_a_stack_pays_every_account_of_the_next_layer_once_it_has_received(plans):
    for pattern in _by_shape(plans)["stack"]:
        layers = [pattern.roles[f"layer_{n}"] for n in range(len(pattern.roles))]
        assert 3 <= len(layers) <= 4 and all(2 <= len(layer) <= 4 for layer in layers)
        edges = {(h.payer, h.payee) for h in pattern.hops}
        assert len(edges) == len(pattern.hops)
        expected = {
            (a, b) for upper, lower in zip(layers, layers[1:], strict=False) for a in upper for b in lower
        }
        assert edges == expected
        last_in = defaultdict(int)
        for hop in pattern.hops:
            last_in[hop.payee] = max(last_in[hop.payee], hop.at)
        for hop in pattern.hops:
            assert hop.payer in layers[0] or hop.at > last_in[hop.payer]


def test_the_look_alikes_have_their_lawful_shapes(plans, province):
    shapes = _by_shape(plans)
    for pattern in shapes["payroll_run"]:
        (employer,) = pattern.roles["employer"]
        assert (
            employer not in province.natural_persons and employer not in province.account_by_id
        )  # a new firm
        assert {h.payer for h in pattern.hops} == {employer} and len(pattern.hops) >= 8
        assert pattern.hops[-1].at - pattern.hops[0].at <= 40 * 60
        assert {h.purpose for h in pattern.hops} <= {"代发工资", "工资"}
    for pattern in shapes["family_circle"]:
        ring = pattern.roles["ring"]
        assert [h.payee for h in sorted(pattern.hops, key=lambda h: ring.index(h.payer))] == [
            *ring[1:],
            ring[0],
        ]
        assert len({_day(h.at) for h in pattern.hops}) == 1 and _day(pattern.hops[0].at).day <= 5
        assert all(h.cents % 50_000 == 0 for h in pattern.hops)  # round sums
    for pattern in shapes["rent_collection"]:
        (landlord,) = pattern.roles["landlord"]
        rents = [h for h in pattern.hops if h.payee == landlord]
        bills = [h for h in pattern.hops if h.payer == landlord]
        assert sorted(h.payer for h in rents) == sorted(pattern.roles["tenants"]) and len(bills) == 3
        assert min(h.at for h in bills) > max(h.at for h in rents)
        assert {h.purpose for h in rents} == {"房租"}


def test_amounts_and_hours_vary_and_every_pattern_stays_under_the_lines(plans, province):
    for plan in plans:
        positives = [p for p in plan.patterns if p.kind == POSITIVE]
        cents = [h.cents for p in positives for h in p.hops]
        assert any(c % 10_000 for c in cents) and any(c % 10_000 == 0 for c in cents)  # round and not
        assert len({datetime.fromtimestamp(h.at, BEIJING).hour for p in positives for h in p.hops}) >= 8
        new = {a.account_id: a for a in plan.accounts}
        for pattern in plan.patterns:
            assert all(plan.start <= h.at < plan.end for h in pattern.hops)
            assert [h.at for h in pattern.hops] == sorted(h.at for h in pattern.hops)
            sums = defaultdict(int)
            for hop in pattern.hops:
                sums[(hop.payer, _day(hop.at), "out")] += hop.cents
                sums[(hop.payee, _day(hop.at), "in")] += hop.cents
            for (account, _, _), total in sums.items():
                known = province.account_by_id.get(account) or new.get(account)
                if known is None:
                    continue  # at a bank outside the feed
                person = account in province.natural_persons or known.role is AccountRole.investor
                line = THRESHOLDS.get("large_value")["natural_transfer" if person else "non_natural_transfer"]
                assert total <= amount_to_cents(str(line)) * LINE_SHARE, (pattern.injection_id, account)


def test_patterns_take_quiet_accounts_no_other_injection_names(plans, province):
    pooled = {a for pool in province.investor_pools.values() for a in pool}
    for plan in plans:
        named = named_accounts(inj.params for inj in plan.injections)
        new = {a.account_id for a in plan.accounts}
        seen: set[str] = set()
        for pattern in plan.patterns:
            monitored = [a for a in pattern.accounts if a in province.account_by_id or a in new]
            assert not seen & set(pattern.accounts), pattern.injection_id  # one pattern per account
            seen.update(pattern.accounts)
            assert not named & set(pattern.accounts)
            for account in monitored:
                known = province.account_by_id.get(account)
                assert account in new or (
                    known.role is AccountRole.investor
                    and known.institution_id is None
                    and account not in pooled
                )


# -- the plan -------------------------------------------------------------------------------


def test_patterns_are_deterministic_for_a_seed_and_differ_between_seeds(province, plans):
    again = plan_violations(province, SEED, start=START, days=DAYS, patterns=3)
    assert again == plans[0] and again.to_builtins() == plans[0].to_builtins()
    assert plans[1].to_builtins()["patterns"] != plans[0].to_builtins()["patterns"]
    msgspec.json.encode(plans[0].to_builtins())


def test_without_patterns_the_plan_is_the_plan_it_was(province, plans):
    plain = plan_violations(province, SEED, start=START, days=DAYS)
    assert type(plain) is ViolationPlan and plain == plan_violations(
        province, SEED, start=START, days=DAYS, patterns=0
    )
    with_them = plans[0]
    assert with_them.injections == plain.injections and with_them.products == plain.products
    assert with_them.externals == plain.externals and with_them.thresholds == plain.thresholds
    assert with_them.accounts[: len(plain.accounts)] == plain.accounts
    assert with_them.skipped[: len(plain.skipped)] == plain.skipped
    assert "patterns" not in plain.to_builtins()
    no_lookalikes = plan_violations(province, SEED, start=START, days=DAYS, patterns=1, hard_negatives=False)
    assert {p.kind for p in no_lookalikes.patterns} == {POSITIVE}
    with pytest.raises(ValueError):
        plan_violations(province, SEED, start=START, days=DAYS, patterns=-1)


# -- the feed, the labels and the detectors -------------------------------------------------


def _run(province, plan):
    """The feed of ``plan`` through the in-process detectors (as ``fundwatch eval --engine direct``)."""
    feed = Feed(province, SEED, START, intensity=INTENSITY, violations=plan)
    reference = plan.reference_payloads(province)
    ctx = DetectContext(
        StaticReferences(reference["accounts"], reference["institutions"], reference["related-parties"],
                         reference["products"]),
        THRESHOLDS,
    )  # fmt: skip
    pipe = InProcessPipeline(ctx)
    pipe.review(i["institution_id"] for i in reference["institutions"])
    records: list[dict] = []
    for _ in range(RUN_DAYS * 24):
        made = feed.advance(3600)
        records.extend(r for bank in sorted(made) for r in made[bank])
        for batch in feed.batches(made):
            pipe.push(batch)
    return SimpleNamespace(
        feed=feed, labels=feed.labels, records=records, alerts=fold_alert_events(pipe.events)
    )


@pytest.fixture(scope="module")
def runs(province):
    # Only the patterns and the lawful look-alikes of every kind beside them: the detectors' share
    # of a few seconds goes to what the patterns could change.
    plain = plan_violations(province, SEED, start=START, days=RUN_DAYS, typologies=[])
    plan = plan_violations(province, SEED, start=START, days=RUN_DAYS, typologies=[], patterns=1)
    return SimpleNamespace(plan=plan, with_patterns=_run(province, plan), without=_run(province, plain))


def test_labels_name_the_accounts_and_the_time_span(runs, province):
    plan, run = runs.plan, runs.with_patterns
    monitored = set(province.account_by_id) | {a.account_id for a in plan.accounts}
    labels = {label.episode_id: label for label in run.labels if label.typology == "anomaly"}
    assert set(labels) == {p.injection_id for p in plan.patterns}
    by_id = {r["record_id"]: r for r in run.records}
    for pattern in plan.patterns:
        label = labels[pattern.injection_id]
        assert isinstance(label, PatternLabel)
        assert (label.kind, label.what, label.pattern) == (pattern.kind, pattern.shape, pattern.pattern)
        assert label.labels == ("anomaly", f"{pattern.kind}:{pattern.shape}")
        expected_id = (
            "anomaly/hard_negative/" if pattern.kind == HARD_NEGATIVE else "anomaly/"
        ) + pattern.injection_id
        assert label.label_id == expected_id and label.key == pattern.injection_id
        assert label.accounts == pattern.accounts and label.account_id == pattern.accounts[0]
        assert label.metrics["roles"] == {role: list(accounts) for role, accounts in pattern.roles.items()}
        records = [by_id[rid] for rid in label.record_ids]
        assert {r["account_id"] for r in records} <= set(pattern.accounts)
        assert {r["counterparty_account"] for r in records} <= set(pattern.accounts)
        # every transfer booked, once per monitored side
        sides = sum((h.payer in monitored) + (h.payee in monitored) for h in pattern.hops)
        assert len(records) == sides and len(set(label.record_ids)) == sides
        assert label.window_start == min(r["booked_at"] for r in records) == records[0]["booked_at"]
        assert label.window_end == max(r["booked_at"] for r in records)
        assert datetime.fromisoformat(label.window_start).timestamp() == pattern.hops[0].at
        assert datetime.fromisoformat(label.window_end).timestamp() == pattern.hops[-1].at
        written = msgspec.json.decode(msgspec.json.encode(label))  # as labels.jsonl holds it
        assert written["pattern"] == pattern.pattern and written["accounts"] == list(pattern.accounts)


def test_the_patterns_leave_every_other_record_as_it_was(runs):
    mine = {
        rid for label in runs.with_patterns.labels if label.typology == "anomaly" for rid in label.record_ids
    }
    rest = [{k: v for k, v in r.items() if k != "record_id"} for r in runs.with_patterns.records
            if r["record_id"] not in mine]  # fmt: skip
    before = [{k: v for k, v in r.items() if k != "record_id"} for r in runs.without.records]
    key = lambda r: msgspec.json.encode(r, order="sorted")  # noqa: E731
    assert sorted(rest, key=key) == sorted(before, key=key)
    others = [label for label in runs.with_patterns.labels if label.typology != "anomaly"]
    assert [(l.label_id, len(l.record_ids)) for l in others] == [  # noqa: E741
        (l.label_id, len(l.record_ids))
        for l in runs.without.labels  # noqa: E741
    ]


def test_no_rule_fires_on_the_patterns(runs):
    plan, run = runs.plan, runs.with_patterns
    accounts = {a for p in plan.patterns for a in p.accounts}
    records = {rid for label in run.labels if label.typology == "anomaly" for rid in label.record_ids}
    assert run.alerts, "the detectors ran and found the lawful province's large values"
    assert {a.alert_id for a in run.alerts} == {a.alert_id for a in runs.without.alerts}
    assert not [a.alert_id for a in run.alerts if set(a.data.get("accounts") or ()) & accounts]
    assert not [a.alert_id for a in run.alerts if a.record_ids & records]
    # the rules' own ground truth agrees: no positive of any typology holds a pattern's record
    assert not [c for c in run.feed.injector.conflicts if c.startswith("P")]
    assert not [l for l in run.labels if l.kind == POSITIVE and l.typology != "anomaly"  # noqa: E741
                and set(l.record_ids) & records]  # fmt: skip
    # quiet accounts: nothing but the patterns moves their money
    assert {r["record_id"] for r in run.records if r["account_id"] in accounts} == records
