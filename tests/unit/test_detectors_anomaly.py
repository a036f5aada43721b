"""models/detectors/anomaly.py: a closed day unlike its role's is raised once, naming at least three
features with the account's value, its own usual range and its role's, in both languages."""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta

import msgspec
import pytest

from models.anomaly_model import RoleModel, feature_matrix, fit_role
from models.anomaly_serving import AnomalyModels
from models.detectors import DETECTORS, fold
from models.detectors import anomaly as det
from models.detectors.anomaly_text import LABEL_EN, LABEL_ZH, shown
from models.detectors.context import DetectContext
from models.detectors.wording import mask
from models.features import FEATURE_NAMES, FeatureVector, closed_day_features
from models.findings import alert_id_for
from schemas.fields import epoch_seconds
from schemas.messages import TxnRecord
from tests.unit.test_detectors_common import (
    OWN,
    TEST_THRESHOLDS,
    assert_explanations_safe,
    check_order_independent,
    check_replays_change_nothing,
    references,
)

ROLE = "own_operating"  # OWN's role in the shared world
FIRST = date(2026, 11, 10)
ODD = FIRST + timedelta(days=5)  # the unusual day, after five ordinary ones
_ids = itertools.count(1)


def at(day: date, hour: int, minute: int = 0) -> int:
    return epoch_seconds(f"{day.isoformat()}T{hour:02d}:{minute:02d}:00+08:00")


def txn(account: str, credit: bool, cents: int, ts: int, counterparty: str) -> TxnRecord:
    return TxnRecord(
        record_id=f"a{next(_ids):06d}", account_id=account, credit=credit, amount_cents=cents, booked_at=ts,
        counterparty_account=counterparty, counterparty_bank="B002", channel="BEPS", currency="CNY",
        counterparty_name=None, instruction_id=None, purpose=None, product_id=None, balance_after_cents=None,
    )  # fmt: skip


def ordinary_day(rng: random.Random, account: str, day: date) -> list[TxnRecord]:
    """An operating account's day: a few payments in from its regular payers in office hours, odd
    amounts, a share of them paid on to its regular suppliers."""
    payers = [f"62170001{account[-4:]}{i:04d}" for i in range(12)]
    payees = [f"62220009{account[-4:]}{i:04d}" for i in range(4)]
    records, total = [], 0
    for _ in range(rng.randint(4, 8)):
        cents = rng.randint(200_000, 2_000_000) + rng.randint(1, 99)
        total += cents
        records.append(
            txn(account, True, cents, at(day, rng.randint(9, 16), rng.randint(0, 59)), rng.choice(payers))
        )
    for _ in range(rng.randint(1, 3)):
        cents = int(total * rng.uniform(0.2, 0.4))
        records.append(
            txn(account, False, cents, at(day, rng.randint(13, 17), rng.randint(0, 59)), rng.choice(payees))
        )
    return records


