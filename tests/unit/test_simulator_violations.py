"""Injected violations: deterministic, valid records, labels that point at them, positives past the
thresholds (recomputed here from the records), hard negatives lawful, the normal feed untouched."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from fractions import Fraction
from statistics import median
from types import SimpleNamespace

import msgspec
import pytest

from models.thresholds import load_thresholds
from schemas.fields import BEIJING, amount_to_cents, parse_time
from schemas.records import Balance, BatchSchema, Transaction
from schemas.reference import AccountRole, Product
from services.simulator import Feed, build_province, write_files
from services.simulator.violations import (
    HARD_NEGATIVE,
    POSITIVE,
    TYPOLOGIES,
    VARIANTS,
    ViolationLabel,
    ViolationPlan,
    plan_violations,
)

INTENSITY = 1000.0
START = datetime(2026, 11, 2, 0, 0, tzinfo=BEIJING)  # a Monday
DAYS = 3
THRESHOLDS = load_thresholds(env={})
# Variants that change reference data only (no records).
REFERENCE_ONLY = {"covered_high_yield", "yield_above_project", "yield_above_legal_cap", "peer_outlier_yield",
                  "term_split"}  # fmt: skip
# The default feed (province 7, feed seed 7, START, intensity 1000, 30 hours), hashed by ``_digest``
# before the violations code existed: without a plan the feed must stay byte for byte the same.
# Taken again when each product came to lend to its own borrowers (province._borrowers_by_product),
# a change of the normal activity itself.
DEFAULT_FEED_SHA256 = "28087e0de96a03ba23e4a91b908856c783ffc7a0f991133b128ca021ac9682a4"
DEFAULT_FEED_RECORDS = 12068


def _digest(records: dict[str, list[dict]]) -> str:
    h = hashlib.sha256()
    for bank in sorted(records):
        for record in records[bank]:
            h.update(msgspec.json.encode(record, order="sorted"))
            h.update(b"\n")
    return h.hexdigest()


@pytest.fixture(scope="module")
def province():
    return build_province(7)


@pytest.fixture(scope="module")
def plan(province):
    return plan_violations(province, 7, start=START, days=DAYS)


@pytest.fixture(scope="module")
def run(province, plan):
    feed = Feed(province, 7, START, intensity=INTENSITY, violations=plan)
    records = feed.advance(DAYS * 86_400)
    flat = [(bank, r) for bank, items in records.items() for r in items]
    by_id = {r["record_id"]: (bank, r) for bank, r in flat}
    labels = feed.labels
    assert all(isinstance(label, ViolationLabel) for label in labels)
    return SimpleNamespace(feed=feed, records=records, flat=flat, by_id=by_id, labels=labels)


def _role(province, account_id):
    account = province.account_by_id.get(account_id)
    return account.role if account is not None else None


def _institution(province, account_id):
    account = province.account_by_id.get(account_id)
    return account.institution_id if account is not None else None


def _related(province, institution_id) -> set[str]:
    found = {a.account_id for a in province.accounts
             if a.role is AccountRole.related_party and a.institution_id == institution_id}  # fmt: skip
    for party in province.related_parties:
        if party.institution_id == institution_id:
            found.update(party.accounts)
    return found


def _txns(run, account_id=None):
    return [
        r
        for _, r in run.flat
        if r["kind"] == "transaction" and (account_id is None or r["account_id"] == account_id)
    ]


def _cents(record) -> int:
    return amount_to_cents(record["amount"])


def _window(day: str, days: int) -> set[str]:
    last = date.fromisoformat(day)
    return {(last - timedelta(days=n)).isoformat() for n in range(days)}


def _fee_share(province, run, account_id, day) -> tuple[int, int, Fraction]:
    """Instructed debits to the institution's own accounts and credits, over the fee window to day."""
    cfg = THRESHOLDS.get(
        "misappropriation", province.institution_by_id[_institution(province, account_id)].type.value
    )
    window = _window(day, int(cfg["fee_window_days"]))
    fees = inflow = 0
    iid = _institution(province, account_id)
    for r in _txns(run, account_id):
        if r["booked_at"][:10] not in window:
            continue
        if r["direction"] == "credit":
            inflow += _cents(r)
        elif r.get("instruction_id") and _role(province, r["counterparty_account"]) is AccountRole.own_operating \
                and _institution(province, r["counterparty_account"]) == iid:  # fmt: skip
            fees += _cents(r)
    return fees, inflow, Fraction(str(cfg["fee_share_max"]))


def _labels(run, typology, kind=POSITIVE):
    return [label for label in run.labels if label.typology == typology and label.kind == kind]


# -- the normal feed stays as it was --------------------------------------------------------


def test_the_default_feed_is_byte_identical_to_before(province):
    feed = Feed(province, 7, START, intensity=INTENSITY)
    records = feed.advance(30 * 3600)
    assert sum(len(items) for items in records.values()) == DEFAULT_FEED_RECORDS
    assert _digest(records) == DEFAULT_FEED_SHA256
    assert feed.labels == [] and feed.injector is None


def test_an_empty_plan_changes_no_record_and_labels_the_normal_large_values(province):
    plain = Feed(province, 3, START, intensity=500.0).advance(86_400)
    empty = ViolationPlan(seed=3, start=int(START.timestamp()), end=int(START.timestamp()) + 86_400)
    feed = Feed(province, 3, START, intensity=500.0, violations=empty)
    assert feed.advance(86_400) == plain
    labels = feed.labels
    assert labels and {label.typology for label in labels} == {"large_value"}
    assert all(label.kind == POSITIVE and label.episode_id is None for label in labels)


# -- the plan -------------------------------------------------------------------------------


def test_the_plan_is_deterministic_and_covers_every_variant(province, plan):
    again = plan_violations(province, 7, start=START, days=DAYS)
    assert again == plan and again.to_builtins() == plan.to_builtins()
    other = plan_violations(province, 8, start=START, days=DAYS)
    assert other.to_builtins()["injections"] != plan.to_builtins()["injections"]
    # Growth needs min_history_days of trend before it: a 3-day plan has no day for it (the long
    # plan below has).
    growth = {name for name, v in VARIANTS.items() if v.typology == "rapid_growth" and v.kind == POSITIVE}
    assert sorted(plan.skipped) == sorted(
        f"{name}: no suitable institution in the plan's period" for name in growth
    )
    assert Counter(inj.variant for inj in plan.injections) == {
        name: variant.default_count for name, variant in VARIANTS.items() if name not in growth
    }
    for inj in plan.injections:
        assert province.institution_by_id[inj.institution_id].type in VARIANTS[inj.variant].types
        assert all(plan.start <= t < plan.end for t in inj.times)
        assert list(inj.times) == sorted(inj.times)
    assert {inj.typology for inj in plan.injections if inj.kind == POSITIVE} == set(TYPOLOGIES) - {
        "rapid_growth"
    }
    fee_at = {inj.institution_id for inj in plan.injections if inj.variant == "fee_excess"}
    contractual_at = {inj.institution_id for inj in plan.injections if inj.variant == "contractual_fee"}
    assert not fee_at & contractual_at
    msgspec.json.encode(plan.to_builtins())


