"""models/anomaly_fast.py: one row through the flattened forest gives scikit-learn's score and
contributions for that row, and AnomalyModels scores through it (or through scikit-learn when a
forest cannot be flattened)."""

from __future__ import annotations

import numpy as np
import pytest

from models.anomaly_fast import FastForest
from models.anomaly_model import contributions, fit_role, scores
from models.anomaly_serving import AnomalyModels
from models.features import FEATURE_NAMES, FeatureVector


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(3)
    return fit_role("investor", rng.lognormal(size=(800, len(FEATURE_NAMES))), accounts=80, seed=7)


def rows(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    spread = rng.choice([0.2, 1.0, 4.0], size=(n, len(FEATURE_NAMES)))
    return rng.lognormal(size=(n, len(FEATURE_NAMES))) * spread


def test_one_row_scores_as_scikit_learn_scores_it(model):
    fast = FastForest(model)
    for row in rows(400):
        assert fast.score(row.tolist()) == pytest.approx(float(scores(model, row[np.newaxis])[0]), abs=1e-15)


def test_contributions_are_scikit_learns(model):
    fast = FastForest(model)
    for row in rows(40):
        expected = contributions(model, row[np.newaxis])[0]
        assert fast.contributions(row.tolist()) == pytest.approx(expected.tolist(), abs=1e-15)


def test_served_models_score_through_it_or_through_scikit_learn(model):
    served = AnomalyModels("anomaly-x", "d" * 64, {"investor": model})
    vector = FeatureVector(0, 14, *rows(1)[0].tolist())
    fast_score = served.score("investor", vector)
    served._fast["investor"] = None  # a forest that could not be flattened
    assert served.score("investor", vector) == pytest.approx(fast_score, abs=1e-15)
    assert len(served.contributions("investor", vector)) == len(FEATURE_NAMES)
