"""The learned `anomaly` typology's model, the pure part: one IsolationForest per account role
over account-day feature vectors (models/features), a 0-1 score, and the features that made a
window unusual.

Per role, because what is usual differs by role: a custody account takes from thousands of
investors every day, an operating account from a few. Each role's features are scaled robustly
(minus the median, over the interquartile range) so that no feature's unit weighs on the split
points, and a few extreme training days do not squeeze the others together.

The score is the forest's own anomaly score s(x) = 2^(-E[h(x)] / c(n)) (Liu et al., 2008):
about 0.5 for an ordinary window, towards 1 for one isolated in few splits. A feature's
contribution is how much the score falls when that feature alone is put back at its role's
median: the model's own answer to "what made it unusual", with no personal data in it, only
feature names, the account's values, its own usual range and its role's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from models.features import FEATURE_NAMES, FEATURE_UNITS, FeatureVector, OwnUsualRanges, UsualRange
from models.features import feature_values as _feature_values

if TYPE_CHECKING:  # imported where a forest is fitted: the gateway and the dispatcher never load it
    from sklearn.ensemble import IsolationForest

N_ESTIMATORS = 200
MAX_SAMPLES = 256  # the original paper's sub-sample size; fewer rows use all of them
MIN_ROLE_ROWS = 30  # fewer account-days than this fit no model: a role of a handful of days has no "usual"
TOP_FEATURES = 3
SCORE_QUANTILES = (50.0, 90.0, 99.0, 99.5, 99.9)
_LEAST_CONTRIBUTION = 1e-9  # score changes below float noise name nothing


class ModelSettings(msgspec.Struct, frozen=True):
    kind: str = "IsolationForest"
    n_estimators: int = N_ESTIMATORS
    max_samples: int = MAX_SAMPLES
    contamination: str = "auto"
    scaling: str = "robust: (x - median) / IQR; IQR 0 -> 10th-90th range; both 0 -> 1"
    contribution: str = "score drop when one feature is set to the role's median"
    min_role_rows: int = MIN_ROLE_ROWS


MODEL_SETTINGS = ModelSettings()


class RobustScaling(msgspec.Struct, frozen=True):
    center: tuple[float, ...]  # per feature, FEATURE_NAMES order
    scale: tuple[float, ...]


class RoleFigures(msgspec.Struct, frozen=True):
    """What an artefact says of one role's model, apart from the forest itself."""

    role: str
    rows: int  # account-days fitted on
    accounts: int
    scaling: RobustScaling
    usual: tuple[UsualRange, ...]  # the role's 10th-90th percentile per feature, in feature units
    score_quantiles: dict[str, float]  # "p50", "p90", ... of the training rows' scores


class RoleModel(msgspec.Struct, frozen=True):
    figures: RoleFigures
    forest: IsolationForest


class FeatureContribution(msgspec.Struct, frozen=True):
    feature: str
    unit: str
    value: float  # the account's value in the window
    own_usual: UsualRange | None  # the account's own trailing 10th-90th percentile, if known
    role_usual: UsualRange  # the role's 10th-90th percentile in the training data
    score_drop: float  # how much the score falls when this feature alone is at the role's median


class WindowScore(msgspec.Struct, frozen=True):
    score: float  # 0..1, about 0.5 for an ordinary window
    top_features: tuple[FeatureContribution, ...]  # largest contribution first


def feature_matrix(vectors: Sequence[FeatureVector]) -> np.ndarray:
    if not vectors:
        return np.empty((0, len(FEATURE_NAMES)))
    return np.array([_feature_values(vector) for vector in vectors], dtype=np.float64)


def robust_scaling(matrix: np.ndarray) -> RobustScaling:
    """Median and spread per feature; a feature that barely varies (most days have no night
    record) falls back to the wider 10th-90th range, and to 1 when even that is flat."""
    q10, q25, median, q75, q90 = np.percentile(matrix, [10, 25, 50, 75, 90], axis=0)
    spread = np.where(q75 - q25 > 0, q75 - q25, q90 - q10)
    spread = np.where(spread > 0, spread, 1.0)
    return RobustScaling(tuple(map(float, median)), tuple(map(float, spread)))