def pool_day(account: str, day: date, payers: int = 40) -> list[TxnRecord]:
    """A collection account at work: strangers paying round sums in at night, passed straight on."""
    records = []
    for i in range(payers):
        records.append(txn(account, True, 5_000_000, at(day, 1 + i % 4, i % 60), f"6217555500{i:06d}"))
    for i in range(payers // 4):
        records.append(txn(account, False, 19_900_000, at(day, 2 + i % 4, 30), f"6228666600{i:06d}"))
    return records


@pytest.fixture(scope="module")
def role_model() -> RoleModel:
    """The role's forest fitted on 80 synthetic operating accounts' ordinary days, young ones too
    (with 40, an account's second day, judged on one history day, sat at the role's p99)."""
    rng = random.Random(5)
    rows = []
    for n in range(80):
        account = f"T{n:04d}"
        records = [r for k in range(20) for r in sorted(ordinary_day(rng, account, FIRST + timedelta(days=k)),
                                                         key=lambda r: r.booked_at)]  # fmt: skip
        rows += closed_day_features(records, at(FIRST, 0), at(FIRST + timedelta(days=20), 0))
    return fit_role(ROLE, feature_matrix(rows), accounts=80, seed=7)


@pytest.fixture(scope="module")
def ctx(role_model) -> DetectContext:
    model = AnomalyModels("anomaly-0123456789abcdef", "0123456789abcdef" * 4, {ROLE: role_model})
    return DetectContext(references(), TEST_THRESHOLDS, anomaly_model=model)


def history(seed: int = 3, days: int = 5) -> list[TxnRecord]:
    rng = random.Random(seed)
    return [r for k in range(days) for r in ordinary_day(rng, OWN, FIRST + timedelta(days=k))]


def closing(day: date) -> TxnRecord:
    """An ordinary record whose time seals ``day`` (two days after its end)."""
    return txn(OWN, True, 123_456, at(day + timedelta(days=3), 10), "6217000100001234")


def findings_of(ctx, records, state=None):
    return fold(det, ctx, OWN, [("all", records)], state)


# -- the finding -----------------------------------------------------------------------------


def test_an_unusual_closed_day_raises_one_finding_naming_three_features(ctx, role_model):
    odd = pool_day(OWN, ODD)
    state, latest = findings_of(ctx, history() + odd + [closing(ODD)])
    assert list(latest) == [f"{OWN}:{ODD.isoformat()}"]  # the ordinary days raise nothing
    f = latest[f"{OWN}:{ODD.isoformat()}"]
    assert f.typology == "anomaly" and f.alert_id == alert_id_for("anomaly", f.key)
    assert f.accounts == (OWN,) and f.institution_id == "P1" and f.rule == "三(三)"
    m = f.metrics
    assert m["score"] > m["threshold"] == round(role_model.figures.score_quantiles["p99.5"], 4)
    assert f.score == m["score"] and f.severity in ("low", "medium")
    assert m["model_artefact"] == "anomaly-0123456789abcdef" and m["threshold_quantile"] == "p99.5"
    assert m["history_days"] == 5 and m["own_history_days"] == 5 and m["transactions"] == len(odd)
    assert f.amount_cents == sum(r.amount_cents for r in odd)
    assert set(f.record_ids) <= {r.record_id for r in odd} and len(f.record_ids) == det.EVIDENCE_N
    assert (f.window_start, f.window_end) == (min(r.booked_at for r in odd), max(r.booked_at for r in odd))
    named = m["features"]
    assert len(named) >= 3 and len({item["feature"] for item in named}) == len(named)
    for item in named:
        assert item["feature"] in FEATURE_NAMES and isinstance(item["value"], float)
        assert set(item["own_usual"]) == set(item["role_usual"]) == {"low", "high"}
        feature = item["feature"]
        for zh, text in ((True, f.explanation_zh), (False, f.explanation_en)):
            assert (LABEL_ZH if zh else LABEL_EN)[feature] in text
            assert shown(feature, item["value"], zh) in text
            for usual in (item["own_usual"], item["role_usual"]):
                assert shown(feature, usual["low"], zh) in text and shown(feature, usual["high"], zh) in text
    assert_explanations_safe(f)
    assert mask(OWN) == "****2002" and OWN not in f.explanation_zh + f.explanation_en


def test_ordinary_days_raise_nothing_and_no_model_raises_nothing(ctx):
    records = history(days=8) + [closing(FIRST + timedelta(days=7))]
    state, latest = findings_of(ctx, records)
    assert latest == {}
    assert state["features"].days  # the features are kept
    blind = DetectContext(references(), TEST_THRESHOLDS)
    odd = history() + pool_day(OWN, ODD) + [closing(ODD)]
    blind_state, blind_latest = findings_of(blind, odd)
    assert blind_latest == {} and det.current(blind, blind_state, OWN) == []
    # the same state judged once a model is there: current() finds the day
    assert [f.key for f in det.current(ctx, blind_state, OWN)] == [f"{OWN}:{ODD.isoformat()}"]


def test_an_unknown_account_keeps_nothing(ctx):
    stranger = "6217000199990000"
    assert det.detect(ctx, None, stranger, "m1", [txn(stranger, True, 100, at(FIRST, 10), OWN)]) == ({}, [])


def test_a_day_is_judged_once_the_account_books_on_a_later_day(ctx):
    records = history() + pool_day(OWN, ODD)
    same_day = txn(OWN, True, 100_001, at(ODD, 23, 59), "6217000100001234")
    _, latest = findings_of(ctx, records + [same_day])
    assert latest == {}  # the day may still grow: not judged yet
    next_day = txn(OWN, True, 100_001, at(ODD + timedelta(days=1), 0, 1), "6217000100001234")
    _, latest = findings_of(ctx, records + [same_day, next_day])
    assert list(latest) == [f"{OWN}:{ODD.isoformat()}"]


def test_a_day_sealed_after_a_long_silence_is_judged_on_its_own_history(ctx):
    records = history() + pool_day(OWN, ODD)
    state, latest = findings_of(ctx, records)
    assert latest == {}
    much_later = closing(ODD + timedelta(days=30))  # pushes the day out of the feature state
    state, latest = findings_of(ctx, [much_later], state)
    [f] = latest.values()
    assert f.key == f"{OWN}:{ODD.isoformat()}" and f.metrics["history_days"] == 5
    assert f.metrics["features"][0]["own_usual"] is not None
    assert all(partial.day_start > at(ODD, 0) for partial in state["features"].days)  # ODD left the state


def test_late_records_judge_their_day_again_as_if_they_came_on_time(ctx):
    odd = pool_day(OWN, ODD)
    on_time = findings_of(ctx, history() + odd + [closing(ODD)])[1]
    state, first = findings_of(ctx, history() + odd[:4] + [closing(ODD)])
    state, again = findings_of(ctx, odd[4:], state)
    assert again == on_time


def test_order_and_replays_change_nothing(ctx):
    records = (
        history(days=4)
        + pool_day(OWN, FIRST + timedelta(days=4), payers=16)
        + [closing(FIRST + timedelta(days=4))]
    )
    latest = check_order_independent(det, ctx, OWN, records, monotone=False, seeds=5)
    assert list(latest) == [f"{OWN}:{(FIRST + timedelta(days=4)).isoformat()}"]
    check_replays_change_nothing(det, ctx, OWN, records)


def test_at_least_three_features_are_named_even_when_the_forest_names_fewer(ctx, role_model):
    median = dict(zip(FEATURE_NAMES, role_model.figures.scaling.center, strict=True))
    odd = FeatureVector(day_start=0, history_days=14, **{**median, "credits": 40.0, "night_share": 0.9})
    named = [(FEATURE_NAMES[j], drop) for j, drop in det._named_features(ctx.anomaly_model, ROLE, odd)]
    assert len(named) == det.TOP_FEATURES == 3
    # the forest names only the credits: no training day had a night booking, and a forest never
    # splits on a feature constant in its training rows; the night share is named next, as the
    # feature furthest from the role's median, and the third at it (feature order breaks ties)
    assert named[0][0] == "credits" and named[0][1] > 0
    assert named[1:] == [("night_share", 0.0), ("inflow_log10_yuan", 0.0)]


def test_state_stays_bounded_and_survives_plain_json(ctx):
    rng = random.Random(8)
    records = [r for k in range(40) for r in ordinary_day(rng, OWN, FIRST + timedelta(days=k))]
    state, _ = findings_of(ctx, records)
    # the newest 18 days of features; evidence only of the days that may still be judged
    assert len(state["features"].days) == 18 and len(state["evidence"]) <= 5
    assert len(msgspec.msgpack.encode(state)) < 24 * 1024
    # after a restart the state comes back as plain JSON: the next message gives the same
    plain = msgspec.json.decode(msgspec.json.encode(state))
    odd = pool_day(OWN, FIRST + timedelta(days=40)) + [closing(FIRST + timedelta(days=40))]
    after = findings_of(ctx, odd, state)
    assert after[1] and findings_of(ctx, odd, plain) == after


def test_registered_with_the_account_detectors():
    assert DETECTORS["anomaly"] is det
