"""Injected violations: deterministic, valid records, labels that point at them, positives past the
thresholds (recomputed here from the records), hard negatives lawful, the normal feed untouched."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from fractions import Fraction
from types import SimpleNamespace

import msgspec
import pytest

from models.thresholds import load_thresholds
from schemas.fields import BEIJING, amount_to_cents
from schemas.records import Balance, BatchSchema, Transaction
from schemas.reference import AccountRole
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
# The default feed (province 7, feed seed 7, START, intensity 1000, 30 hours), hashed by ``_digest``
# before the violations code existed: without a plan the feed must stay byte for byte the same.
DEFAULT_FEED_SHA256 = "56a7679f7d70e89814e382fa5195b7c632ebfbb8d6527997ccbb2fb5f7caf082"
DEFAULT_FEED_RECORDS = 12021


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
    assert plan.skipped == ()
    assert Counter(inj.variant for inj in plan.injections) == {
        name: variant.default_count for name, variant in VARIANTS.items()
    }
    for inj in plan.injections:
        assert province.institution_by_id[inj.institution_id].type in VARIANTS[inj.variant].types
        assert all(plan.start <= t < plan.end for t in inj.times)
        assert list(inj.times) == sorted(inj.times)
    assert {inj.typology for inj in plan.injections if inj.kind == POSITIVE} == set(TYPOLOGIES)
    fee_at = {inj.institution_id for inj in plan.injections if inj.variant == "fee_excess"}
    contractual_at = {inj.institution_id for inj in plan.injections if inj.variant == "contractual_fee"}
    assert not fee_at & contractual_at
    msgspec.json.encode(plan.to_builtins())


def test_plan_arguments_select_what_is_injected(province):
    only = plan_violations(
        province, 7, start=START, days=DAYS, typologies=["fund_pool"], hard_negatives=False
    )
    assert {inj.variant for inj in only.injections} == {"pool_related_party", "pool_own_account"}
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
        plan_violations(province, 7, typologies=["excess_return"])


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


def test_every_record_still_decodes_into_the_contract_types(province, run):
    decoder = msgspec.json.Decoder(Transaction | Balance)
    for bank, record in run.flat:
        decoder.decode(msgspec.json.encode(record))
        assert province.account_by_id[record["account_id"]].bank_code == bank
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
        if inj.variant != "covered_high_yield":
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
    assert {label.what for label in labels} == {"pool_related_party", "pool_own_account"}
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
        for day in days:
            day_in = sum(
                _cents(r) for r in inside if r["direction"] == "credit" and r["booked_at"][:10] == day
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
            mirror = next(c for c in credits if c["account_id"] == d["counterparty_account"])
            assert (mirror["amount"], mirror["booked_at"]) == (d["amount"], d["booked_at"])
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
