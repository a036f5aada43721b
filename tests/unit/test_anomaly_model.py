"""models/anomaly_model and the artefact around it: a window unlike its role's scores higher and
names what changed; the same rows and seed give the same artefact digest."""

from __future__ import annotations

import random

import msgspec
import numpy as np
import pytest

from models.anomaly_artefact import TrainingFigures, TrainingWindow, build_metadata, content_digest
from models.anomaly_model import (
    MIN_ROLE_ROWS,
    TOP_FEATURES,
    fit_role,
    robust_scaling,
    score_windows,
    scores,
)
from models.anomaly_model import feature_matrix as matrix_of
from models.features import FEATURE_NAMES, FeatureVector, OwnUsualRanges, UsualRange
from services.anomaly_store import ArtefactError, current_artefact, load_artefact, model_bytes, write_artefact

WINDOW = TrainingWindow("2034-02-06T00:00:00+08:00", "2034-02-20T00:00:00+08:00", "2034-02-06", "2034-02-20",
                        "2034-01-22T16:00:00+00:00", 14)  # fmt: skip
FIGURES = TrainingFigures(records=1, accounts=1, windows=1, unregistered_accounts=0, unregistered_windows=0)


def ordinary_day(rng: random.Random, day: int) -> FeatureVector:
    """A custody-like account-day: steady money in and out, office hours, known counterparties."""
    inflow = rng.gauss(6.0, 0.3)
    credits = max(1.0, round(rng.gauss(60, 10)))
    return FeatureVector(
        day_start=day, history_days=14, inflow_log10_yuan=inflow, outflow_log10_yuan=inflow + rng.gauss(-0.05, 0.05),
        credits=credits, debits=max(1.0, round(rng.gauss(50, 10))), distinct_payers=round(credits * 0.8),
        distinct_payees=max(1.0, round(rng.gauss(30, 6))), unknown_counterparty_records=float(rng.randrange(3)),
        pass_through=max(0.0, rng.gauss(0.9, 0.08)), dwell_hours=max(0.0, rng.gauss(6, 1.5)),
        night_share=min(1.0, abs(rng.gauss(0.02, 0.015))), hour_entropy_bits=rng.gauss(3.4, 0.15),
        round_1k_share=min(1.0, abs(rng.gauss(0.12, 0.04))), round_10k_share=min(1.0, abs(rng.gauss(0.03, 0.02))),
        new_counterparty_share=min(1.0, abs(rng.gauss(0.1, 0.04))), inflow_growth_log2=rng.gauss(0, 0.35),
        person_inflow_2d_log10_yuan=max(0.0, rng.gauss(4.5, 0.5)),
        person_outflow_2d_log10_yuan=max(0.0, rng.gauss(3.0, 0.5)),
        person_passed_on_2d_log10_yuan=max(0.0, rng.gauss(2.5, 0.5)),
    )  # fmt: skip


@pytest.fixture(scope="module")
def training_rows() -> list[FeatureVector]:
    rng = random.Random(11)
    return [ordinary_day(rng, day) for day in range(600)]


@pytest.fixture(scope="module")
def custody(training_rows):
    return fit_role("customer_custody", matrix_of(training_rows), accounts=40, seed=7)


def changed(window: FeatureVector, **values: float) -> FeatureVector:
    return msgspec.structs.replace(window, **values)


POOL_LIKE = {  # a collection account at work: many strangers paying in, money straight out
    "inflow_log10_yuan": 7.6, "outflow_log10_yuan": 7.6, "credits": 420.0, "distinct_payers": 400.0,
    "dwell_hours": 0.4, "new_counterparty_share": 0.93, "inflow_growth_log2": 5.5,
}  # fmt: skip


def test_an_obviously_unusual_window_scores_high_and_names_what_changed(custody, training_rows):
    usual = ordinary_day(random.Random(99), 1)
    [plain, odd] = score_windows(custody, [usual, changed(usual, **POOL_LIKE)])
    training_scores = scores(custody, matrix_of(training_rows))
    assert 0.0 < plain.score < custody.figures.score_quantiles["p99"] < odd.score <= 1.0
    assert odd.score > training_scores.max()
    assert len(odd.top_features) == TOP_FEATURES
    assert {c.feature for c in odd.top_features} <= set(POOL_LIKE)
    for contribution in odd.top_features:
        assert contribution.value == POOL_LIKE[contribution.feature]
        assert not contribution.role_usual.low <= contribution.value <= contribution.role_usual.high
        assert contribution.score_drop > 0
    assert [c.score_drop for c in odd.top_features] == sorted(
        (c.score_drop for c in odd.top_features), reverse=True
    )


