"""Scoring the `anomaly` typology against the simulator's AMLSim-style patterns (pure).

The simulator's patterns (services/simulator/violations_patterns*) move money through several
accounts; an anomaly alert names one account and one Beijing day (key ``<account>:<day>``). So
the pairing is by account-day, not by record ids:

- a pattern's **account-days** are the (account, Beijing day) pairs on which one of its transfers
  debited or credited a registered account (a transfer to or from a bank outside the feed leaves
  no record there, so its outside side is no account-day);
- a pattern is **found** when an anomaly alert that reached the desks (after the budget) names
  one of its account-days;
- an alert **hits** when it names an account-day of a positive pattern; precision at the budget =
  alerts that hit / all anomaly alerts that reached the desks;
- a hard negative (a lawful look-alike) is **flagged** when an alert names one of its account-days;
- the alert rate = alerts × 100 / (registered accounts × simulated days): alerts per 100
  accounts per day, the issue's ceiling being 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from schemas.fields import BEIJING

POSITIVE = "positive"
HARD_NEGATIVE = "hard_negative"


class PatternDays(msgspec.Struct, frozen=True):
    injection_id: str
    shape: str
    kind: str  # positive or hard_negative
    account_days: frozenset[tuple[str, str]]  # (account id, Beijing day YYYY-MM-DD)


class AlertedDay(msgspec.Struct, frozen=True):
    alert_id: str
    account_id: str
    day: str  # the Beijing day judged, YYYY-MM-DD


class ShapeScore(msgspec.Struct):
    shape: str
    kind: str
    patterns: int = 0
    found: int = 0
    missed: list[str] = []

    @property
    def recall(self) -> float | None:
        return self.found / self.patterns if self.patterns else None


class AnomalyScore(msgspec.Struct):
    shapes: dict[str, ShapeScore]
    alerts: int
    alerts_hitting: int
    accounts: int
    days: float
    false_alerts: list[str] = []

    @property
    def positives(self) -> int:
        return sum(s.patterns for s in self.shapes.values() if s.kind == POSITIVE)

    @property
    def found(self) -> int:
        return sum(s.found for s in self.shapes.values() if s.kind == POSITIVE)

    @property
    def recall(self) -> float | None:
        return self.found / self.positives if self.positives else None

    @property
    def precision(self) -> float | None:
        return self.alerts_hitting / self.alerts if self.alerts else None

    @property
    def hard_negatives(self) -> int:
        return sum(s.patterns for s in self.shapes.values() if s.kind == HARD_NEGATIVE)

    @property
    def hard_negatives_flagged(self) -> int:
        return sum(s.found for s in self.shapes.values() if s.kind == HARD_NEGATIVE)

    @property
    def per_100_accounts_per_day(self) -> float | None:
        if not self.accounts or self.days <= 0:
            return None
        return self.alerts * 100 / (self.accounts * self.days)

    def meets(self, recall: float = 0.7, rate: float = 1.0) -> bool:
        """The issue's target: recall at least ``recall``, at most ``rate`` alerts per 100
        accounts per day, no hard negative flagged."""
        return (
            (self.recall or 0.0) >= recall
            and (self.per_100_accounts_per_day or 0.0) <= rate
            and self.hard_negatives_flagged == 0
        )

    def to_builtins(self) -> dict[str, Any]:
        return {
            "recall": self.recall,
            "precision": self.precision,
            "patterns": self.positives,
            "found": self.found,
            "alerts": self.alerts,
            "alerts_hitting": self.alerts_hitting,
            "accounts": self.accounts,
            "days": self.days,
            "alerts_per_100_accounts_per_day": self.per_100_accounts_per_day,
            "hard_negatives": self.hard_negatives,
            "hard_negatives_flagged": self.hard_negatives_flagged,
            "shapes": {
                name: {
                    "kind": s.kind,
                    "patterns": s.patterns,
                    "found": s.found,
                    "recall": s.recall,
                    "missed": s.missed,
                }  # fmt: skip
                for name, s in self.shapes.items()
            },
            "false_alerts": self.false_alerts[:20],
        }


def beijing_day(moment: str | int) -> str:
    """The Beijing date of an RFC 3339 time or of epoch seconds."""
    if isinstance(moment, str):
        at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    else:
        at = datetime.fromtimestamp(moment, BEIJING)
    return at.astimezone(BEIJING).date().isoformat()


def pattern_days(patterns: Iterable[Mapping[str, Any]], registered: Iterable[str]) -> list[PatternDays]:
    """Each planned pattern (``violations.json``'s ``patterns``: id, shape, kind and hops with
    ``at``, ``payer``, ``payee``) with its account-days among the ``registered`` accounts."""
    known = set(registered)
    out = []
    for pattern in patterns:
        days = set()
        for hop in pattern.get("hops") or ():
            day = beijing_day(hop["at"])
            days.update((account, day) for account in (hop["payer"], hop["payee"]) if account in known)
        out.append(PatternDays(str(pattern["injection_id"]), str(pattern["shape"]), str(pattern["kind"]),
                               frozenset(days)))  # fmt: skip
    return out


def score_patterns(
    patterns: Iterable[PatternDays], alerts: Iterable[AlertedDay], accounts: int, days: float
) -> AnomalyScore:
    """Recall per shape, precision at the budget, the alert rate and the hard negatives flagged
    (module docstring); ``accounts``: registered accounts, ``days``: simulated days."""
    alerts = list(alerts)
    alerted = {(a.account_id, a.day) for a in alerts}
    shapes: dict[str, ShapeScore] = {}
    positive_days: set[tuple[str, str]] = set()
    for pattern in sorted(patterns, key=lambda p: (p.kind != POSITIVE, p.shape, p.injection_id)):
        shape = shapes.setdefault(pattern.shape, ShapeScore(pattern.shape, pattern.kind))
        shape.patterns += 1
        if pattern.account_days & alerted:
            shape.found += 1
        else:
            shape.missed.append(pattern.injection_id)
        if pattern.kind == POSITIVE:
            positive_days |= pattern.account_days
    hitting = [a for a in alerts if (a.account_id, a.day) in positive_days]
    false = sorted(a.alert_id for a in alerts if (a.account_id, a.day) not in positive_days)
    return AnomalyScore(shapes, len(alerts), len(hitting), accounts, days, false)


def alerted_days(alerts: Iterable[Mapping[str, Any]]) -> list[AlertedDay]:
    """The anomaly alerts' (account, day) from their data (the latest revision of each)."""
    out = []
    for data in alerts:
        if data.get("typology") != "anomaly":
            continue
        metrics = (data.get("evidence") or {}).get("metrics") or {}
        accounts = data.get("accounts") or ()
        day = metrics.get("day") or beijing_day(str(data["window_start"]))
        if accounts:
            out.append(AlertedDay(str(data["alert_id"]), str(accounts[0]), str(day)))
    return out
