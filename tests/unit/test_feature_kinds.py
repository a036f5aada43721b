"""models/features/kinds.py: the kind of a day's counterparties, read at judging time from the
registered accounts; an unregistered counterparty is never evidence; the money from and to
customers keeps the state's order independence; the worker's reference view keeps the map as
accounts change."""

from __future__ import annotations

import random
from datetime import date

import msgspec

from models.detectors.context import DetectContext, OverlaidReferences, StaticReferences
from models.features import step, window_features
from models.features.counterparties import COUNTERPARTY_SAMPLE, counterparty_hash
from models.features.kinds import INSTITUTION, PERSON, account_kind, kind_map, person_cents
from models.features.window import log10_yuan
from models.thresholds import Thresholds
from services.training import collect_from_records, training_period
from streams.reference import ReferenceView
from tests.unit.test_features import DAY0, txn

ACCOUNTS = [
    {"account_id": "INV", "bank_code": "B001", "role": "investor", "institution_id": "P1"},
    {"account_id": "FREE", "bank_code": "B001", "role": "investor", "institution_id": None},
    {"account_id": "BOR", "bank_code": "B001", "role": "borrower", "institution_id": "P1"},
    {"account_id": "CUS", "bank_code": "B001", "role": "customer_custody", "institution_id": "P1"},
    {"account_id": "RES", "bank_code": "B001", "role": "payment_reserve", "institution_id": "P2"},
    {"account_id": "OWN", "bank_code": "B001", "role": "own_operating", "institution_id": "P1"},
    {"account_id": "REL", "bank_code": "B001", "role": "related_party", "institution_id": "P1"},
    {"account_id": "OTH", "bank_code": "B001", "role": "other", "institution_id": None},
    {"account_id": "OTHP", "bank_code": "B001", "role": "other", "institution_id": "P1"},
]


def test_kinds_follow_the_role_and_for_other_accounts_the_institution():
    kinds = {a["account_id"]: account_kind(a) for a in ACCOUNTS}
    assert kinds == {
        "INV": PERSON, "FREE": PERSON, "BOR": PERSON, "OTH": PERSON,
        "CUS": INSTITUTION, "RES": INSTITUTION, "OWN": INSTITUTION, "REL": INSTITUTION, "OTHP": INSTITUTION,
    }  # fmt: skip
    assert kind_map(ACCOUNTS) == {
        counterparty_hash(a["account_id"]): kinds[a["account_id"]] for a in ACCOUNTS
    }


def test_the_context_reads_the_map_built_once_from_the_references():
    refs = StaticReferences(ACCOUNTS)
    ctx = DetectContext(refs, Thresholds("v", {}, {}))
    assert ctx.counterparty_kinds() == kind_map(ACCOUNTS)
    assert ctx.counterparty_kinds() is refs.counterparty_kinds()  # built once, not per question
    assert OverlaidReferences(refs, []).counterparty_kinds() is refs.counterparty_kinds()


def test_the_workers_view_keeps_the_map_as_accounts_change():
    view = ReferenceView()
    for account in ACCOUNTS[:3]:
        view.apply("accounts", account["account_id"].encode(), msgspec.json.encode(account))
    assert view.counterparty_kinds() == kind_map(ACCOUNTS[:3])
    for account in ACCOUNTS[3:]:  # after the map is built: changed item by item
        view.apply("accounts", account["account_id"].encode(), msgspec.json.encode(account))
    assert view.counterparty_kinds() == kind_map(ACCOUNTS)
    moved = {**ACCOUNTS[7], "institution_id": "P1"}  # OTH joins an institution
    view.apply("accounts", b"OTH", msgspec.json.encode(moved))
    view.apply("accounts", b"INV", None)  # a tombstone: no longer registered
    expected = kind_map([*(a for a in ACCOUNTS if a["account_id"] not in ("INV", "OTH")), moved])
    assert view.counterparty_kinds() == expected
    assert counterparty_hash("INV") not in view.counterparty_kinds()


def _person_flows(vector):
    return (
        vector.person_inflow_2d_log10_yuan,
        vector.person_outflow_2d_log10_yuan,
        vector.person_passed_on_2d_log10_yuan,
    )


