"""Thresholds as exact numbers, each text read once: common.fraction_of and common.cents_of
depend on a configuration value's text alone, and institution-level detectors read the same few
values for every product on every message."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from models.detectors.common import cents_of, fraction_of

_FRACTIONS: dict[str, Fraction] = {}
_CENTS: dict[str, int] = {}
_MAX = 4096  # distinct texts kept (a process reads a handful)


def fraction(value: Any) -> Fraction:
    """common.fraction_of(value), read once per text (a Fraction is immutable: shared safely)."""
    text = str(value)
    found = _FRACTIONS.get(text)
    if found is None:
        found = fraction_of(text)
        if len(_FRACTIONS) >= _MAX:
            _FRACTIONS.clear()
        _FRACTIONS[text] = found
    return found


def cents(value: Any) -> int:
    """common.cents_of(value), read once per text."""
    text = str(value)
    found = _CENTS.get(text)
    if found is None:
        found = cents_of(text)
        if len(_CENTS) >= _MAX:
            _CENTS.clear()
        _CENTS[text] = found
    return found