def test_plan_arguments_select_what_is_injected(province):
    only = plan_violations(
        province, 7, start=START, days=DAYS, typologies=["fund_pool"], hard_negatives=False
    )
    assert {inj.variant for inj in only.injections} == {"pool_related_party", "pool_own_account", "pool_week"}
    more = plan_violations(province, 7, start=START, days=DAYS, counts={"self_financing": 4, "cash": 0},
                           hard_negatives=False)  # fmt: skip
    assert Counter(inj.variant for inj in more.injections)["loan_to_related"] == 4
    assert not [inj for inj in more.injections if inj.variant == "cash"]
    custody = [i.institution_id for i in province.institutions if i.type.value == "p2p_lending"][:2]
    limited = plan_violations(province, 7, start=START, days=DAYS, institutions=custody,
                              typologies=["misappropriation"], hard_negatives=False)  # fmt: skip
    assert limited.injections and {inj.institution_id for inj in limited.injections} <= set(custody)
    with pytest.raises(ValueError):
        plan_violations(province, 7, counts={"no_such_thing": 1})
    with pytest.raises(ValueError):
        plan_violations(province, 7, typologies=["no_such_typology"])
    products = plan_violations(province, 7, start=START, days=DAYS, typologies=["excess_return"],
                               hard_negatives=False)  # fmt: skip
    assert {VARIANTS[inj.variant].typology for inj in products.injections} == {"excess_return"}
    assert len(products.products) == 3 and not products.accounts  # three new products, no investors


def test_plans_vary_how_far_past_the_line(province):
    """Across seeds some positives sit at the line, others far past it."""
    cash_totals, pools_in, below = [], [], []
    line = amount_to_cents(THRESHOLDS.get("large_value")["cash"])
    natural = amount_to_cents(THRESHOLDS.get("large_value")["natural_transfer"])
    for seed in range(1, 13):
        p = plan_violations(province, seed, start=START, days=DAYS)
        for inj in p.injections:
            if inj.variant == "cash":
                cash_totals.append(sum(inj.params["amounts_cents"]))
            if inj.variant.startswith("pool_"):
                pools_in.append(sum(1 for step in inj.params["steps"] if step[0] == "in"))
            if inj.variant == "below_line":
                below.append(sum(inj.params["amounts_cents"]))
    assert min(cash_totals) == line and max(cash_totals) > line
    min_in = int(THRESHOLDS.get("fund_pool")["min_distinct_in"])
    assert min(pools_in) <= min_in + 5 and max(pools_in) >= 30 and min(pools_in) > min_in
    assert all(natural - 2_000_000 <= total < natural for total in below)


# -- the feed with violations ---------------------------------------------------------------


def test_the_same_seed_gives_the_same_records_and_labels(province):
    def once(seed):
        feed = Feed(
            province,
            4,
            START,
            intensity=400.0,
            violations=plan_violations(province, seed, start=START, days=2),
        )
        return feed.advance(2 * 86_400), msgspec.json.encode(feed.labels)

    first = once(4)
    assert once(4) == first
    assert once(5) != first


def test_every_record_still_decodes_into_the_contract_types(province, plan, run):
    decoder = msgspec.json.Decoder(Transaction | Balance)
    accounts = {**province.account_by_id, **{a.account_id: a for a in plan.accounts}}
    for bank, record in run.flat:
        decoder.decode(msgspec.json.encode(record))
        assert accounts[record["account_id"]].bank_code == bank
    for batch in run.feed.batches(run.records, max_records=2000):
        msgspec.json.decode(msgspec.json.encode(batch), type=BatchSchema)


def test_labels_point_at_records_that_were_pushed(province, run):
    ids = [label.label_id for label in run.labels]
    assert len(ids) == len(set(ids))
    for label in run.labels:
        assert label.kind in (POSITIVE, HARD_NEGATIVE)
        assert label.labels == (label.typology, f"{label.kind}:{label.what}")
        assert label.record_ids == tuple(rid for _, rid in label.records)
        for bank, record_id in label.records:
            assert run.by_id[record_id][0] == bank
        assert label.window_start <= label.window_end
        assert label.window_start.endswith("+08:00")
        if label.kind == HARD_NEGATIVE or label.typology == "fund_pool":
            assert label.institution_id
        else:  # investors tied to no platform have large values too
            assert label.institution_id == _institution(province, label.account_id)
    msgspec.json.encode(run.labels)


def test_every_injection_made_records_and_a_label_of_its_typology(plan, run):
    report = {item["injection_id"]: item for item in run.feed.injector.report()}
    for inj in plan.injections:
        item = report[inj.injection_id]
        assert not [n for n in item["notes"] if "skipped" in n or "short" in n], item
        if inj.variant not in REFERENCE_ONLY:
            assert item["records"] > 0, inj.injection_id
        mine = [label for label in run.labels if label.episode_id == inj.injection_id]
        assert any(label.typology == inj.typology and label.kind == inj.kind for label in mine), (
            inj.injection_id
        )
    # Follow-on truths: a pool through an own account is commingling too; money taken from custody
    # without instruction leaves a shortfall behind.
    by_variant = {inj.variant: inj.injection_id for inj in plan.injections}
    episodes = {(label.typology, label.episode_id) for label in run.labels}
    assert ("commingling", by_variant["pool_own_account"]) in episodes
    for variant in ("uninstructed_to_own", "uninstructed_to_related", "over_payout", "advance_settlement"):
        assert ("reserve_shortfall", by_variant[variant]) in episodes
    assert run.feed.injector.conflicts == []


# -- positives cross their lines (recomputed from the records) ------------------------------


