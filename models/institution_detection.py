"""Product- and institution-level detection: one institution's step through the detectors that
need every record of an institution (its products, its banks, its growth), and their alerts.

The records agent partitions by account, so an institution's accounts are spread over partitions.
The worker therefore re-keys the records these detectors need (``institution_records``) onto the
institution topic, where one agent holds each institution's state. A product review (reference
data changed, no records) takes the same path with an empty record list, so that a product whose
declared yield or term is wrong is flagged when it is registered, not at its first payment.

Everything here is pure: replaying the institution topic gives the same alerts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from models.alerting import fold_findings
from models.detectors import (
    DetectContext,
    InstitutionDetector,
    disguised_clearing,
    excess_return,
    investor_cap_breach,
    maturity_mismatch,
    rapid_growth,
)
from models.detectors.context import CUSTODY_ROLES, _text
from models.detectors.institution_messages import view_of
from models.stepping import clock_step, judge_messages, regions_of
from schemas.alerts import AlertData
from schemas.messages import BalanceRecord, TxnRecord

# The accounts whose records an institution-level detector sees: where customers' money is held
# and where the institution's own money moves. Investors' and borrowers' own accounts are left
# out, so a movement reported by both banks is seen once, from the institution's side.
INSTITUTION_ROLES = CUSTODY_ROLES | {"own_operating"}

# a message seen again (a redelivery) is skipped by its id: see models/account_state.RECENT_MESSAGES
RECENT_MESSAGES = 256

INSTITUTION_DETECTORS: dict[str, InstitutionDetector] = {
    module.NAME: module
    for module in (excess_return, maturity_mismatch, investor_cap_breach, rapid_growth, disguised_clearing)
}


def institution_records(
    ctx: DetectContext, records: Iterable[TxnRecord | BalanceRecord]
) -> dict[str, list[TxnRecord]]:
    """The transactions of one message that institution-level detectors need, per institution."""
    parts: dict[str, list[TxnRecord]] = {}
    owner: dict[str, str | None] = {}  # account id -> its institution when it is seen there
    for record in records:
        if not isinstance(record, TxnRecord):
            continue
        account_id = record.account_id
        if account_id in owner:
            institution_id = owner[account_id]
        else:
            account = ctx.account(account_id)
            seen = account is not None and _text(account.get("role")) in INSTITUTION_ROLES
            institution_id = owner[account_id] = _text(account.get("institution_id")) if seen else None
        if institution_id:
            parts.setdefault(institution_id, []).append(record)
    return parts


def already_applied(state: dict[str, Any] | None, msg_id: str) -> bool:
    return bool(state) and msg_id in state.get("recent", ())


def step_institution(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    msg_id: str,
    records: list[TxnRecord],
    at: int,
) -> tuple[dict[str, Any], list[tuple[str, AlertData]]]:
    """The institution's state after one message, and the alerts that changed. A message seen
    already (redelivered) changes nothing."""
    return step_institution_messages(ctx, state, institution_id, [(msg_id, records)], at)


def step_institution_messages(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    messages: list[tuple[str, list[TxnRecord]]],
    at: int,
    consume: bool = False,
) -> tuple[dict[str, Any], list[tuple[str, AlertData]]]:
    """The institution's state after several messages, each judged on its own in order, and the
    alerts that changed over them, once each (as in models/account_detection.step_account_messages);
    the detector states are copied once for all of them (with ``consume`` not at all). Messages
    seen already change nothing. The detectors judge one view of each message, made once for
    all of them (models/detectors/institution_messages)."""
    state = state or {}
    seen = set(state.get("recent", ()))
    fresh: list[tuple[str, list[TxnRecord]]] = []
    for msg_id, records in messages:
        if msg_id not in seen:
            seen.add(msg_id)
            fresh.append((msg_id, records))
    if not fresh:
        return state, []
    clock = clock_step(ctx, state.get("clock"), fresh, "institution")
    detector_states, findings = judge_messages(
        INSTITUTION_DETECTORS,
        ctx,
        state.get("detectors"),
        institution_id,
        fresh,
        consume,
        lambda msg_id, records: view_of(ctx, institution_id, msg_id, records),
    )
    alerts, changes = fold_findings(state.get("alerts"), findings, regions_of(ctx, findings), at)
    recent = [*state.get("recent", ()), *(msg_id for msg_id, _ in fresh)][-RECENT_MESSAGES:]
    return {"detectors": detector_states, "alerts": alerts, "recent": recent, "clock": clock}, changes
