"""Account-day features for the learned `anomaly` typology: a pure, bounded, order-independent
step over an account's records (state) and the feature vector of a closed Beijing day (window).
docs/anomaly-features.md defines each feature and the bounds of the state."""

from models.features.schema import (
    FEATURE_NAMES,
    FEATURE_SCHEMA,
    FEATURE_SCHEMA_HASH,
    FEATURE_UNITS,
    HISTORY_DAYS,
    KEPT_DAYS,
    FeatureSchema,
    FeatureSpec,
)
from models.features.state import AccountFeatureState, DayPartial, step
from models.features.window import (
    FeatureVector,
    OwnUsualRanges,
    UsualRange,
    closed_day_features,
    feature_values,
    own_usual_ranges,
    window_features,
)

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SCHEMA",
    "FEATURE_SCHEMA_HASH",
    "FEATURE_UNITS",
    "HISTORY_DAYS",
    "KEPT_DAYS",
    "AccountFeatureState",
    "DayPartial",
    "FeatureSchema",
    "FeatureSpec",
    "FeatureVector",
    "OwnUsualRanges",
    "UsualRange",
    "closed_day_features",
    "feature_values",
    "own_usual_ranges",
    "step",
    "window_features",
]