def test_misappropriation_labels_cross_the_lines_and_are_complete(province, run):
    labels = _labels(run, "misappropriation")
    assert {"uninstructed_debit", "fee_excess"} <= {part for lab in labels for part in lab.what.split("+")}
    holders = (AccountRole.customer_custody, AccountRole.payment_reserve)
    for label in labels:
        assert _role(province, label.account_id) in holders
        day = label.key.rsplit(":", 1)[1]
        if "uninstructed_debit" in label.what:
            taken = [run.by_id[rid][1] for rid in label.record_ids]
            unins = [r for r in taken if r["direction"] == "debit" and not r.get("instruction_id")]
            assert unins and all(
                r["account_id"] == label.account_id and r["booked_at"][:10] == day for r in unins
            )
        if "fee_excess" in label.what:
            fees, inflow, limit = _fee_share(province, run, label.account_id, day)
            assert fees > limit * inflow, label.note
    labelled = {rid for label in labels for rid in label.record_ids}
    for r in _txns(run):
        if (
            _role(province, r["account_id"]) in holders
            and r["direction"] == "debit"
            and not r.get("instruction_id")
        ):
            assert r["record_id"] in labelled
    for label in labels:
        if "fee_excess" in label.what:
            assert Fraction(label.metrics["fee_share"]) > Fraction(label.metrics["fee_share_max"])


def test_self_financing_labels_are_instructed_loans_to_related_parties(province, run):
    labels = _labels(run, "self_financing")
    assert labels
    related = {inst.institution_id: _related(province, inst.institution_id) for inst in province.institutions}
    labelled = set()
    for label in labels:
        iid = _institution(province, label.account_id)
        assert _role(province, label.account_id) is AccountRole.customer_custody
        for rid in label.record_ids:
            r = run.by_id[rid][1]
            assert r["direction"] == "debit" and r.get("instruction_id")
            assert r["counterparty_account"] in related[iid]
            labelled.add(rid)
    for r in _txns(run):
        iid = _institution(province, r["account_id"])
        if (_role(province, r["account_id"]) is AccountRole.customer_custody and r["direction"] == "debit"
                and r.get("instruction_id") and r["counterparty_account"] in related[iid]):  # fmt: skip
            assert r["record_id"] in labelled


def test_commingling_labels_are_investor_money_in_own_accounts_or_own_money_in_custody(province, run):
    labels = _labels(run, "commingling")
    assert {"investors_into_own", "own_funds_into_custody"} <= {
        p for lab in labels for p in lab.what.split("+")
    }
    labelled = {rid for label in labels for rid in label.record_ids}
    for r in _txns(run):
        if r["direction"] != "credit":
            continue
        role, payer = _role(province, r["account_id"]), r["counterparty_account"]
        investor_in = role is AccountRole.own_operating and _role(province, payer) is AccountRole.investor
        own_in = (role in (AccountRole.customer_custody, AccountRole.payment_reserve)
                  and _role(province, payer) is AccountRole.own_operating
                  and _institution(province, payer) == _institution(province, r["account_id"]))  # fmt: skip
        assert (r["record_id"] in labelled) == (investor_in or own_in)


def test_shortfall_labels_are_snapshots_below_the_liabilities(province, run):
    labels = _labels(run, "reserve_shortfall")
    assert labels
    labelled = {rid for label in labels for rid in label.record_ids}
    short = 0
    for _, r in run.flat:
        if r["kind"] != "balance" or "customer_liabilities" not in r:
            continue
        below = amount_to_cents(r["balance"]) < amount_to_cents(r["customer_liabilities"])
        assert (r["record_id"] in labelled) == below
        short += below
    assert short == len(labelled) > 0
    ratios = sorted(Fraction(lab.metrics["max_gap_ratio"]) for lab in labels)
    assert ratios[0] < Fraction(5, 100) < ratios[-1]  # near the line and far past it


def test_large_value_labels_are_exactly_the_reportable_account_days(province, run):
    lines = THRESHOLDS.get("large_value")
    totals: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in _txns(run):
        side = "in" if r["direction"] == "credit" else "out"
        line = f"cash_{side}" if r["channel"] == "CASH" else f"transfer_{side}"
        totals[(r["account_id"], r["booked_at"][:10], line)] += _cents(r)
    expected = set()
    for (account, day, line), total in totals.items():
        key = "cash" if line.startswith("cash") else "natural_transfer" if account in province.natural_persons \
            else "non_natural_transfer"  # fmt: skip
        if total >= amount_to_cents(lines[key]):
            expected.add(f"{account}:{day}:{line}")
    labels = _labels(run, "large_value")
    assert {label.key for label in labels} == expected
    holders = Counter(label.metrics["holder"] for label in labels)
    assert holders["natural_person"] > 0 and holders["non_natural_person"] > 0
    assert any(label.what.startswith("cash_") and label.episode_id for label in labels)
    normal = [label for label in labels if label.episode_id is None]
    assert len(normal) > 100, "the normal feed's own large values are labelled too"


def test_fund_pools_cross_every_line(province, run):
    cfg = THRESHOLDS.get("fund_pool")
    labels = _labels(run, "fund_pool")
    assert {label.what for label in labels} == {"pool_related_party", "pool_own_account", "pool_week"}
    for label in labels:
        account = label.account_id
        mine = sorted((r for r in _txns(run, account)), key=lambda r: (r["booked_at"], r["record_id"]))
        days = sorted({run.by_id[rid][1]["booked_at"][:10] for rid in label.record_ids})
        assert len(days) <= int(cfg["window_days"])
        inside = [r for r in mine if r["booked_at"][:10] in days]
        payers = {r["counterparty_account"] for r in inside if r["direction"] == "credit"
                  and _role(province, r["counterparty_account"]) is AccountRole.investor}  # fmt: skip
        payees = {r["counterparty_account"] for r in inside if r["direction"] == "debit"
                  and _role(province, r["counterparty_account"]) in (AccountRole.investor, AccountRole.borrower)}  # fmt: skip
        assert len(payers) >= int(cfg["min_distinct_in"]) and len(payees) >= int(cfg["min_distinct_out"])
        money_in = sum(_cents(r) for r in inside if r["direction"] == "credit")
        money_out = sum(_cents(r) for r in inside if r["direction"] == "debit")
        assert Fraction(money_out, money_in) >= Fraction(str(cfg["pass_through_min"]))
        # a pool paying out the day it collects is near empty at each day's end; one that collects
        # first, at the end of its last day against all it took in
        collect_first = label.what == "pool_week"
        for day in days[-1:] if collect_first else days:
            day_in = sum(
                _cents(r)
                for r in inside
                if r["direction"] == "credit" and (collect_first or r["booked_at"][:10] == day)
            )
            upto = [r for r in mine if r["booked_at"][:10] <= day]
            if _role(province, account) is AccountRole.own_operating:
                end = amount_to_cents(upto[-1]["balance_after"])
            else:  # no balance reported: the account started the feed empty
                end = sum(_cents(r) * (1 if r["direction"] == "credit" else -1) for r in upto)
            assert 0 <= end <= Fraction(str(cfg["end_balance_ratio_max"])) * day_in, (label.label_id, day)


# -- hard negatives stay lawful -------------------------------------------------------------


