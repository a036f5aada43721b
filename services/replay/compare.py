"""Two runs' alerts side by side: which a candidate configuration gains, loses or grades
differently, counted per typology, institution and region.

Pure: alert data in, a Comparison out. An alert's id is derived from its typology and what
identifies the violation (models/findings.alert_id_for), so the same violation has the same id
under any thresholds, and the id alone pairs an alert of one run with its twin in the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from models.findings import TYPOLOGIES

NO_INSTITUTION = "(none)"  # an alert on an account no institution owns
NO_REGION = "(none)"


class AlertView(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay reports of one alert: enough to find it, never an account number."""

    alert_id: str
    typology: str
    institution_id: str
    region: str
    severity: str
    amount: str  # CNY, as the alert carries it
    window_start: str
    window_end: str

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> AlertView:
        """The view of an alert's data (schemas/alerts.AlertData as builtins)."""
        return cls(
            alert_id=str(data["alert_id"]),
            typology=str(data["typology"]),
            institution_id=str(data.get("institution_id") or ""),
            region=str(data.get("region") or ""),
            severity=str(data.get("severity") or ""),
            amount=str(data.get("amount") or "0.00"),
            window_start=str(data.get("window_start") or ""),
            window_end=str(data.get("window_end") or ""),
        )


class SeverityChange(msgspec.Struct, frozen=True, kw_only=True):
    """An alert both runs raise, graded differently: ``alert`` as the candidate has it."""

    alert: AlertView
    baseline: str
    candidate: str


class GroupCounts(msgspec.Struct, frozen=True, kw_only=True):
    """One typology's, institution's or region's alerts under each run, and the difference."""

    name: str
    baseline: int
    candidate: int
    gained: int
    lost: int
    changed: int  # both runs raise it, with another severity


class CellCounts(msgspec.Struct, frozen=True, kw_only=True):
    """The alerts of one typology, institution and region under each run: the finest grain, from
    which every grouping is summed. A saved replay keeps these, so that a desk's view of it is
    summed from its own region's cells alone (services/gateway/replay_reads.py)."""

    typology: str
    institution_id: str  # "" when the alert names no institution
    region: str
    baseline: int
    candidate: int
    gained: int
    lost: int
    changed: int


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    baseline_alerts: int
    candidate_alerts: int
    unchanged: int  # in both runs, same severity (figures may still differ)
    gained: list[AlertView]  # raised by the candidate only
    lost: list[AlertView]  # raised by the baseline only
    changed: list[SeverityChange]
    by_typology: list[GroupCounts]
    by_institution: list[GroupCounts]
    by_region: list[GroupCounts]
    cells: list[CellCounts]  # per (typology, institution, region), in that order

    @property
    def identical(self) -> bool:
        return not (self.gained or self.lost or self.changed)


def _order(alert: AlertView) -> tuple[str, str, str]:
    return (alert.typology, alert.institution_id, alert.alert_id)


def _typology_rank(name: str) -> tuple[int, str]:
    # the contract's order (CONTRACT.md §4), an unknown typology after them
    return (TYPOLOGIES.index(name) if name in TYPOLOGIES else len(TYPOLOGIES), name)


def count_cells(
    baseline: Iterable[AlertView],
    candidate: Iterable[AlertView],
    gained: Iterable[AlertView],
    lost: Iterable[AlertView],
    changed: Iterable[SeverityChange],
) -> list[CellCounts]:
    """Each list's alerts counted per (typology, institution, region)."""
    counts: dict[tuple[str, str, str], list[int]] = {}
    columns = (baseline, candidate, gained, lost, (change.alert for change in changed))
    for column, alerts in enumerate(columns):
        for a in alerts:
            counts.setdefault((a.typology, a.institution_id, a.region), [0, 0, 0, 0, 0])[column] += 1
    return [
        CellCounts(
            typology=t, institution_id=i, region=r, baseline=b, candidate=c, gained=g, lost=lo, changed=ch
        )
        for (t, i, r), (b, c, g, lo, ch) in sorted(counts.items())
    ]


GROUP_KEYS: dict[str, Callable[[CellCounts], str]] = {
    "typology": lambda cell: cell.typology,
    "institution": lambda cell: cell.institution_id or NO_INSTITUTION,
    "region": lambda cell: cell.region or NO_REGION,
}


def grouped(cells: Iterable[CellCounts], by: str) -> list[GroupCounts]:
    """The cells summed per typology (in the contract's order), institution or region (the most
    moved first: where a reviewer of the candidate should look)."""
    key = GROUP_KEYS[by]
    sums: dict[str, list[int]] = {}
    for cell in cells:
        total = sums.setdefault(key(cell), [0, 0, 0, 0, 0])
        for column, value in enumerate((cell.baseline, cell.candidate, cell.gained, cell.lost, cell.changed)):
            total[column] += value
    groups = [
        GroupCounts(name=name, baseline=b, candidate=c, gained=g, lost=lo, changed=ch)
        for name, (b, c, g, lo, ch) in sums.items()
    ]
    if by == "typology":
        groups.sort(key=lambda g: _typology_rank(g.name))
    else:
        groups.sort(key=lambda g: (-(g.gained + g.lost + g.changed), -g.candidate, g.name))
    return groups


def compare(baseline: Iterable[AlertView], candidate: Iterable[AlertView]) -> Comparison:
    """The candidate run's alerts against the baseline's, paired by alert id."""
    before = {alert.alert_id: alert for alert in baseline}
    after = {alert.alert_id: alert for alert in candidate}
    gained = sorted((a for alert_id, a in after.items() if alert_id not in before), key=_order)
    lost = sorted((a for alert_id, a in before.items() if alert_id not in after), key=_order)
    changed = sorted(
        (
            SeverityChange(alert=a, baseline=before[alert_id].severity, candidate=a.severity)
            for alert_id, a in after.items()
            if alert_id in before and before[alert_id].severity != a.severity
        ),
        key=lambda change: _order(change.alert),
    )
    both = sum(1 for alert_id in after if alert_id in before)
    cells = count_cells(before.values(), after.values(), gained, lost, changed)
    return Comparison(
        baseline_alerts=len(before),
        candidate_alerts=len(after),
        unchanged=both - len(changed),
        gained=gained,
        lost=lost,
        changed=changed,
        by_typology=grouped(cells, "typology"),
        by_institution=grouped(cells, "institution"),
        by_region=grouped(cells, "region"),
        cells=cells,
    )


def latest_revisions(into: dict[str, tuple[int, AlertView]], events: Iterable[Mapping[str, Any]]) -> None:
    """Fold alert revisions (as the alerts topic carries them) into the newest per alert id, the
    way ``fundwatch eval`` folds them (models/evaluation.fold_alert_events), so both count alike.
    Only the view is kept: a week of a province revises its alerts hundreds of thousands of times."""
    for data in events:
        alert_id = data["alert_id"]
        revision = int(data.get("revision", 1))
        known = into.get(alert_id)
        if known is None or revision >= known[0]:
            into[alert_id] = (revision, AlertView.of(data))
