"""What the detectors share about figures: money and ratio thresholds read from the
configuration, 0..1 scores, and severities (models/detectors/common.py re-exports them)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from models.findings import SEVERITIES
from schemas.fields import amount_to_cents

# -- money and ratios in thresholds, scores ---------------------------------------------------


def cents_of(value: Any) -> int:
    """A money threshold (a decimal string in the config) as integer cents."""
    return _cents_of_text(str(value).strip())


def fraction_of(value: Any) -> Fraction:
    """A ratio threshold (a decimal string in the config) as an exact fraction."""
    return _fraction_of_text(str(value).strip())


# the configuration holds a few dozen distinct figures, read for every finding judged
@lru_cache(maxsize=1024)
def _cents_of_text(text: str) -> int:
    return amount_to_cents(text)


@lru_cache(maxsize=1024)
def _fraction_of_text(text: str) -> Fraction:
    return Fraction(Decimal(text))


def score_of(value: Fraction | float, scale: Fraction | float) -> float:
    """A 0..1 score: value / scale, capped at 1."""
    if not scale or scale <= 0:
        return 1.0
    if type(value) is int and type(scale) in (int, Fraction):
        # the same quotient, correctly rounded by int division as float(Fraction) rounds it
        return round(min(1.0, max(0.0, value * scale.denominator / scale.numerator)), 4)
    return round(min(1.0, max(0.0, float(Fraction(value) / Fraction(scale)))), 4)


# -- severities -----------------------------------------------------------------------------


def bump(severity: str, levels: int = 1) -> str:
    index = min(len(SEVERITIES) - 1, SEVERITIES.index(severity) + levels)
    return SEVERITIES[index]


def at_least(severity: str, minimum: str) -> str:
    return severity if SEVERITIES.index(severity) >= SEVERITIES.index(minimum) else minimum


def most_severe(*severities: str) -> str:
    return max(severities, key=SEVERITIES.index)


def severity_by_amount(cents: int, high_cents: int, critical_cents: int, floor: str = "medium") -> str:
    if cents >= critical_cents:
        return "critical"
    if cents >= high_cents:
        return at_least("high", floor)
    return floor