def test_hard_negatives_are_labelled_once_per_typology_they_resemble(plan, run):
    negatives = [label for label in run.labels if label.kind == HARD_NEGATIVE]
    expected = Counter()
    for inj in plan.injections:
        if inj.kind == HARD_NEGATIVE:
            for typology in VARIANTS[inj.variant].not_typologies:
                expected[(inj.variant, typology)] += 1
    assert Counter((label.what, label.typology) for label in negatives) == expected
    positive_ids = defaultdict(set)
    for label in run.labels:
        if label.kind == POSITIVE:
            positive_ids[label.typology].update(label.record_ids)
    for label in negatives:
        assert not positive_ids[label.typology] & set(label.record_ids), label.label_id


def test_hard_negatives_are_on_the_lawful_side(province, run):
    negatives = {label.what: label for label in run.labels if label.kind == HARD_NEGATIVE}
    records = {what: [run.by_id[rid][1] for rid in label.record_ids] for what, label in negatives.items()}

    fee = records["contractual_fee"]
    debit = next(r for r in fee if r["direction"] == "debit")
    assert (
        debit.get("instruction_id")
        and _role(province, debit["counterparty_account"]) is AccountRole.own_operating
    )
    later_fee_days = {r["booked_at"][:10] for r in _txns(run, debit["account_id"])
                      if r["direction"] == "debit" and r["booked_at"][:10] >= debit["booked_at"][:10]
                      and _role(province, r["counterparty_account"]) is AccountRole.own_operating}  # fmt: skip
    for day in later_fee_days:
        fees, inflow, limit = _fee_share(province, run, debit["account_id"], day)
        assert fees <= limit * inflow * Fraction(9, 10), day  # clearly inside the contractual share

    payroll = [r for r in records["payroll_fanout"] if r["direction"] == "debit"]
    payer = payroll[0]["account_id"]
    assert _role(province, payer) is AccountRole.own_operating
    assert (
        len({r["counterparty_account"] for r in payroll})
        >= int(THRESHOLDS.get("fund_pool")["min_distinct_out"]) + 2
    )
    assert not [r for r in _txns(run, payer) if r["direction"] == "credit"
                and _role(province, r["counterparty_account"]) is AccountRole.investor]  # fmt: skip

    covered = negatives["covered_high_yield"]
    assert covered.record_ids == () and covered.product_id
    product = next(p for p in province.products if p.product_id == covered.product_id)
    cfg = THRESHOLDS.get("excess_return")
    declared = Fraction(product.declared_annual_yield)
    assert declared < Fraction(product.underlying_project_rate)
    assert declared < Fraction(cfg["lpr_one_year"]) * int(cfg["lpr_multiple"])
    custody_yields = [Fraction(p.declared_annual_yield) for p in province.products]
    assert declared >= sorted(custody_yields)[len(custody_yields) * 3 // 4]  # high: top quarter

    for what in ("own_transfer_between_banks", "mirrored_legs"):
        legs = records[what]
        assert len(legs) % 2 == 0 and len(legs) >= 2
        debits = [r for r in legs if r["direction"] == "debit"]
        credits = [r for r in legs if r["direction"] == "credit"]
        for d in debits:
            # the credit leg of the same movement (two transfers may run between the same accounts)
            mirror = next(
                c for c in credits
                if c["account_id"] == d["counterparty_account"] and (c["amount"], c["booked_at"]) == (d["amount"], d["booked_at"])
            )  # fmt: skip
            assert run.by_id[d["record_id"]][0] != run.by_id[mirror["record_id"]][0], "two banks"
            assert mirror["counterparty_account"] == d["account_id"]
    for r in records["own_transfer_between_banks"]:
        assert _role(province, r["account_id"]) is AccountRole.own_operating
        assert _role(province, r["counterparty_account"]) is AccountRole.own_operating

    loan = next(r for r in records["large_loan"] if r["direction"] == "debit")
    iid = _institution(province, loan["account_id"])
    assert loan.get("instruction_id") and _cents(loan) >= 100_000_000
    assert _role(province, loan["counterparty_account"]) is AccountRole.borrower
    assert loan["counterparty_account"] not in _related(province, iid)

    below = records["below_line"]
    account, day = below[0]["account_id"], below[0]["booked_at"][:10]
    out = sum(
        _cents(r) for r in _txns(run, account) if r["direction"] == "debit" and r["booked_at"][:10] == day
    )
    assert account in province.natural_persons
    assert out < amount_to_cents(THRESHOLDS.get("large_value")["natural_transfer"])


# -- files ----------------------------------------------------------------------------------


def test_write_files_with_a_plan_writes_labels_for_pushed_records(tmp_path, province):
    plan = plan_violations(province, 5, start=START, days=1)
    written = write_files(
        province, tmp_path, hours=24, seed=5, intensity=400.0, batch_records=500, violations=plan
    )
    pushed = set()
    for bank in province.bank_codes:
        for line in (tmp_path / "batches" / f"{bank}.jsonl").read_bytes().splitlines():
            batch = msgspec.json.decode(line, type=BatchSchema)
            pushed.update(record.record_id for record in batch.records)
    assert len(pushed) == sum(written.records.values())
    lines = (tmp_path / "labels.jsonl").read_bytes().splitlines()
    labels = [msgspec.json.decode(line) for line in lines]
    assert {label["kind"] for label in labels} == {POSITIVE, HARD_NEGATIVE}
    assert all(set(label["record_ids"]) <= pushed for label in labels)
    assert {"typology", "institution_id", "account_id", "record_ids", "window_start", "window_end", "kind",
            "note", "labels", "records"} <= set(labels[0])  # fmt: skip
    summary = msgspec.json.decode((tmp_path / "violations.json").read_bytes())
    assert len(summary["injections"]) == len(plan.injections) == len(summary["outcome"])
    write_files(
        province, tmp_path / "again", hours=24, seed=5, intensity=400.0, batch_records=500, violations=plan
    )
    assert (tmp_path / "again" / "labels.jsonl").read_bytes() == (tmp_path / "labels.jsonl").read_bytes()


# -- product- and institution-level typologies ----------------------------------------------
#
# A longer run, so that rapid growth has the min_history_days of trend it needs. The rules are
# recomputed here from the reference data and the records, independently of institution_truth.

NEW_TYPOLOGIES = (
    "excess_return",
    "maturity_mismatch",
    "investor_cap_breach",
    "rapid_growth",
    "disguised_clearing",
)
PRODUCT_KEYED = ("excess_return", "maturity_mismatch", "investor_cap_breach")
LONG_DAYS = 8
LONG_INTENSITY = 300.0
HOLDERS = (AccountRole.customer_custody, AccountRole.payment_reserve)
INSTITUTION_ROLES = (*HOLDERS, AccountRole.own_operating)


def _rule(typology: str, key: str, default):
    return THRESHOLDS.get(typology).get(key, default)


@pytest.fixture(scope="module")
def long_plan(province):
    return plan_violations(province, 7, start=START, days=LONG_DAYS)


@pytest.fixture(scope="module")
def long_run(province, long_plan):
    feed = Feed(province, 7, START, intensity=LONG_INTENSITY, violations=long_plan)
    records = feed.advance(LONG_DAYS * 86_400)
    flat = [(bank, r) for bank, items in records.items() for r in items]
    return SimpleNamespace(
        feed=feed, records=records, flat=flat, by_id={r["record_id"]: (bank, r) for bank, r in flat},
        labels=feed.labels, plan=long_plan,
        accounts={**province.account_by_id, **{a.account_id: a for a in long_plan.accounts}},
        products={p.product_id: p for p in long_plan.all_products(province)},
    )  # fmt: skip


def _epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp())


