"""From findings to alerts: one violation is one alert that updates (CONTRACT.md §4).

Detectors report the whole violation as it stands (the day's total so far, the current gap), so
the newest finding for a key carries the figures. A finding that changes none of the figures is a
replay or a repeat and produces no update: re-sending data creates no new alert and changes no
alert's figures.
"""

from __future__ import annotations

from datetime import UTC, datetime

from models.findings import Finding
from schemas.alerts import AlertData, DetectorInfo, Evidence, Explanation
from schemas.fields import cents_to_text


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def alert_data(finding: Finding, region: str, at: int, previous: AlertData | None = None) -> AlertData:
    name, _, version = (finding.detector_version or f"{finding.typology}/").partition("/")
    return AlertData(
        alert_id=finding.alert_id,
        typology=finding.typology,
        severity=finding.severity,
        score=round(finding.score, 4),
        institution_id=finding.institution_id,
        region=region,
        accounts=list(finding.accounts),
        amount=cents_to_text(finding.amount_cents),
        window_start=_iso(finding.window_start),
        window_end=_iso(finding.window_end),
        evidence=Evidence(
            record_ids=sorted(finding.record_ids),
            metrics=dict(finding.metrics),
            thresholds=dict(finding.thresholds),
        ),
        explanation=Explanation(zh=finding.explanation_zh, en=finding.explanation_en),
        detector=DetectorInfo(name=name, version=version),
        rule=finding.rule,
        status=previous.status if previous else "open",
        created_at=previous.created_at if previous else _iso(at),
        updated_at=_iso(at),
        revision=previous.revision + 1 if previous else 1,
    )


def _figures(alert: AlertData) -> tuple:
    return (
        alert.severity,
        alert.score,
        alert.institution_id,
        alert.region,
        tuple(alert.accounts),
        alert.amount,
        alert.window_start,
        alert.window_end,
        tuple(alert.evidence.record_ids),
        tuple(sorted(alert.evidence.metrics.items(), key=lambda kv: kv[0])),
        alert.detector.version,
    )


def apply_finding(previous: AlertData | None, finding: Finding, region: str, at: int) -> AlertData | None:
    """The alert after ``finding``, or None when the finding changes no figure of ``previous``."""
    candidate = alert_data(finding, region, at, previous)
    if previous is not None and _figures(candidate) == _figures(previous):
        return None
    return candidate
