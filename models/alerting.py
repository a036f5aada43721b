"""From findings to alerts: one violation is one alert that updates (CONTRACT.md §4).

Detectors report the whole violation as it stands (the day's total so far, the current gap), so
the newest finding for a key carries the figures. A finding that changes none of the figures is a
replay or a repeat and produces no update: re-sending data creates no new alert and changes no
alert's figures.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter

import msgspec

from models.findings import Finding
from schemas.alerts import AlertData, DetectorInfo, Evidence, Explanation
from schemas.fields import cents_to_text


@lru_cache(maxsize=8192)  # an account's alerts share their days' bounds and the step's time
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
        tuple(sorted(alert.evidence.metrics.items(), key=itemgetter(0))),
        alert.detector.version,
    )


def apply_finding(previous: AlertData | None, finding: Finding, region: str, at: int) -> AlertData | None:
    """The alert after ``finding``, or None when the finding changes no figure of ``previous``."""
    candidate = alert_data(finding, region, at, previous)
    if previous is not None and _figures(candidate) == _figures(previous):
        return None
    return candidate


# --- alerts an account's detectors have raised, as the account's state remembers them ----------

# An alert neither ending nor reported again within this long (event time) of the newest the
# memory knows is forgotten by the account's or institution's state; its history stays in
# ClickHouse. A finding for it after that would open it again as a new revision 1.
ALERT_MEMORY_S = 45 * 86400


def _digest(alert: AlertData) -> str:
    return hashlib.blake2b(repr(_figures(alert)).encode("utf-8"), digest_size=12).hexdigest()


def fold_findings(
    known: dict[str, dict] | None, findings: list[Finding], region_of: dict[str, str], at: int
) -> tuple[dict[str, dict], list[tuple[str, AlertData]]]:
    """Fold findings (of one message, or of several in order) into what an account remembers of
    its alerts.

    Returns the new memory and the alerts that changed, each with its event type ("created" or
    "updated"). Findings that change no figure yield nothing, so replays are silent. An alert
    reported several times changes once, to its last report.
    """
    original = known or {}
    if not findings:
        # what a fold left is a fold's fixed point without findings: its mark is the newest time
        # of its entries, which it kept within ALERT_MEMORY_S of a mark no older, so nothing is
        # forgotten and nothing changes (most steps of most accounts find nothing)
        return dict(original), []
    # entries are replaced, never changed in place: the caller's may be shared, not copied
    memory = dict(original)
    changed: dict[str, tuple[str, AlertData]] = {}
    # The newest event time this memory knows of. An alert reported again is "touched" at it, so
    # one whose window lies in the past (a product's sale start) is kept while it is reported.
    mark = max(
        [entry.get("touched", entry["window_end"]) for entry in original.values()]
        + [finding.window_end for finding in findings],
        default=0,
    )
    last: dict[str, Finding] = {}
    for finding in findings:
        last[finding.alert_id] = finding
    for alert_id, finding in last.items():
        # measured against what was known before these findings: a violation reported twice is
        # one change, and the later report (the fuller one) wins
        entry = original.get(alert_id)
        region = region_of.get(finding.institution_id, "")
        candidate = alert_data(finding, region, at)
        digest = _digest(candidate)  # of the figures alone: status, creation and revision apart
        if entry is not None:
            if entry["digest"] == digest:
                memory[alert_id] = {**entry, "touched": mark}
                changed.pop(alert_id, None)
                continue
            # what alert_data(finding, region, at, previous) makes of the remembered alert
            candidate = msgspec.structs.replace(
                candidate,
                status=entry["status"],
                created_at=entry["created_at"],
                revision=entry["revision"] + 1,
            )
        memory[alert_id] = {
            "digest": digest,
            "revision": candidate.revision,
            "created_at": candidate.created_at,
            "status": candidate.status,
            "window_end": finding.window_end,
            "touched": mark,
        }
        changed[alert_id] = ("created" if entry is None else "updated", candidate)
    horizon = mark - ALERT_MEMORY_S
    stale = [
        alert_id
        for alert_id, entry in memory.items()
        if entry["window_end"] < horizon and entry.get("touched", 0) < horizon
    ]
    for alert_id in stale:  # most steps forget nothing: the memory is not rebuilt for them
        del memory[alert_id]
    return memory, list(changed.values())
