"""When money moves: the day, week and month rhythm of a Chinese custody bank's books."""

from __future__ import annotations

import calendar
import math
import random
from datetime import datetime

from schemas.fields import BEIJING

# Relative activity per Beijing hour on a weekday: a morning ramp, a lunch dip, an afternoon
# plateau until the interbank systems' cut-off, online evenings, quiet small hours.
HOUR_WEIGHTS: tuple[float, ...] = (
    0.06, 0.03, 0.02, 0.02, 0.02, 0.04, 0.10, 0.22, 0.50, 0.85, 1.00, 1.00,
    0.70, 0.75, 0.95, 1.00, 0.90, 0.70, 0.50, 0.45, 0.50, 0.40, 0.22, 0.12,
)  # fmt: skip
WEEKEND_FACTOR = 0.45
# Salaries, repayments and merchant settlements bunch up on the last two days of a month.
MONTH_END_FACTOR = 1.35

# Hours at peak intensity that an average day amounts to (month ends aside).
PEAK_HOURS_PER_DAY = sum(HOUR_WEIGHTS) * (5 + 2 * WEEKEND_FACTOR) / 7


def activity_factor(ts: int) -> float:
    """Activity at Unix second ``ts`` relative to a weekday's busiest hour."""
    local = datetime.fromtimestamp(ts, BEIJING)
    factor = HOUR_WEIGHTS[local.hour]
    if local.weekday() >= 5:
        factor *= WEEKEND_FACTOR
    if local.day >= calendar.monthrange(local.year, local.month)[1] - 1:
        factor *= MONTH_END_FACTOR
    return factor


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw from ``rng``; the normal approximation above 30 is exact enough here."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, product, count = math.exp(-lam), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def intensity_for(records_per_second: float, wall_seconds_per_day: float) -> float:
    """The peak records per simulated hour that makes an average simulated day produce what
    ``records_per_second`` pushes in ``wall_seconds_per_day``."""
    return records_per_second * wall_seconds_per_day / PEAK_HOURS_PER_DAY