def _of(run, typology, kind=POSITIVE):
    return {label.key: label for label in run.labels if label.typology == typology and label.kind == kind}


def _own_of(run) -> dict[str, str]:
    """Account -> institution, for the institutions' own accounts (custody, reserve, own)."""
    return {aid: a.institution_id for aid, a in run.accounts.items()
            if a.role in INSTITUTION_ROLES and a.institution_id}  # fmt: skip


def _txn_role(run, account_id):
    account = run.accounts.get(account_id)
    return account.role if account is not None else None


def _peer_z(province, run, product) -> Fraction | None:
    kind = province.institution_by_id[product.institution_id].type
    yields = [Fraction(p.declared_annual_yield) for p in run.products.values()
              if province.institution_by_id[p.institution_id].type is kind]  # fmt: skip
    mid = median(yields)
    mad = median([abs(y - mid) for y in yields])
    return (Fraction(product.declared_annual_yield) - mid) / (Fraction("1.4826") * mad) if mad else None


def _reference_signals(province, run, product) -> set[str]:
    cap = Fraction(_rule("excess_return", "lpr_one_year", "0.030")) * int(
        _rule("excess_return", "lpr_multiple", 4)
    )
    declared = Fraction(product.declared_annual_yield)
    signals = set()
    if product.underlying_project_rate and declared > Fraction(product.underlying_project_rate):
        signals.add("yield_above_project")
    if declared > cap:
        signals.add("yield_above_legal_cap")
    kind = province.institution_by_id[product.institution_id].type
    peers = sum(1 for p in run.products.values() if province.institution_by_id[p.institution_id].type is kind)
    z = _peer_z(province, run, product)
    if (
        peers >= int(_rule("excess_return", "min_peers", 5))
        and z is not None
        and z > Fraction(_rule("excess_return", "robust_z", "3.5"))
    ):
        signals.add("peer_outlier")
    return signals


def _split(product) -> bool:
    ratio = Fraction(_rule("maturity_mismatch", "term_ratio_max", "0.5"))
    return (
        product.underlying_term_days is not None and product.term_days < product.underlying_term_days * ratio
    )