def scaled(scaling: RobustScaling, matrix: np.ndarray) -> np.ndarray:
    return (matrix - np.asarray(scaling.center)) / np.asarray(scaling.scale)


def fit_role(role: str, matrix: np.ndarray, accounts: int, seed: int) -> RoleModel:
    """One role's forest over its account-days (rows in a fixed order: the same rows and seed
    give the same forest)."""
    if len(matrix) < MIN_ROLE_ROWS:
        raise ValueError(f"role {role!r}: {len(matrix)} account-days, at least {MIN_ROLE_ROWS} needed")
    scaling = robust_scaling(matrix)
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(
        n_estimators=N_ESTIMATORS,
        max_samples=min(MAX_SAMPLES, len(matrix)),
        contamination="auto",
        random_state=seed,
        n_jobs=1,
    )
    forest.fit(scaled(scaling, matrix))
    scores = -forest.score_samples(scaled(scaling, matrix))
    low, high = np.percentile(matrix, [10, 90], axis=0)
    quantiles = np.percentile(scores, SCORE_QUANTILES)
    figures = RoleFigures(
        role=role,
        rows=len(matrix),
        accounts=accounts,
        scaling=scaling,
        usual=tuple(UsualRange(float(lo), float(hi)) for lo, hi in zip(low, high, strict=True)),
        score_quantiles={f"p{q:g}": float(v) for q, v in zip(SCORE_QUANTILES, quantiles, strict=True)},
    )
    return RoleModel(figures, forest)


def scores(model: RoleModel, matrix: np.ndarray) -> np.ndarray:
    """The 0-1 anomaly score of each row."""
    if not len(matrix):
        return np.empty(0)
    return -model.forest.score_samples(scaled(model.figures.scaling, matrix))


def contributions(model: RoleModel, matrix: np.ndarray) -> np.ndarray:
    """rows x features: the score of a row less its score with that one feature at the role's
    median (0 once scaled), all in one pass through the forest."""
    rows, width = matrix.shape
    base = scaled(model.figures.scaling, matrix)
    variants = np.repeat(base[np.newaxis, :, :], width + 1, axis=0)  # [0] as it is, [j+1] without j
    for feature in range(width):
        variants[feature + 1, :, feature] = 0.0
    flat = -model.forest.score_samples(variants.reshape(-1, width)).reshape(width + 1, rows)
    return (flat[0][np.newaxis, :] - flat[1:]).T


def score_windows(
    model: RoleModel,
    vectors: Sequence[FeatureVector],
    own_ranges: Sequence[OwnUsualRanges | None] | None = None,
) -> list[WindowScore]:
    """Each window's score and its TOP_FEATURES contributions, largest first (ties by feature
    order); a feature whose return to the role's median would not lower the score is not named."""
    matrix = feature_matrix(vectors)
    if not len(matrix):
        return []
    row_scores = scores(model, matrix)
    drops = contributions(model, matrix)
    own_ranges = own_ranges if own_ranges is not None else [None] * len(vectors)
    out = []
    for index, own in enumerate(own_ranges):
        ranked = sorted(range(len(FEATURE_NAMES)), key=lambda j, i=index: (-drops[i, j], j))
        top = tuple(
            _contribution(model, matrix[index, j], j, own, float(drops[index, j]))
            for j in ranked[:TOP_FEATURES]
            if drops[index, j] > _LEAST_CONTRIBUTION
        )
        out.append(WindowScore(float(row_scores[index]), top))
    return out


def _contribution(
    model: RoleModel, value: float, feature: int, own: OwnUsualRanges | None, drop: float
) -> FeatureContribution:
    return FeatureContribution(
        feature=FEATURE_NAMES[feature],
        unit=FEATURE_UNITS[feature],
        value=float(value),
        own_usual=own.ranges[feature] if own is not None else None,
        role_usual=model.figures.usual[feature],
        score_drop=drop,
    )
