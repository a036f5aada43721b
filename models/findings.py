"""What a detector returns: a finding, the raw material of an alert (CONTRACT.md §4).

A detector is a pure function of records, state and reference data; it never reads a topic, a
table or a socket. It names each violation by a ``key`` that stays the same while the violation
goes on (the account and the Beijing day, the product, the pair of accounts...), so repeats of the
same violation update one alert instead of raising a storm: the alert id is derived from the
typology and the key alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

TYPOLOGIES = (
    "misappropriation",
    "reserve_shortfall",
    "commingling",
    "fund_pool",
    "maturity_mismatch",
    "excess_return",
    "self_financing",
    "disguised_clearing",
    "investor_cap_breach",
    "rapid_growth",
    "large_value",
    "anomaly",
)
SEVERITIES = ("low", "medium", "high", "critical")

# A fixed namespace, so the same violation has the same alert id in every process and every replay.
_ALERT_NAMESPACE = uuid.UUID("6f1c2a8e-3d5b-4c7a-9e21-5b8f0d4c7a13")


@lru_cache(maxsize=1 << 16)
def alert_id_for(typology: str, key: str) -> str:
    """The alert's id, the same for the same violation everywhere (a UUID v5 of typology and
    key). Cached: a busy account's open alerts are reported again on every message."""
    return str(uuid.uuid5(_ALERT_NAMESPACE, f"{typology}|{key}"))


def severity_at_least(severity: str, minimum: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


@dataclass(frozen=True)
class Finding:
    typology: str
    key: str
    institution_id: str
    severity: str
    score: float  # 0..1: how far past the threshold, for ranking within a severity
    accounts: tuple[str, ...]
    amount_cents: int
    window_start: int  # epoch seconds, event time
    window_end: int
    record_ids: tuple[str, ...]
    metrics: dict[str, Any]
    thresholds: dict[str, Any]
    explanation_zh: str
    explanation_en: str
    rule: str  # the seed plan's section the rule comes from, e.g. "三(三)"
    detector_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.typology not in TYPOLOGIES:
            raise ValueError(f"unknown typology {self.typology!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be within 0..1, got {self.score}")

    @property
    def alert_id(self) -> str:
        return alert_id_for(self.typology, self.key)
