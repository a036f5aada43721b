"""A replay report for people (terminal tables) and for programs (JSON)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

from schemas.replays import ModelRef
from services.replay.compare import AlertView, GroupCounts, SeverityChange
from services.replay.engine import ReplayReport

GROUP_HEADERS = ("baseline", "candidate", "gained", "lost", "severity changed")
ALERT_HEADERS = ("alert id", "typology", "institution", "region", "severity", "amount (CNY)")


def to_json(report: ReplayReport) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"


def write_json(report: ReplayReport, path: Path) -> None:
    path.write_bytes(to_json(report))


def _group_table(title: str, first: str, groups: list[GroupCounts], totals: bool) -> Any:
    from rich.table import Table

    table = Table(title=title)
    table.add_column(first)
    for header in GROUP_HEADERS:
        table.add_column(header, justify="right")
    for g in groups:
        table.add_row(g.name, str(g.baseline), str(g.candidate), f"+{g.gained}", f"-{g.lost}", str(g.changed))
    if totals:
        table.add_row(
            "all", str(sum(g.baseline for g in groups)), str(sum(g.candidate for g in groups)),
            f"+{sum(g.gained for g in groups)}", f"-{sum(g.lost for g in groups)}",
            str(sum(g.changed for g in groups)), style="bold",
        )  # fmt: skip
    return table


def _alert_table(title: str, alerts: list[AlertView], limit: int) -> Any:
    from rich.table import Table

    shown = alerts[:limit]
    more = f" (first {len(shown)} of {len(alerts)}; all in --json)" if len(alerts) > len(shown) else ""
    table = Table(title=title + more)
    for header in ALERT_HEADERS:
        table.add_column(header, justify="right" if header == "amount (CNY)" else "left")
    for a in shown:
        table.add_row(a.alert_id, a.typology, a.institution_id or "—", a.region or "—", a.severity, a.amount)
    return table


def _change_table(changes: list[SeverityChange], limit: int) -> Any:
    from rich.table import Table

    shown = changes[:limit]
    more = f" (first {len(shown)} of {len(changes)}; all in --json)" if len(changes) > len(shown) else ""
    table = Table(title="severity changed" + more)
    for header in ("alert id", "typology", "institution", "region", "baseline", "candidate", "amount (CNY)"):
        table.add_column(header, justify="right" if header == "amount (CNY)" else "left")
    for c in shown:
        a = c.alert
        table.add_row(
            a.alert_id,
            a.typology,
            a.institution_id or "—",
            a.region or "—",
            c.baseline,
            c.candidate,
            a.amount,
        )
    return table


def describe_model(model: ModelRef | None) -> str:
    """An artefact as a reviewer compares two: its id and the start of its digest."""
    if model is None:
        return "no anomaly model"
    return f"anomaly model {model.artefact_id} (digest {model.digest[:16]})"


def _side(name: str, version: str, file: str | None, model: ModelRef | None) -> str:
    where = f" from {file}" if file else ""
    return f"  {name}: thresholds {version}{where}; {describe_model(model)}"


def print_report(report: ReplayReport, limit: int = 20, top: int = 10, console: Any = None) -> None:
    """Gained and lost per typology, then the institutions and regions that moved most, then the
    alerts themselves (the first ``limit`` of each list)."""
    from rich.console import Console

    # wide enough for every column when the output goes to a file or a pipe
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    c = report.comparison
    console.print(
        f"fundwatch replay: records of [{report.since}, {report.until}) from {report.storage}: "
        f"{report.records:,} records in {report.messages:,} messages, {report.elapsed_s:.1f} s"
    )
    console.print(_side("baseline", report.baseline_thresholds, report.baseline_file, report.baseline_model))
    console.print(
        _side("candidate", report.candidate_thresholds, report.candidate_file, report.candidate_model)
    )
    console.print(
        _group_table("alerts per typology", "typology", c.by_typology, totals=True),
    )
    moved = [g for g in c.by_institution if g.gained or g.lost or g.changed][:top]
    if moved:
        console.print(
            _group_table(f"institutions that moved most (top {len(moved)})", "institution", moved, False)
        )
    moved = [g for g in c.by_region if g.gained or g.lost or g.changed][:top]
    if moved:
        console.print(_group_table(f"regions that moved most (top {len(moved)})", "region", moved, False))
    if c.gained:
        console.print(_alert_table("gained: raised by the candidate only", c.gained, limit))
    if c.lost:
        console.print(_alert_table("lost: raised by the baseline only", c.lost, limit))
    if c.changed:
        console.print(_change_table(c.changed, limit))
    verdict = (
        "the candidate raises the same alerts with the same severities"
        if c.identical
        else f"{len(c.gained)} gained, {len(c.lost)} lost, {len(c.changed)} with another severity"
    )
    console.print(
        f"{c.baseline_alerts:,} alerts under the baseline, {c.candidate_alerts:,} under the candidate: {verdict}."
    )
