"""The institution risk index (0 to 100): named components, each a value from 0 to 1 with a
weight, over figures read from ClickHouse at read time (docs/risk-index.md).

Pure: ``risk_index(inputs, config)`` takes the figures and returns the index with every
component, its weight, its value and what it was made of. The weights and scales are versioned
configuration (models/risk_index.toml), as the detection thresholds are.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import msgspec

from schemas.desk import RiskComponent, RiskIndex
from schemas.fields import amount_to_cents, cents_to_text

DEFAULT_FILE = Path(__file__).with_name("risk_index.toml")
SEVERITIES = ("low", "medium", "high", "critical")


class OpenAlertScale(msgspec.Struct, forbid_unknown_fields=True):
    low: int
    medium: int
    high: int
    critical: int
    full_at: int
    exclude: list[str] = []


class CoverageScale(msgspec.Struct, forbid_unknown_fields=True):
    window_days: int
    min_inflow: str


class GrowthScale(msgspec.Struct, forbid_unknown_fields=True):
    recent_days: int
    baseline_weeks: int
    full_at_ratio: str
    min_recent: str


class HistoryScale(msgspec.Struct, forbid_unknown_fields=True):
    typologies: list[str]
    days: int
    full_at: int


class ScreeningScale(msgspec.Struct, forbid_unknown_fields=True):
    full_at: int


class Weights(msgspec.Struct, forbid_unknown_fields=True):
    open_alerts: float
    custody_coverage: float
    growth: float
    history: float
    screening: float


class RiskConfig(msgspec.Struct, forbid_unknown_fields=True):
    version: str
    weights: Weights
    open_alerts: OpenAlertScale
    custody_coverage: CoverageScale
    growth: GrowthScale
    history: HistoryScale
    screening: ScreeningScale


class RiskInputs(msgspec.Struct, frozen=True):
    """What the index is made of, for one institution, as storage holds it now."""

    as_of: str  # RFC 3339: when the figures were read
    # alerts not yet disposed: typology -> severity -> count
    open_alerts: dict[str, dict[str, int]] = {}
    # CNY inflow over the coverage window into customer_custody / payment_reserve accounts, and
    # into the institution's other accounts (own_operating, related_party, ...)
    custody_inflow_cents: int = 0
    other_inflow_cents: int = 0
    # CNY inflow of the institution (moves between its own accounts left out): the recent days,
    # and the baseline weeks before them in all
    recent_inflow_cents: int = 0
    baseline_inflow_cents: int = 0
    # alerts in the history window, false positives left out: typology -> count
    history: dict[str, int] = {}
    screening_hits: int = 0


def load_risk_config(env: Mapping[str, str] | None = None, path: Path | None = None) -> RiskConfig:
    env = os.environ if env is None else env
    source = path or Path(env.get("FUNDWATCH_RISK_INDEX_FILE") or DEFAULT_FILE)
    try:
        doc = tomllib.loads(source.read_text(encoding="utf-8"))
        config = msgspec.convert(doc, RiskConfig)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as error:
        raise ValueError(f"risk index file {source}: {error}") from None
    weights = msgspec.structs.asdict(config.weights)
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"risk index file {source}: weights must be 0 or more, not all 0")
    return config


def _clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def _open_alerts(inputs: RiskInputs, scale: OpenAlertScale) -> tuple[float, dict, str]:
    by_severity = dict.fromkeys(SEVERITIES, 0)
    for typology, counts in inputs.open_alerts.items():
        if typology in scale.exclude:
            continue
        for severity, count in counts.items():
            if severity in by_severity:
                by_severity[severity] += count
    points = sum(getattr(scale, s) * n for s, n in by_severity.items())
    value = _clamp(points / scale.full_at) if scale.full_at > 0 else 0.0
    said = f"{points} severity points of open alerts (full at {scale.full_at}); {', '.join(scale.exclude) or 'none'} left out"
    return value, {**by_severity, "severity_points": points}, said


def _coverage(inputs: RiskInputs, scale: CoverageScale) -> tuple[float, dict, str]:
    custody, other = inputs.custody_inflow_cents, inputs.other_inflow_cents
    total = custody + other
    figures = {"custody_inflow": cents_to_text(custody), "other_inflow": cents_to_text(other),
               "window_days": scale.window_days}  # fmt: skip
    if total < amount_to_cents(scale.min_inflow):
        return 0.0, {**figures, "coverage": None}, f"inflow below {scale.min_inflow}: too little to judge"
    coverage = custody / total
    figures["coverage"] = round(coverage, 4)
    return _clamp(1 - coverage), figures, f"{coverage:.1%} of the inflow landed in custody or reserve accounts"


def _growth(inputs: RiskInputs, scale: GrowthScale) -> tuple[float, dict, str]:
    recent, baseline = inputs.recent_inflow_cents, inputs.baseline_inflow_cents
    # the recent days against an average stretch of the same length in the baseline weeks
    per_stretch = baseline * scale.recent_days / (7 * scale.baseline_weeks) if scale.baseline_weeks else 0
    figures = {"recent_inflow": cents_to_text(recent), "baseline_inflow": cents_to_text(baseline),
               "recent_days": scale.recent_days, "baseline_weeks": scale.baseline_weeks}  # fmt: skip
    if recent < amount_to_cents(scale.min_recent):
        return 0.0, {**figures, "ratio": None}, f"recent inflow below {scale.min_recent}"
    if per_stretch <= 0:
        return 0.0, {**figures, "ratio": None}, "no inflow in the baseline weeks to compare with"
    ratio = recent / per_stretch
    full = float(Decimal(scale.full_at_ratio))
    value = _clamp((ratio - 1) / (full - 1)) if full > 1 else float(ratio > 1)
    figures["ratio"] = round(ratio, 3)
    return value, figures, f"recent inflow {ratio:.2f} times the baseline (full at {scale.full_at_ratio})"


def _history(inputs: RiskInputs, scale: HistoryScale) -> tuple[float, dict, str]:
    counts = {t: inputs.history.get(t, 0) for t in scale.typologies}
    total = sum(counts.values())
    value = _clamp(total / scale.full_at) if scale.full_at > 0 else 0.0
    return value, {**counts, "days": scale.days}, f"{total} such alerts in {scale.days} days (full at {scale.full_at})"


def _screening(inputs: RiskInputs, scale: ScreeningScale) -> tuple[float, dict, str]:
    hits = inputs.screening_hits
    value = _clamp(hits / scale.full_at) if scale.full_at > 0 else 0.0
    return value, {"hits": hits}, f"{hits} key-supervision words (full at {scale.full_at})"


_COMPONENTS = (
    ("open_alerts", "未处置预警", "Open alerts", _open_alerts),
    ("custody_coverage", "资金存管覆盖不足", "Custody coverage gap", _coverage),
    ("growth", "短期迅速发展", "Rapid growth", _growth),
    ("history", "资金池与挪用记录", "Fund-pool and misappropriation history", _history),
    ("screening", "登记筛查命中", "Registration screening hits", _screening),
)


def risk_index(inputs: RiskInputs, config: RiskConfig) -> RiskIndex:
    weights = msgspec.structs.asdict(config.weights)
    total_weight = sum(weights.values())
    components: list[RiskComponent] = []
    score = 0.0
    for name, zh, en, part in _COMPONENTS:
        value, figures, said = part(inputs, getattr(config, name))
        weight = weights[name]
        score += weight * value
        components.append(
            RiskComponent(
                name=name, label_zh=zh, label_en=en, weight=weight, value=round(value, 4),
                points=round(100 * weight * value / total_weight, 2), inputs=figures, explanation=said,
            )
        )  # fmt: skip
    return RiskIndex(
        value=round(100 * score / total_weight, 1), version=config.version, components=components, as_of=inputs.as_of
    )
