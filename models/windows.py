"""Event-time windows. Days are Beijing calendar days: the desks' working day, and the day the
large-value reporting rules count in (PBoC Order [2016] No. 3)."""

from __future__ import annotations

HOUR = 3600
DAY = 86400
BEIJING_OFFSET = 8 * HOUR  # fixed: no daylight saving in China since 1991

GRAINS = ("hour", "day")


def hour_start(ts: int) -> int:
    return ts - ts % HOUR


def beijing_day_start(ts: int) -> int:
    """Epoch seconds of the Beijing midnight that opens the day holding ``ts``."""
    local = ts + BEIJING_OFFSET
    return local - local % DAY - BEIJING_OFFSET


def window_start(ts: int, grain: str) -> int:
    if grain == "hour":
        return hour_start(ts)
    if grain == "day":
        return beijing_day_start(ts)
    raise ValueError(f"unknown grain {grain!r}")