def test_two_changed_features_are_the_two_named(custody):
    usual = ordinary_day(random.Random(99), 1)
    # the same day, but at night and with strangers
    [plain, odd] = score_windows(
        custody, [usual, changed(usual, night_share=0.85, new_counterparty_share=0.95)]
    )
    assert odd.score > plain.score
    assert {c.feature for c in odd.top_features[:2]} == {"night_share", "new_counterparty_share"}
    night = next(c for c in odd.top_features if c.feature == "night_share")
    assert (night.value, night.unit) == (0.85, "fraction")
    assert night.role_usual.high < 0.1  # the role's days are almost never at night


def test_explanations_carry_the_accounts_own_range(custody):
    window = changed(ordinary_day(random.Random(5), 2), **POOL_LIKE)
    own = OwnUsualRanges(
        days=10, ranges=tuple(UsualRange(float(i), i + 1.0) for i in range(len(FEATURE_NAMES)))
    )
    [scored] = score_windows(custody, [window], [own])
    for contribution in scored.top_features:
        assert contribution.own_usual == own.ranges[FEATURE_NAMES.index(contribution.feature)]
    [without_own] = score_windows(custody, [window])
    assert all(c.own_usual is None for c in without_own.top_features)
    assert without_own.score == scored.score


def test_robust_scaling_survives_flat_features():
    matrix = np.zeros((50, len(FEATURE_NAMES)))
    matrix[:, 0] = np.arange(50)
    matrix[40:, 1] = 1.0  # zero interquartile range, but a 10th-90th spread
    scaling = robust_scaling(matrix)
    assert scaling.center[0] == pytest.approx(24.5) and scaling.scale[0] == pytest.approx(24.5)
    assert scaling.scale[1] == pytest.approx(1.0) and scaling.scale[2] == 1.0  # all zeros


def test_a_role_with_too_few_days_is_not_fitted(training_rows):
    with pytest.raises(ValueError, match="at least"):
        fit_role("other", matrix_of(training_rows[: MIN_ROLE_ROWS - 1]), accounts=1, seed=7)


def _artefact_digest(rows: list[FeatureVector], seed: int) -> tuple[str, bytes, object]:
    models = {
        "customer_custody": fit_role("customer_custody", matrix_of(rows), 40, seed),
        "own_operating": fit_role("own_operating", matrix_of(rows[::3]), 12, seed),
    }
    blob = model_bytes(models)
    metadata = build_metadata(models, {"other": 3}, FIGURES, WINDOW, seed, blob)
    return content_digest(blob, metadata), blob, metadata


def test_the_same_rows_and_seed_give_the_same_digest(training_rows):
    first, first_blob, _ = _artefact_digest(training_rows, seed=7)
    again, again_blob, _ = _artefact_digest(training_rows, seed=7)
    assert first == again and first_blob == again_blob
    assert _artefact_digest(training_rows, seed=8)[0] != first
    assert _artefact_digest(training_rows[1:], seed=7)[0] != first


def test_an_artefact_is_written_named_by_its_digest_and_checked_when_loaded(tmp_path, training_rows):
    digest, blob, metadata = _artefact_digest(training_rows, seed=7)
    document = write_artefact(tmp_path, blob, metadata)
    assert document.digest == digest and document.artefact_id == f"anomaly-{digest[:16]}"
    assert current_artefact(tmp_path) == tmp_path / document.artefact_id
    assert write_artefact(tmp_path, blob, metadata).digest == digest  # again: the same directory
    loaded = load_artefact(tmp_path / document.artefact_id)
    assert loaded.library_mismatches == []
    assert sorted(loaded.models) == ["customer_custody", "own_operating"]
    rows = matrix_of(training_rows[:20])
    fresh = fit_role("customer_custody", matrix_of(training_rows), 40, 7)
    assert np.array_equal(scores(loaded.models["customer_custody"], rows), scores(fresh, rows))
    model_file = tmp_path / document.artefact_id / "model.pkl"
    model_file.write_bytes(model_file.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtefactError, match="digest"):
        load_artefact(tmp_path / document.artefact_id)
