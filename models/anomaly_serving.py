"""The `anomaly` model as a worker serves it to the detectors, and the drift of what it is fed.

A detector is pure and reads its model from the DetectContext (``anomaly_model``): an
``AnomalyModels`` holds one artefact's forests by account role, its id and digest. The worker
makes a new context per take, so a model swapped in applies from the next take, and a take is
judged by one model from its first account to its last.

Drift. The forests were fitted on what was usual then; if what the stream feeds them moves (a
new product, a holiday, a bank changing how it books), scores move with it and alerts with
them. ``DriftWindow`` keeps, per role, the feature values of the last ``DRIFT_DAYS`` closed days
scored since the model was loaded, and gives per feature the standardised shift of their median
from the training median, in units of the training spread (the model's own robust scaling): 0
is centred as in training, 1 is one interquartile range off. The median, not the mean: most
features are skewed (counts, shares near 0), so a mean would sit away from the training median
without any drift at all.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.anomaly_fast import FastForest, compiled
from models.features import FeatureVector, feature_values

if TYPE_CHECKING:  # scikit-learn takes about a second to import: only processes that load a model pay it
    from models.anomaly_model import RoleFigures, RoleModel

DRIFT_DAYS = 1000  # closed days per role the drift figure rests on, the newest ones

# (role, the closed day's features) for every day a detector scores when it closes
DayObserver = Callable[[str, FeatureVector], None]


@dataclass(frozen=True)
class AnomalyModels:
    """One artefact's forests as the detectors use them, each flattened once for single-row
    scoring (models/anomaly_fast.py)."""

    artefact_id: str
    digest: str
    roles: Mapping[str, RoleModel]
    # called with every day scored when it closes (the worker's drift figures); the one side
    # effect a detector has, and it only counts, as models/stepping.observe_late does
    observe: DayObserver | None = field(default=None, compare=False, repr=False)
    _fast: dict[str, FastForest | None] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._fast.update({role: compiled(model) for role, model in self.roles.items()})

    def for_role(self, role: str | None) -> RoleModel | None:
        return self.roles.get(role) if role else None

    def score(self, role: str, vector: FeatureVector) -> float:
        """The day's 0-1 anomaly score under its role's forest (the role must have one)."""
        fast = self._fast.get(role)
        if fast is not None:
            return fast.score(feature_values(vector))
        from models.anomaly_model import feature_matrix, scores

        return float(scores(self.roles[role], feature_matrix([vector]))[0])

    def contributions(self, role: str, vector: FeatureVector) -> list[float]:
        """Per feature, how much the score falls when that feature alone is at the role's median."""
        fast = self._fast.get(role)
        if fast is not None:
            return fast.contributions(feature_values(vector))
        from models.anomaly_model import contributions, feature_matrix

        return [float(drop) for drop in contributions(self.roles[role], feature_matrix([vector]))[0]]


class DriftWindow:
    """The newest closed days scored per role, and how far their medians moved."""

    def __init__(self, figures: Mapping[str, RoleFigures], keep: int = DRIFT_DAYS) -> None:
        self.figures = dict(figures)
        self.keep = keep
        self._days: dict[str, deque[tuple[float, ...]]] = {}

    def observe(self, role: str, vector: FeatureVector) -> None:
        if role not in self.figures:
            return
        days = self._days.get(role)
        if days is None:
            days = self._days[role] = deque(maxlen=self.keep)
        days.append(feature_values(vector))

    def days(self, role: str) -> int:
        return len(self._days.get(role, ()))

    def shifts(self) -> dict[str, tuple[int, tuple[float, ...]]]:
        """Per role with days seen: how many, and per feature in FEATURE_NAMES order
        (median now - training median) / training spread."""
        out: dict[str, tuple[int, tuple[float, ...]]] = {}
        for role, days in sorted(self._days.items()):
            scaling = self.figures[role].scaling
            columns = zip(*days, strict=True)
            out[role] = (
                len(days),
                tuple(
                    (statistics.median(column) - center) / scale
                    for column, center, scale in zip(columns, scaling.center, scaling.scale, strict=True)
                ),
            )
        return out
