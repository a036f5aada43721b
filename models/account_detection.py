"""One account's step through every account-level detector, and its alerts folded in.

The worker calls this once per account per message; everything here is pure, so replaying a
partition gives the same alerts as live processing.
"""

from __future__ import annotations

from typing import Any

from models.alerting import fold_findings
from models.detectors import DETECTORS, DetectContext
from models.findings import Finding
from schemas.alerts import AlertData
from schemas.messages import BalanceRecord, TxnRecord


def detect_account(
    ctx: DetectContext,
    states: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Every detector's new state for the account, and all their findings."""
    states = states or {}
    new_states: dict[str, Any] = {}
    findings: list[Finding] = []
    for name, detector in DETECTORS.items():
        state, found = detector.detect(ctx, states.get(name), account_id, msg_id, records)
        if state:
            new_states[name] = state
        findings.extend(found)
    return new_states, findings


def step_account(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
    at: int,
) -> tuple[dict[str, Any], list[tuple[str, AlertData]]]:
    """The account's detector states and alert memory after one message, and the alerts that changed."""
    state = state or {}
    detector_states, findings = detect_account(ctx, state.get("detectors"), account_id, msg_id, records)
    regions = {f.institution_id: ctx.references.institution(f.institution_id) for f in findings}
    region_of = {inst: (doc or {}).get("region", "") for inst, doc in regions.items()}
    alerts, changed = fold_findings(state.get("alerts"), findings, region_of, at)
    return {"detectors": detector_states, "alerts": alerts}, changed