def _uncovered_products(run) -> set[str]:
    """Products whose payouts to investors were, at the end of some one-minute tick, at least
    min_payout and above the borrowers' repayments."""
    start = int(START.timestamp())
    ticks: dict[int, list[dict]] = defaultdict(list)
    for _, r in run.flat:
        if (r["kind"] == "transaction" and r.get("product_id")
                and _txn_role(run, r["account_id"]) is AccountRole.customer_custody):  # fmt: skip
            ticks[(_epoch(r["booked_at"]) - start) // 60].append(r)
    paid: Counter[str] = Counter()
    repaid: Counter[str] = Counter()
    least = amount_to_cents(_rule("excess_return", "min_payout", "100000.00"))
    found = set()
    for tick in sorted(ticks):
        for r in ticks[tick]:
            other = _txn_role(run, r["counterparty_account"])
            if r["direction"] == "debit" and r.get("instruction_id") and other is AccountRole.investor:
                paid[r["product_id"]] += _cents(r)
            elif r["direction"] == "credit" and other is AccountRole.borrower:
                repaid[r["product_id"]] += _cents(r)
        for product_id in {r["product_id"] for r in ticks[tick]}:
            if paid[product_id] >= least and repaid[product_id] < paid[product_id]:
                found.add(product_id)
    return found


def _inflows(run):
    """Per institution: the first day with a record, and per day the inflow and the payers."""
    own = _own_of(run)
    first: dict[str, str] = {}
    inflow: dict[str, Counter[str]] = defaultdict(Counter)
    payers: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for _, r in run.flat:
        iid = own.get(r["account_id"]) if r["kind"] == "transaction" else None
        if not iid:
            continue
        day = r["booked_at"][:10]
        first[iid] = min(first.get(iid, day), day)
        if (_txn_role(run, r["account_id"]) in HOLDERS and r["direction"] == "credit"
                and own.get(r["counterparty_account"]) != iid):  # fmt: skip
            inflow[iid][day] += _cents(r)
            payers[iid][day].add(r["counterparty_account"])
    return first, inflow, payers


def _growth(run) -> dict[str, tuple[Fraction, int]]:
    """The rapid_growth rule: key -> (inflow over the guarded baseline, new payers)."""
    first, inflow, payers = _inflows(run)
    trend, ratio = (
        int(_rule("rapid_growth", "trend_days", 14)),
        Fraction(_rule("rapid_growth", "growth_ratio", "3")),
    )
    least = amount_to_cents(_rule("rapid_growth", "min_inflow", "1000000.00"))
    history_days = int(_rule("rapid_growth", "min_history_days", 5))
    least_new = int(_rule("rapid_growth", "min_new_investors", 20))

    def before(day: str) -> list[str]:
        return [(date.fromisoformat(day) - timedelta(days=n)).isoformat() for n in range(1, trend + 1)]

    def new(iid: str, day: str) -> int:
        seen = set().union(*(payers[iid].get(d, set()) for d in before(day)))
        return len(payers[iid].get(day, set()) - seen)

    found = {}
    for iid, days in inflow.items():
        for day, total in days.items():
            history = [d for d in before(day) if d >= first[iid]]
            if len(history) < history_days:
                continue
            guarded = max(median([days.get(d, 0) for d in history]), Fraction(least) / ratio)
            fresh, fresh_base = new(iid, day), median([new(iid, d) for d in history])
            if (total >= least and total >= ratio * guarded) or (
                fresh >= least_new and fresh >= ratio * max(1, fresh_base)
            ):
                found[f"{iid}:{day}"] = (Fraction(total) / guarded, fresh)
    return found


def _clearing(run, province) -> dict[str, set[str]]:
    """The disguised_clearing rule: key -> the customers of mirrored credits at two banks."""
    own = _own_of(run)
    lag = int(_rule("disguised_clearing", "max_lag_seconds", 3600))
    credits, debits = defaultdict(list), defaultdict(lambda: defaultdict(list))
    for bank, r in run.flat:
        iid = own.get(r["account_id"]) if r["kind"] == "transaction" else None
        if not iid or province.institution_by_id[iid].type.value != "payment":
            continue
        if own.get(r["counterparty_account"]) == iid:
            continue
        leg = (_epoch(r["booked_at"]), bank, r["counterparty_account"], r["booked_at"][:10])
        if r["direction"] == "credit":
            credits[iid].append((_cents(r), leg))
        else:
            debits[iid][_cents(r)].append(leg)
    found: dict[str, set[str]] = defaultdict(set)
    for iid, legs in credits.items():
        for cents, (ts, bank, payer, day) in legs:
            if any(b != bank and abs(t - ts) <= lag for t, b, _, _ in debits[iid].get(cents, ())):
                found[f"{iid}:{day}"].add(payer)
    least = int(_rule("disguised_clearing", "min_customers", 20))
    return {key: payers for key, payers in found.items() if len(payers) >= least}


def test_the_long_plan_covers_every_variant_and_growth_has_its_history(province, long_plan):
    assert long_plan.skipped == ()
    assert Counter(inj.variant for inj in long_plan.injections) == {
        name: variant.default_count for name, variant in VARIANTS.items()
    }
    assert {inj.typology for inj in long_plan.injections if inj.kind == POSITIVE} == set(TYPOLOGIES)
    first = START.date()
    for inj in long_plan.injections:
        if inj.variant in ("inflow_surge", "new_investor_surge"):
            days = {(datetime.fromtimestamp(t, BEIJING).date() - first).days for t in inj.times}
            assert min(days) >= int(_rule("rapid_growth", "min_history_days", 5)), inj.injection_id
    assert plan_violations(province, 7, start=START, days=LONG_DAYS) == long_plan


def test_the_plan_carries_its_new_reference_items(province, long_plan, tmp_path):
    old_products = {p.product_id for p in province.products}
    known = set(province.account_by_id) | {e.account_id for e in province.externals}
    new_products = [p.product_id for p in long_plan.products]
    assert len(set(new_products)) == len(new_products) and not set(new_products) & old_products
    for product in long_plan.products:
        msgspec.json.decode(msgspec.json.encode(product), type=Product)
        assert province.institution_by_id[product.institution_id].type.value in (
            "p2p_lending", "equity_crowdfunding", "asset_management")  # fmt: skip
        assert parse_time(product.sale_start) <= START
    new_accounts = [a.account_id for a in long_plan.accounts]
    externals = [e.account_id for e in long_plan.externals]
    assert len(set(new_accounts + externals)) == len(new_accounts) + len(externals)
    assert not set(new_accounts + externals) & known
    assert all(a.bank_code in province.bank_codes for a in long_plan.accounts)
    # new investors, and the borrowers of new products (each names its product)
    new_product_ids = set(new_products)
    for a in long_plan.accounts:
        assert a.role is AccountRole.investor or (
            a.role is AccountRole.borrower and a.product_id in new_product_ids
        )
    payloads = long_plan.reference_payloads(province)
    base = province.reference_payloads()
    assert len(payloads["products"]) == len(base["products"]) + len(new_products)
    assert len(payloads["accounts"]) == len(base["accounts"]) + len(new_accounts)
    assert payloads["institutions"] == base["institutions"]
    named = {inj.params["product_id"] for inj in long_plan.injections if "product_id" in inj.params}
    assert named <= {p["product_id"] for p in payloads["products"]}
    # write_files upserts them with the province's reference data.
    plan = plan_violations(province, 3, start=START, days=1)
    write_files(province, tmp_path, hours=2, seed=3, intensity=200.0, violations=plan)
    written = msgspec.json.decode((tmp_path / "reference" / "products.json").read_bytes())
    accounts = msgspec.json.decode((tmp_path / "reference" / "accounts.json").read_bytes())
    assert {p.product_id for p in plan.products} <= {p["product_id"] for p in written}
    assert {a.account_id for a in plan.accounts} <= {a["account_id"] for a in accounts}


def test_new_variants_make_their_records_and_labels(province, long_plan, long_run):
    report = {item["injection_id"]: item for item in long_run.feed.injector.report()}
    assert long_run.feed.injector.conflicts == []
    names = {v.name for v in VARIANTS.values() if v.typology in NEW_TYPOLOGIES}
    for inj in long_plan.injections:
        if inj.variant not in names:
            continue
        item = report[inj.injection_id]
        assert not [n for n in item["notes"] if "skipped" in n or "short" in n], item
        assert (item["records"] == 0) == (inj.variant in REFERENCE_ONLY), inj.injection_id
        mine = [label for label in long_run.labels if label.episode_id == inj.injection_id
                and label.typology == inj.typology and label.kind == inj.kind]  # fmt: skip
        assert mine, inj.injection_id
        parts = {part for label in mine for part in label.what.split("+")}
        expected = {
            "yield_above_project": "yield_above_project", "yield_above_legal_cap": "yield_above_legal_cap",
            "peer_outlier_yield": "peer_outlier", "payout_subsidy": "payout_coverage", "term_split": "term_split",
            "rollover": "rollover", "private_oversubscribed": "over_cap", "inflow_surge": "inflow_growth",
            "new_investor_surge": "new_investors", "cross_bank_mirrors": "cross_bank_mirrors",
        }.get(inj.variant)  # fmt: skip
        if expected:
            assert expected in parts, (inj.injection_id, parts)
        if inj.variant == "yield_above_project":
            assert parts == {"yield_above_project"}  # below the cap, no outlier
        if inj.variant == "peer_outlier_yield":
            assert "yield_above_project" not in parts  # covered by its project
        if inj.kind == POSITIVE and inj.typology in PRODUCT_KEYED and "product_id" in inj.params:
            assert mine[0].key == f"product:{inj.params['product_id']}"


def test_label_keys_are_the_detectors_keys(province, long_run):
    for label in long_run.labels:
        if label.typology not in NEW_TYPOLOGIES:
            continue
        if label.typology in PRODUCT_KEYED:
            assert re.fullmatch(r"product:PRD\d{4}", label.key), label.label_id
            product = long_run.products[label.key.split(":", 1)[1]]
            assert label.product_id == product.product_id and label.institution_id == product.institution_id
        else:
            assert re.fullmatch(r"INS\d{4}:\d{4}-\d{2}-\d{2}", label.key), label.label_id
            iid, day = label.key.split(":")
            assert label.institution_id == iid
            if label.kind == POSITIVE:
                assert label.metrics["day"] == day
                assert label.window_start[:10] <= day <= label.window_end[:10]
        if label.kind == POSITIVE:
            assert label.label_id == f"{label.typology}/{label.key}"
            assert label.account_id and _institution(province, label.account_id) == label.institution_id


def test_reference_rules_are_labelled_over_every_product(province, long_run):
    excess, mismatch = _of(long_run, "excess_return"), _of(long_run, "maturity_mismatch")
    uncovered = _uncovered_products(long_run)
    new = {p.product_id for p in long_run.plan.products}
    for product_id, product in long_run.products.items():
        key = f"product:{product_id}"
        signals = _reference_signals(province, long_run, product)
        if not _split(product) and product_id in uncovered:
            signals.add("payout_coverage")
        assert set(excess[key].what.split("+")) == signals if signals else key not in excess, product_id
        if _split(product):
            assert mismatch[key].what == ("term_split+rollover" if product_id in uncovered else "term_split")
        else:
            assert key not in mismatch
        if product_id not in new:  # the province's own products raise no reference signal
            assert not _reference_signals(province, long_run, product) and not _split(product)
    # The injected payout subsidies and rollovers are among them, and nothing else is uncovered
    # but what an injection paid.
    for product_id in uncovered:
        label = excess.get(f"product:{product_id}") or mismatch[f"product:{product_id}"]
        assert label.episode_id, product_id


def test_investor_caps_are_counted_on_distinct_payers(province, long_run):
    own = _own_of(long_run)
    investors: dict[str, set[str]] = defaultdict(set)
    for _, r in long_run.flat:
        if (r["kind"] == "transaction" and r["direction"] == "credit" and r.get("product_id")
                and _txn_role(long_run, r["account_id"]) is AccountRole.customer_custody
                and own.get(r["counterparty_account"]) != own[r["account_id"]]
                and _txn_role(long_run, r["counterparty_account"]) is not AccountRole.borrower):  # fmt: skip
            investors[r["product_id"]].add(r["counterparty_account"])
    expected = set()
    for product_id, product in long_run.products.items():
        kind = province.institution_by_id[product.institution_id].type.value
        cap = product.investor_cap
        if cap is None and kind not in _rule(
            "investor_cap_breach", "uncapped_types", ["p2p_lending", "payment"]
        ):
            cap = int(_rule("investor_cap_breach", "default_cap", 200))
        if cap is not None and len(investors[product_id]) > cap:
            expected.add(f"product:{product_id}")
    labels = _of(long_run, "investor_cap_breach")
    assert set(labels) == expected and expected
    for key, label in labels.items():
        assert label.metrics["distinct_investors"] == len(investors[key.split(":")[1]])
        # Many of them unknown to the reference data, as real investors' accounts often are.
        payers = {long_run.by_id[rid][1]["counterparty_account"] for rid in label.record_ids}
        assert sum(1 for a in payers if a not in long_run.accounts) > len(payers) // 3


def test_rapid_growth_is_labelled_by_the_trend_rule(long_run):
    expected = _growth(long_run)
    labels = _of(long_run, "rapid_growth")
    assert set(labels) == set(expected)
    surges = {inj.injection_id for inj in long_run.plan.injections if inj.typology == "rapid_growth"
              and inj.kind == POSITIVE}  # fmt: skip
    assert surges <= {label.episode_id for label in labels.values()}
    ratios = sorted(ratio for ratio, _ in expected.values())
    assert ratios[-1] >= 3


def test_disguised_clearing_is_labelled_by_mirrors_at_two_banks(province, long_run):
    expected = _clearing(long_run, province)
    labels = _of(long_run, "disguised_clearing")
    assert set(labels) == set(expected) and expected
    for key, label in labels.items():
        assert label.metrics["customers"] == len(expected[key])
        assert len(label.metrics["banks"]) >= 2


def test_new_hard_negatives_stay_on_the_lawful_side(province, long_run):
    negatives = {
        (label.what, label.typology): label for label in long_run.labels if label.kind == HARD_NEGATIVE
    }
    records = {key: [long_run.by_id[rid][1] for rid in label.record_ids] for key, label in negatives.items()}

    # A product whose term is its project's, with a high yield the project covers: no mismatch,
    # no excess return, its payouts (at least min_payout) covered by the repayment.
    label = negatives[("matched_term_high_yield", "maturity_mismatch")]
    assert ("matched_term_high_yield", "excess_return") in negatives
    product = long_run.products[label.product_id]
    assert product.term_days == product.underlying_term_days
    assert Fraction(product.declared_annual_yield) < Fraction(product.underlying_project_rate)
    assert not _reference_signals(province, long_run, product)
    assert Fraction(product.declared_annual_yield) >= median(
        [Fraction(p.declared_annual_yield) for p in province.products])  # fmt: skip
    custody = [r for r in records[("matched_term_high_yield", "maturity_mismatch")]
               if r["account_id"] == label.account_id]  # fmt: skip
    assert _txn_role(long_run, label.account_id) is AccountRole.customer_custody
    paid = sum(_cents(r) for r in custody if r["direction"] == "debit")
    repaid = sum(_cents(r) for r in custody if r["direction"] == "credit")
    assert amount_to_cents(_rule("excess_return", "min_payout", "100000.00")) <= paid <= repaid

    # A public P2P product with more than 200 investors: no cap to break.
    label = negatives[("public_many_investors", "investor_cap_breach")]
    product = long_run.products[label.product_id]
    assert (
        product.investor_cap is None
        and province.institution_by_id[product.institution_id].type.value == "p2p_lending"
    )
    payers = {r["counterparty_account"] for r in records[("public_many_investors", "investor_cap_breach")]
              if r["direction"] == "credit"}  # fmt: skip
    assert len(payers) > int(_rule("investor_cap_breach", "default_cap", 200))

    # Steady volume: above min_inflow on every working day and up from the weekend (what a
    # naive volume or day-over-day rule flags), never up on the trend.
    label = negatives[("steady_high_volume", "rapid_growth")]
    iid, day = label.key.split(":")
    _, inflow, _ = _inflows(long_run)
    least = amount_to_cents(_rule("rapid_growth", "min_inflow", "1000000.00"))
    weekdays = [d for d in inflow[iid] if date.fromisoformat(d).weekday() < 5]
    assert weekdays and all(inflow[iid][d] >= least for d in weekdays)
    previous = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    assert inflow[iid][day] >= 2 * inflow[iid][previous]
    assert not [key for key in _growth(long_run) if key.startswith(iid + ":")]

    # Same-bank mirrors: many customers' amounts paid on within minutes, but at one bank.
    legs = records[("same_bank_mirrors", "disguised_clearing")]
    lag = int(_rule("disguised_clearing", "max_lag_seconds", 3600))
    credits = [r for r in legs if r["direction"] == "credit"]
    debits = [r for r in legs if r["direction"] == "debit"]
    mirrored = {c["counterparty_account"] for c in credits for d in debits if d["amount"] == c["amount"]
                and abs(_epoch(d["booked_at"]) - _epoch(c["booked_at"])) <= lag}  # fmt: skip
    assert len(mirrored) >= int(_rule("disguised_clearing", "min_customers", 20))
    assert {long_run.by_id[r["record_id"]][0] for r in legs} == {long_run.by_id[legs[0]["record_id"]][0]}

    # Merchant settlements: customers paying at one bank, settled from another, never a mirror.
    legs = records[("merchant_settlement_batch", "disguised_clearing")]
    credits = [r for r in legs if r["direction"] == "credit"]
    settlements = [r for r in legs if r["direction"] == "debit"]
    assert len({c["counterparty_account"] for c in credits}) >= int(
        _rule("disguised_clearing", "min_customers", 20)
    )
    assert settlements and not {s["amount"] for s in settlements} & {c["amount"] for c in credits}
    assert {long_run.by_id[s["record_id"]][0] for s in settlements}.isdisjoint(
        {long_run.by_id[c["record_id"]][0] for c in credits})  # fmt: skip

    # The existing ones name disguised clearing too, keyed by institution and day.
    for what in ("own_transfer_between_banks", "mirrored_legs"):
        label = negatives[(what, "disguised_clearing")]
        assert re.fullmatch(r"INS\d{4}:\d{4}-\d{2}-\d{2}", label.key)
    assert negatives[("covered_high_yield", "excess_return")].key.startswith("product:")


def test_a_normal_feed_raises_none_of_the_reference_rules(province):
    """Without injections the province's products give no excess-return, mismatch or cap label."""
    empty = ViolationPlan(seed=7, start=int(START.timestamp()), end=int(START.timestamp()) + 2 * 86_400)
    feed = Feed(province, 7, START, intensity=500.0, violations=empty)
    feed.advance(2 * 86_400)
    assert not [label for label in feed.labels if label.typology in NEW_TYPOLOGIES]


def test_the_detectors_find_exactly_the_labelled_positives(province, long_plan, long_run):
    """The five detectors (models/detectors), run over the long run's records in hourly messages,
    alert on exactly the positives' keys and on no hard negative."""
    modules = [pytest.importorskip(f"models.detectors.{name}") for name in NEW_TYPOLOGIES]
    from models.detectors.context import DetectContext, StaticReferences
    from models.institution_detection import institution_records
    from services.gateway.intake import to_message_record

    payloads = long_plan.reference_payloads(province)
    references = StaticReferences(accounts=payloads["accounts"], institutions=payloads["institutions"],
                                  related_parties=payloads["related-parties"], products=payloads["products"])  # fmt: skip
    ctx = DetectContext(references, THRESHOLDS)
    decoder = msgspec.json.Decoder(Transaction)
    txns = sorted((r for _, r in long_run.flat if r["kind"] == "transaction"), key=lambda r: r["booked_at"])
    hours: dict[str, list] = defaultdict(list)
    for r in txns:
        hours[r["booked_at"][:13]].append(to_message_record(decoder.decode(msgspec.json.encode(r))))
    states: dict[tuple[str, str], dict] = {}
    found = {}

    def call(iid, msg_id, records):
        for module in modules:
            state, findings = module.detect(ctx, states.get((iid, module.NAME)), iid, msg_id, records)
            states[(iid, module.NAME)] = state
            found.update({(f.typology, f.key): f for f in findings})

    for inst in province.institutions:
        call(inst.institution_id, "review", [])
    for hour, records in hours.items():
        for iid, part in institution_records(ctx, records).items():
            call(iid, hour, part)
    for typology in NEW_TYPOLOGIES:
        assert {key for t, key in found if t == typology} == set(_of(long_run, typology)), typology
    for label in long_run.labels:
        if label.kind == HARD_NEGATIVE and label.typology in NEW_TYPOLOGIES:
            assert (label.typology, label.key) not in found, label.label_id
            assert not [f for (t, _), f in found.items() if t == label.typology
                        and set(f.record_ids) & set(label.record_ids)], label.label_id  # fmt: skip


def test_run_simulation_upserts_the_plan_reference_items_before_the_records(province):
    """Against a stand-in API: the plan's products and investor accounts are upserted with the
    province's reference data, before the first batch."""
    import asyncio

    from aiohttp import web

    from services.simulator.push import run_simulation

    seen: list[tuple[str, object]] = []

    async def token(request):
        return web.json_response({"token": "t", "role": "bank"}, status=201)

    async def reference(request):
        items = await request.json()
        seen.append((request.match_info["kind"], items))
        return web.json_response({"upserted": len(items), "rejected": []})

    async def batch(request):
        body = await request.json()
        seen.append(("batch", len(body["records"])))
        return web.json_response({"batch_id": body["batch_id"], "accepted": len(body["records"]),
                                  "duplicates": 0, "rejected": []}, status=202)  # fmt: skip

    async def metrics(request):
        return web.Response(text="")

    made = {}

    def planner(p):
        made["plan"] = plan_violations(p, 7, start=START, days=1)
        return made["plan"]

    async def main():
        app = web.Application()
        app.router.add_post("/v1/admin/tokens", token)
        app.router.add_put("/v1/reference/{kind}", reference)
        app.router.add_post("/v1/batches", batch)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await run_simulation(f"http://127.0.0.1:{port}", "admin", seed=7, start=START, rate=5000.0,
                                        max_records=3000, progress=False, violations=planner)  # fmt: skip
        finally:
            await runner.cleanup()

    stats = asyncio.run(main())
    assert stats.accepted == stats.pushed > 0
    first_batch = next(n for n, (kind, _) in enumerate(seen) if kind == "batch")
    upserted: dict[str, list] = {}
    for kind, items in seen[:first_batch]:  # in chunks of push.REFERENCE_CHUNK items
        upserted.setdefault(kind, []).extend(items)
    assert {"institutions", "accounts", "products", "related-parties"} <= set(upserted)
    plan = made["plan"]
    assert plan.products and plan.accounts
    assert {p.product_id for p in plan.products} <= {p["product_id"] for p in upserted["products"]}
    assert {a.account_id for a in plan.accounts} <= {a["account_id"] for a in upserted["accounts"]}
    assert len(upserted["products"]) == len(province.products) + len(plan.products)
