"""models/features/kinds.py: the kind of a day's counterparties, read at judging time from the
registered accounts; an unregistered counterparty is never evidence; the shares keep the
state's order independence; the worker's reference view keeps the map as accounts change."""

from __future__ import annotations

import random
from datetime import date

import msgspec

from models.detectors.context import DetectContext, OverlaidReferences, StaticReferences
from models.features import step, window_features
from models.features.counterparties import COUNTERPARTY_SAMPLE, counterparty_hash
from models.features.kinds import INSTITUTION, NEUTRAL_SHARE, PERSON, account_kind, kind_map, kind_shares
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


def test_unregistered_counterparties_are_not_counted_and_none_known_is_neutral():
    kinds = kind_map(ACCOUNTS)
    day = [
        txn(9, 1000, counterparty="INV"),
        txn(10, 500, credit=False, counterparty="CUS"),
        txn(11, 500, credit=False, counterparty="FREE"),
        *(txn(12, 100, counterparty=f"STRANGER{i}") for i in range(7)),  # unregistered: unknown
        txn(13, 100, counterparty="", channel="CASH"),
    ]
    vector = window_features(step(None, day), DAY0, kinds)
    assert vector.person_counterparty_share == 2 / 3 and vector.institution_counterparty_share == 1 / 3
    strangers = [txn(9, 100, counterparty=f"STRANGER{i}") for i in range(5)]
    alone = window_features(step(None, strangers), DAY0, kinds)
    assert alone.person_counterparty_share == alone.institution_counterparty_share == NEUTRAL_SHARE
    # without a map (no reference data) nothing is known either
    blind = window_features(step(None, day), DAY0)
    assert blind.person_counterparty_share == blind.institution_counterparty_share == NEUTRAL_SHARE
    # a counterparty both paid and paying counts once
    both = window_features(step(None, [txn(9, 10, counterparty="INV"), txn(10, 5, credit=False,
                                                                      counterparty="INV")]), DAY0, kinds)  # fmt: skip
    assert both.person_counterparty_share == 1.0


def test_the_shares_do_not_depend_on_the_order_of_the_records():
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


def test_beyond_the_sample_the_shares_are_judged_where_every_sample_is_complete():
    persons = [{"account_id": f"P{i:03d}", "role": "investor"} for i in range(3 * COUNTERPARTY_SAMPLE)]
    custody = [
        {"account_id": f"C{i:03d}", "role": "customer_custody", "institution_id": "P1"} for i in range(96)
    ]
    kinds = kind_map([*persons, *custody])
    payers = step(None, [txn(9, 10, counterparty=a["account_id"]) for a in persons])
    payees = [txn(10, 10, credit=False, counterparty=a["account_id"]) for a in custody]
    day = step(payers, payees).day(DAY0)
    assert day.payers.truncated and day.payees.truncated
    person, institution = kind_shares((day.payers, day.payees), kinds)
    assert 0.2 < person < 0.8 and person + institution == 1.0  # half and half, estimated


def test_training_folds_with_the_kinds_the_detector_reads():
    records = [txn(9, 1000, counterparty="CUS"), txn(10, 1000, credit=False, counterparty="FREE")]
    period = training_period(date(2034, 2, 6), date(2034, 2, 7))  # DAY0 alone
    collected = collect_from_records(records, {"ACC1": "investor"}, period, kind_map(ACCOUNTS))
    (vector,) = collected.roles["investor"].vectors
    assert (vector.person_counterparty_share, vector.institution_counterparty_share) == (0.5, 0.5)
    assert vector == window_features(step(None, records), DAY0, kind_map(ACCOUNTS))
