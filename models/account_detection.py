"""One account's step through every account-level detector, and its alerts folded in.

The worker steps each account through the messages it took together in order, judging after each
message as if it came alone; everything here is pure, so replaying a partition gives the same
alerts with the same figures as live processing, however the messages were taken (only how
often an alert was updated on the way, its revision, depends on that).
"""

from __future__ import annotations

from typing import Any

from models.alerting import fold_findings
from models.detectors import DETECTORS, DetectContext
from models.detectors.common import Owned, disown, own_states
from models.findings import Finding
from schemas.alerts import AlertData
from schemas.messages import BalanceRecord, TxnRecord


def detect_account(
    ctx: DetectContext,
    states: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
    owned: bool = False,
) -> tuple[dict[str, Any], list[Finding]]:
    """Every detector's new state for the account, and all their findings. With ``owned`` the
    states are a sequence's working copies (models/detectors/common.Owned): changed in place, and
    the new ones made Owned too."""
    states = states or {}
    new_states: dict[str, Any] = {}
    findings: list[Finding] = []
    for name, detector in DETECTORS.items():
        state, found = detector.detect(ctx, states.get(name), account_id, msg_id, records)
        if state:
            new_states[name] = Owned(state) if owned and type(state) is not Owned else state
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
    return step_account_messages(ctx, state, account_id, [(msg_id, records)], at)


def step_account_messages(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    messages: list[tuple[str, list[TxnRecord | BalanceRecord]]],
    at: int,
    consume: bool = False,
) -> tuple[dict[str, Any], list[tuple[str, AlertData]]]:
    """The account's state after several messages, and the alerts that changed over them.

    Each message is judged on its own, in order, as if it came alone: a violation that holds
    after one message and not after the next is still raised. Its alert then changes once for
    all of them, with the figures of its last report (models/alerting.fold_findings), so a busy
    account's daily total does not send one update per message. The detector states are copied
    once for all of them; with ``consume`` the caller gives ``state`` up (it holds the new one
    from now on) and nothing is copied."""
    state = state or {}
    owned = consume or len(messages) > 1
    detector_states = own_states(state.get("detectors"), consume) if owned else state.get("detectors")
    findings: list[Finding] = []
    for msg_id, records in messages:
        detector_states, found = detect_account(ctx, detector_states, account_id, msg_id, records, owned)
        findings.extend(found)
    regions = {f.institution_id: ctx.references.institution(f.institution_id) for f in findings}
    region_of = {inst: (doc or {}).get("region", "") for inst, doc in regions.items()}
    alerts, changes = fold_findings(state.get("alerts"), findings, region_of, at)
    return {"detectors": disown(detector_states) if owned else detector_states, "alerts": alerts}, changes
