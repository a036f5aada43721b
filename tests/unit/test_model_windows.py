"""models/windows.py: hour windows and Beijing-day windows in epoch seconds."""

from __future__ import annotations

import pytest

from models.windows import DAY, GRAINS, HOUR, beijing_day_start, hour_start, window_start
from schemas.fields import epoch_seconds

MIDNIGHT_BJ = epoch_seconds("2026-11-25T00:00:00+08:00")  # 2026-11-24T16:00:00Z


def test_constants():
    assert HOUR == 3600 and DAY == 86400
    assert GRAINS == ("hour", "day")


def test_hour_start():
    ts = epoch_seconds("2026-11-25T09:59:59+08:00")
    assert hour_start(ts) == epoch_seconds("2026-11-25T09:00:00+08:00")
    assert hour_start(epoch_seconds("2026-11-25T10:00:00+08:00")) == epoch_seconds(
        "2026-11-25T10:00:00+08:00"
    )


def test_beijing_day_start_at_midnight_is_itself():
    assert beijing_day_start(MIDNIGHT_BJ) == MIDNIGHT_BJ
    assert MIDNIGHT_BJ == epoch_seconds("2026-11-24T16:00:00Z")


def test_beijing_day_start_last_second_belongs_to_previous_day():
    last = epoch_seconds("2026-11-24T23:59:59+08:00")
    assert last == epoch_seconds("2026-11-24T15:59:59Z")
    assert beijing_day_start(last) == MIDNIGHT_BJ - DAY


def test_beijing_day_start_covers_the_whole_day():
    for offset in (0, 1, HOUR, 12 * HOUR, DAY - 1):
        assert beijing_day_start(MIDNIGHT_BJ + offset) == MIDNIGHT_BJ
    assert beijing_day_start(MIDNIGHT_BJ + DAY) == MIDNIGHT_BJ + DAY


def test_beijing_day_is_not_the_utc_day():
    # 2026-11-24T20:00Z is on UTC day 24 but Beijing day 25
    ts = epoch_seconds("2026-11-24T20:00:00Z")
    assert beijing_day_start(ts) == MIDNIGHT_BJ
    assert ts - ts % DAY != MIDNIGHT_BJ


def test_window_start_by_grain():
    ts = epoch_seconds("2026-11-25T09:30:15+08:00")
    assert window_start(ts, "hour") == epoch_seconds("2026-11-25T09:00:00+08:00")
    assert window_start(ts, "day") == MIDNIGHT_BJ


def test_window_start_unknown_grain():
    with pytest.raises(ValueError, match="week"):
        window_start(0, "week")