def test_only_customers_registered_accounts_count_and_unregistered_ones_are_no_evidence():
    kinds = kind_map(ACCOUNTS)
    day = [
        txn(9, 1000, counterparty="INV"),
        txn(9, 250, counterparty="BOR"),
        txn(10, 500, credit=False, counterparty="CUS"),  # an institution's: not a customer's
        txn(11, 400, credit=False, counterparty="FREE"),
        *(txn(12, 100, counterparty=f"STRANGER{i}") for i in range(7)),  # unregistered: unknown
        txn(13, 100, counterparty="", channel="CASH"),
    ]
    vector = window_features(step(None, day), DAY0, kinds)
    assert _person_flows(vector) == (log10_yuan(125_000), log10_yuan(40_000), log10_yuan(40_000))
    strangers = [txn(9, 100, counterparty=f"STRANGER{i}") for i in range(5)]
    assert _person_flows(window_features(step(None, strangers), DAY0, kinds)) == (0.0, 0.0, 0.0)
    # without a map (no reference data) nothing is known either
    assert _person_flows(window_features(step(None, day), DAY0)) == (0.0, 0.0, 0.0)


def test_money_taken_in_one_evening_and_sent_on_the_next_morning_is_passed_on():
    kinds = kind_map(ACCOUNTS)
    evening = step(None, [txn(21, 50_000, counterparty="INV", day=-1)])
    both = step(evening, [txn(8, 49_000, credit=False, counterparty="FREE")])
    assert _person_flows(window_features(both, DAY0, kinds)) == (
        log10_yuan(5_000_000), log10_yuan(4_900_000), log10_yuan(4_900_000)
    )
    # two days apart: the day before the day before is not counted
    early = step(None, [txn(21, 50_000, counterparty="INV", day=-2)])
    later = step(early, [txn(8, 49_000, credit=False, counterparty="FREE")])
    assert window_features(later, DAY0, kinds).person_passed_on_2d_log10_yuan == 0.0


def test_the_person_flows_do_not_depend_on_the_order_of_the_records():
    rng = random.Random(11)
    names = [a["account_id"] for a in ACCOUNTS] + [f"X{i}" for i in range(80)]  # a truncated sample
    records = [
        txn(
            rng.randrange(24),
            rng.randrange(1, 9000),
            credit=rng.random() < 0.5,
            counterparty=rng.choice(names),
        )
        for _ in range(400)
    ]
    kinds = kind_map(ACCOUNTS)
    whole = window_features(step(None, records), DAY0, kinds)
    for _ in range(5):
        shuffled = list(records)
        rng.shuffle(shuffled)
        state = None
        for start in range(0, len(shuffled), 37):
            state = step(state, shuffled[start : start + 37])
        assert window_features(state, DAY0, kinds) == whole


def test_beyond_the_sample_the_person_cents_are_estimated_from_the_kept_counterparties():
    persons = [{"account_id": f"P{i:03d}", "role": "investor"} for i in range(3 * COUNTERPARTY_SAMPLE)]
    strangers = [f"S{i:03d}" for i in range(3 * COUNTERPARTY_SAMPLE)]
    kinds = kind_map(persons)
    records = [txn(9, 10, counterparty=a["account_id"]) for a in persons]
    records += [txn(10, 10, counterparty=name) for name in strangers]
    day = step(None, records).day(DAY0)
    assert day.payers.truncated and len(day.payers.hashes) == COUNTERPARTY_SAMPLE
    assert 0.5 * 96_000 < person_cents(day.payers, kinds) < 1.5 * 96_000  # 96 payers of 1,000 cents
    small = step(None, records[:10]).day(DAY0)
    assert person_cents(small.payers, kinds) == 10_000  # exact below the sample size


def test_training_folds_with_the_kinds_the_detector_reads():
    records = [txn(9, 1000, counterparty="CUS"), txn(10, 1000, credit=False, counterparty="FREE")]
    period = training_period(date(2034, 2, 6), date(2034, 2, 7))  # DAY0 alone
    collected = collect_from_records(records, {"ACC1": "investor"}, period, kind_map(ACCOUNTS))
    (vector,) = collected.roles["investor"].vectors
    assert _person_flows(vector) == (0.0, log10_yuan(100_000), 0.0)
    assert vector == window_features(step(None, records), DAY0, kind_map(ACCOUNTS))
