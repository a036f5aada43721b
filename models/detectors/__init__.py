"""Account-level detectors: pure step functions from one message's records of one account, the
detector's own per-account state and reference data to a new state and findings.

Each module is an ``AccountDetector`` (models/detectors/protocol.py): ``NAME``, ``VERSION`` and

    detect(ctx, state, account_id, msg_id, records) -> (state, findings)
    current(ctx, state, account_id) -> findings   # what the state holds open now

``state`` is plain JSON (an empty dict means nothing to keep), bounded by event-time pruning;
see models/detectors/common.py for lateness. A detector folds what it is given: a message
delivered again is recognised by its id before any detector sees it (the worker's account and
institution steps; ``fold`` here), and a record sent again by the gateway's keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from models.detectors import (
    anomaly,
    commingling,
    fund_pool,
    large_value,
    misappropriation,
    reserve_shortfall,
    self_financing,
)
from models.detectors.context import DetectContext, References, StaticReferences
from models.detectors.holders import is_natural_person
from models.detectors.protocol import AccountDetector, Detector, InstitutionDetector
from models.findings import Finding
from schemas.messages import BalanceRecord, TxnRecord

DETECTORS: dict[str, AccountDetector] = {
    module.NAME: module
    for module in (
        misappropriation,
        self_financing,
        commingling,
        reserve_shortfall,
        large_value,
        fund_pool,
        anomaly,
    )
}

__all__ = [
    "DETECTORS",
    "AccountDetector",
    "Detector",
    "InstitutionDetector",
    "DetectContext",
    "References",
    "StaticReferences",
    "fold",
    "is_natural_person",
]


def fold(
    detector: Detector,
    ctx: DetectContext,
    account_id: str,
    messages: Iterable[tuple[str, list[TxnRecord | BalanceRecord]]],
    state: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Finding]]:
    """Run one detector over an account's messages in order, as a worker would (a message id seen
    before is skipped): the final state and the last finding per key (what an alert store
    updating alerts by key would hold)."""
    latest: dict[str, Finding] = {}
    folded: set[str] = set()
    for msg_id, records in messages:
        if msg_id in folded:
            continue
        folded.add(msg_id)
        state, findings = detector.detect(ctx, state, account_id, msg_id, records)
        for finding in findings:
            latest[finding.key] = finding
    return state or {}, latest
