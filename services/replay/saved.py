"""A replay report as the rows of its tables (schemas/ddl.py migration 8), and those rows as the
API shows them. Pure: no storage here (services/replay/store.py writes, services/gateway/
replay_reads.py reads).

The alerts keep the severity the run that raised them gave them; a regraded one the candidate's,
and the baseline's beside it. The counts are the comparison's cells (services/replay/compare.py),
so the groupings a reader sees are summed from whatever cells its region holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from schemas.replays import ReplayAlert, ReplayGroup, ReplaySide, ReplayTotals, SavedReplay
from services.replay.compare import AlertView, CellCounts, Comparison, grouped

HEADER_COLUMNS = ("replay_id", "saved_at", "since", "until", "doc")
ALERT_COLUMNS = (
    "replay_id", "kind", "alert_id", "typology", "institution_id", "region", "severity", "baseline_severity",
    "amount", "window_start", "window_end",
)  # fmt: skip
COUNT_COLUMNS = (
    "replay_id", "typology", "institution_id", "region", "baseline", "candidate", "gained", "lost", "regraded",
)  # fmt: skip


def _name(file: str | None) -> str | None:
    # the file's name only: where an analyst keeps it is no business of the readers
    return Path(file).name if file else None


def header(report: Any) -> SavedReplay:
    """What a ReplayReport (services/replay/engine.py) was: its period and both runs' settings."""
    return SavedReplay(
        since=report.since,
        until=report.until,
        baseline=ReplaySide(
            thresholds=report.baseline_thresholds,
            thresholds_file=_name(report.baseline_file),
            model=report.baseline_model,
        ),
        candidate=ReplaySide(
            thresholds=report.candidate_thresholds,
            thresholds_file=_name(report.candidate_file),
            model=report.candidate_model,
        ),
        records=report.records,
        messages=report.messages,
        elapsed_s=report.elapsed_s,
    )


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def header_row(replay_id: str, saved_at: datetime, saved: SavedReplay) -> list[Any]:
    doc = msgspec.json.encode(saved).decode("utf-8")
    return [replay_id, saved_at, _time(saved.since), _time(saved.until), doc]


def _alert_row(replay_id: str, kind: str, a: AlertView, baseline_severity: str = "") -> list[Any]:
    return [
        replay_id, kind, a.alert_id, a.typology, a.institution_id, a.region, a.severity, baseline_severity,
        a.amount, a.window_start, a.window_end,
    ]  # fmt: skip


def alert_rows(replay_id: str, comparison: Comparison) -> list[list[Any]]:
    rows = [_alert_row(replay_id, "gained", a) for a in comparison.gained]
    rows += [_alert_row(replay_id, "lost", a) for a in comparison.lost]
    rows += [_alert_row(replay_id, "regraded", c.alert, c.baseline) for c in comparison.changed]
    return rows


def count_rows(replay_id: str, comparison: Comparison) -> list[list[Any]]:
    return [
        [
            replay_id,
            c.typology,
            c.institution_id,
            c.region,
            c.baseline,
            c.candidate,
            c.gained,
            c.lost,
            c.changed,
        ]
        for c in comparison.cells
    ]


# --- read back ----------------------------------------------------------------------------------


def cell(row: Sequence[Any]) -> CellCounts:
    """A replay_counts row, its columns in COUNT_COLUMNS order without the replay id."""
    typology, institution_id, region, baseline, candidate, gained, lost, regraded = row
    return CellCounts(
        typology=typology, institution_id=institution_id, region=region, baseline=int(baseline),
        candidate=int(candidate), gained=int(gained), lost=int(lost), changed=int(regraded),
    )  # fmt: skip


def totals(cells: Iterable[CellCounts]) -> ReplayTotals:
    sums = [0, 0, 0, 0, 0]
    for c in cells:
        for column, value in enumerate((c.baseline, c.candidate, c.gained, c.lost, c.changed)):
            sums[column] += value
    return ReplayTotals(
        baseline_alerts=sums[0], candidate_alerts=sums[1], gained=sums[2], lost=sums[3], regraded=sums[4]
    )


def groups(cells: Sequence[CellCounts], by: str) -> list[ReplayGroup]:
    """The cells summed per typology, institution or region, ordered as the terminal shows them."""
    return [
        ReplayGroup(
            name=g.name,
            baseline=g.baseline,
            candidate=g.candidate,
            gained=g.gained,
            lost=g.lost,
            regraded=g.changed,
        )  # fmt: skip
        for g in grouped(cells, by)
    ]


def replay_alert(row: Sequence[Any]) -> ReplayAlert:
    """A replay_alerts row, its columns in ALERT_COLUMNS order without the replay id."""
    kind, alert_id, typology, institution_id, region, severity, baseline_severity, amount, start, end = row
    return ReplayAlert(
        kind=kind, alert_id=alert_id, typology=typology, institution_id=institution_id, region=region,
        severity=severity, baseline_severity=baseline_severity or None, amount=amount, window_start=start,
        window_end=end,
    )  # fmt: skip
