"""The desks' budget for `anomaly` alerts: at most so many per scope and Beijing day, and on
average no more than the daily rate over any week, the highest scores first (the pure part;
streams/anomaly_budget.py applies it where the worker publishes alerts).

The scope of an alert is the region of its account's institution. An account of no institution
(a free investor's, a company customer's) is in no desk's region: those used to share the one
region "" of a whole province, so a few alerts a day stood for every such account of every bank.
Their scope is the bank that keeps them (``bank:<bank code>``, ``budget_scope``): the unit that
holds and reports them, with as many accounts as they have there. The alert's ``region`` stays
"" (the desks' view is unchanged); only the budget's grouping differs. The rate is the same for
every scope.

Why there and not in the detector: a detector sees one account, and its step must not depend on
other accounts or on the order accounts are stepped in, so no detector can know that its day is
the eleventh of its scope. The budget is decided where alerts leave the worker, over the anomaly
alerts of each take, with a ledger per (Beijing day, scope) of the alerts let through.

The rule, for the alerts of one scope-day in a take, highest score first (ties by alert id):

- an alert let through before is let through again: its updates, and a replay, change nothing;
- a new one is let through while the scope-day has room: ``capacity × burst`` alerts in all,
  of which at most that less ``reserved`` ``low`` ones, so a share of the day stays for the
  ``medium`` ones (above the role's higher quantile), the most unusual days, however late they
  close; and while every run of ``window_days`` days that holds its day has let through fewer
  than ``capacity × window_days``: over a week the scope receives no more than the daily rate
  on average, while a day with several patterns may use the room that quiet days left. With
  a fixed room per day, a scope of a few dozen accounts (a bank's accounts of no institution,
  where most laundering-like movements run) had one alert a day and withheld the second
  pattern of a busy day, although the week stayed far below its rate (docs/detection.md);
- otherwise it is withheld: not written and not published, only counted.

An alert once published is never withdrawn, so the budget cannot take back room from an earlier
alert for a later, higher one: "highest first" holds within a take and, across takes, through
the room reserved for the higher band. For the same messages in the same order the decisions
are the same; the ledger is rebuilt from the alerts stored (``admit_stored``) when a worker
starts, so a restart does not open the budget again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from fractions import Fraction

import msgspec

from models.findings import SEVERITIES

KEEP_DAYS = 45  # scope-days older than the newest by this much are forgotten (as alert memory)
BANK_SCOPE = "bank:"  # the scope of accounts in no region: "bank:" + their bank's code


def budget_scope(region: str, bank_code: str | None) -> str:
    """The budget's scope of an account: its institution's region, else its bank's scope (""
    when neither is known)."""
    if region or not bank_code:
        return region
    return BANK_SCOPE + bank_code


class Candidate(msgspec.Struct, frozen=True):
    alert_id: str
    day: str  # the Beijing day judged, YYYY-MM-DD
    region: str  # the budget's scope (budget_scope): a region, or "bank:<code>"
    score: float
    severity: str


class BudgetSettings(msgspec.Struct, frozen=True):
    per_100_accounts: Fraction  # alerts per scope-day per 100 accounts registered in the scope
    min_per_region: int  # ... but at least this many
    reserved_share: Fraction  # of a scope-day's room, kept for medium alerts and above
    burst: int = 1  # a scope-day may let through up to this many days' capacity ...
    window_days: int = 1  # ... while every run of this many days stays within its days' capacity

    def capacity(self, accounts: int) -> int:
        """The daily rate of a scope of ``accounts`` registered accounts."""
        return max(self.min_per_region, math.floor(self.per_100_accounts * accounts / 100))

    def reserved(self, capacity: int) -> int:
        return math.floor(self.reserved_share * capacity)


def settings_of(config: dict) -> BudgetSettings:
    """The budget from the `anomaly` thresholds (models/thresholds.toml)."""
    return BudgetSettings(
        per_100_accounts=Fraction(str(config.get("daily_per_100_accounts", "1"))),
        min_per_region=int(config.get("daily_min_per_region", 1)),
        reserved_share=Fraction(str(config.get("reserved_share", "0.5"))),
        burst=int(config.get("daily_burst", 1)),
        window_days=int(config.get("window_days", 1)),
    )


class RegionDay(msgspec.Struct):
    admitted: dict[str, float] = {}  # alert id -> its score when let through
    low: int = 0  # of them, let through as low (they may not use the reserved room)
    withheld: int = 0


class Decision(msgspec.Struct, frozen=True):
    candidate: Candidate
    admitted: bool
    capacity: int  # the room of its region-day (the daily rate × burst), as decided
    used: int  # alerts let through in its region-day, this one included if admitted


class BudgetLedger:
    """The alerts let through per (Beijing day, scope)."""

    def __init__(self) -> None:
        self.days: dict[tuple[str, str], RegionDay] = {}

    def admit_stored(self, alert_id: str, day: str, region: str, score: float, severity: str) -> None:
        """An alert found stored (written before this ledger existed): it used its room."""
        region_day = self.days.setdefault((day, region), RegionDay())
        if alert_id not in region_day.admitted:
            region_day.admitted[alert_id] = score
            region_day.low += _is_low(severity)

    def decide(
        self, candidates: Iterable[Candidate], settings: BudgetSettings, capacity_of: Callable[[str], int]
    ) -> list[Decision]:
        """Let candidates through or withhold them (module docstring), highest score first within
        each scope-day; ``capacity_of(scope)`` is the scope's daily rate."""
        ordered = sorted(candidates, key=lambda c: (c.day, c.region, -c.score, c.alert_id))
        decisions = []
        for candidate in ordered:
            region_day = self.days.setdefault((candidate.day, candidate.region), RegionDay())
            daily = capacity_of(candidate.region)
            room = daily * settings.burst
            if candidate.alert_id in region_day.admitted:
                region_day.admitted[candidate.alert_id] = candidate.score
                decisions.append(Decision(candidate, True, room, len(region_day.admitted)))
                continue
            low = _is_low(candidate.severity)
            admitted = (
                len(region_day.admitted) < room
                and (not low or region_day.low < room - settings.reserved(room))
                and self._window_has_room(candidate, daily, settings.window_days)
            )
            if admitted:
                region_day.admitted[candidate.alert_id] = candidate.score
                region_day.low += low
            else:
                region_day.withheld += 1
            decisions.append(Decision(candidate, admitted, room, len(region_day.admitted)))
        self._forget_old()
        return decisions

    def _window_has_room(self, candidate: Candidate, daily: int, window_days: int) -> bool:
        """Whether every run of ``window_days`` days holding the candidate's day has let through
        fewer than ``daily × window_days`` of its scope (a day judged late counts in the runs
        after it too)."""
        # from window_days - 1 days before the candidate's day to as many after it
        days = (self.days.get((_days_before(candidate.day, -k), candidate.region)) for k in range(1 - window_days, window_days))
        used = [len(region_day.admitted) if region_day else 0 for region_day in days]
        return all(sum(used[start : start + window_days]) < daily * window_days for start in range(window_days))

    def _forget_old(self) -> None:
        if not self.days:
            return
        newest = max(day for day, _ in self.days)
        horizon = _days_before(newest, KEEP_DAYS)
        self.days = {key: value for key, value in self.days.items() if key[0] >= horizon}


def _is_low(severity: str) -> bool:
    return SEVERITIES.index(severity) < SEVERITIES.index("medium")


def _days_before(day: str, days: int) -> str:
    return (date.fromisoformat(day) - timedelta(days=days)).isoformat()
