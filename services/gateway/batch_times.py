"""A batch's record times converted to epoch seconds as one array: the usual form of a pushed time
("2026-11-25T09:30:00+08:00": 25 characters, whole seconds, a numeric offset) read digit by digit
with numpy, for every record at once.

A batch's times are nearly all distinct to the second, so converting each distinct text once
(``reader._epoch``) still meant a regex and a conversion per record. Here the times joined are
matched by one regex (each exactly the usual form) and their digits read as a matrix; only a time
whose fields lie where the calendar leaves no doubt (month 1-12, the month's days, hour under 24,
minutes and seconds under 60, offset under 24 hours, on or after 2000-01-01 UTC) is converted
here. Anything else (another form, a date the calendar may refuse) gives None, and the caller
converts each text on its own, which gives every time its own answer.
"""

from __future__ import annotations

import re

import numpy as np

from schemas.fields import EARLIEST_EPOCH

_USUAL_LENGTH = len("2026-11-25T09:30:00+08:00")
_USUAL = re.compile(
    r"(?:(?:20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2})+"
).fullmatch
_ZERO = ord("0")
_MINUS = ord("-")
# days before each month's first in a common year, and each month's length
_DAYS_BEFORE = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], dtype=np.int64)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_DAY = 86_400
_DAYS_1970_TO_2000 = 10_957


def usual_epochs(times: tuple[str, ...] | list[str]) -> list[int] | None:
    """Epoch seconds of each time, when every one is of the usual form and plainly on the
    calendar; None otherwise."""
    # each time of the usual length, so that each row of the matrix is one record's time
    if set(map(len, times)) != {_USUAL_LENGTH}:
        return None
    joined = "".join(times)
    if _USUAL(joined) is None:
        return None
    digits = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(len(times), _USUAL_LENGTH)
    number = digits.astype(np.int64) - _ZERO

    def field(start: int, width: int) -> np.ndarray:
        value = number[:, start]
        for column in range(start + 1, start + width):
            value = value * 10 + number[:, column]
        return value

    year, month, day = field(0, 4), field(5, 2), field(8, 2)
    hour, minute, second = field(11, 2), field(14, 2), field(17, 2)
    offset_hours, offset_minutes = field(20, 2), field(23, 2)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    month_index = np.where(month_ok, month, 0)
    month_days = _MONTH_DAYS[month_index] + (leap & (month == 2))
    plain = (
        month_ok & (day >= 1) & (day <= month_days) & (hour < 24) & (minute < 60) & (second < 60)
        & (offset_hours < 24) & (offset_minutes < 60)
    )  # fmt: skip
    if not plain.all():
        return None
    # days since 2000-01-01 (a leap year, as every fourth after it but 2100)
    years_after = year - 2000
    leap_days_before = (years_after + 3) // 4  # 2000, 2004, ... before the year; 2100 is the last year
    days = years_after * 365 + leap_days_before + _DAYS_BEFORE[month_index] + (leap & (month > 2)) + day - 1
    sign = np.where(digits[:, 19] == _MINUS, -1, 1)
    offset = sign * (offset_hours * 3600 + offset_minutes * 60)
    epochs = (days + _DAYS_1970_TO_2000) * _DAY + hour * 3600 + minute * 60 + second - offset
    if int(epochs.min()) < EARLIEST_EPOCH:
        return None
    return epochs.tolist()
