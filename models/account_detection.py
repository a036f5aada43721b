"""One account's step through every account-level detector, and its alerts folded in.

The worker steps each account through the messages it took together in order, judging after each
message as if it came alone; everything here is pure, so replaying a partition gives the same
alerts with the same figures as live processing, however the messages were taken (only how
often an alert was updated on the way, its revision, depends on that).
"""

from __future__ import annotations

from typing import Any

from models.alerting import fold_findings
from models.detectors import DETECTORS, DetectContext, anomaly
from models.stepping import clock_step, judge_messages, regions_of
from schemas.alerts import AlertData
from schemas.messages import BalanceRecord, TxnRecord


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
    from now on) and nothing is copied. The account's clock (models/stepping.clock_step) counts
    the records that came late."""
    state = state or {}
    clock = clock_step(ctx, state.get("clock"), messages, "account")
    detector_states, findings = judge_messages(
        DETECTORS, ctx, state.get("detectors"), account_id, messages, consume
    )
    alerts, changes = fold_findings(state.get("alerts"), findings, regions_of(ctx, findings), at)
    return {"detectors": detector_states, "alerts": alerts, "clock": clock}, changes


def sweep_account(
    ctx: DetectContext, state: dict[str, Any] | None, account_id: str, until: int, at: int
) -> tuple[dict[str, Any], list[tuple[str, AlertData]]]:
    """The account's state once event time ``until`` (its bank's, models/anomaly_sweep) has passed
    with no record of it: the `anomaly` detector judges its open day (``anomaly.close``), and the
    findings fold into its alerts as a message's do. The other detectors, the clock and anything
    else the caller keeps in the state (the worker's flows) are left as they are: no record came."""
    state = state or {}
    detectors = state.get("detectors") or {}
    before = detectors.get(anomaly.NAME)
    if not before:
        return state, []
    closed, findings = anomaly.close(ctx, before, account_id, until)
    if closed is before:
        return state, []
    alerts, changes = fold_findings(state.get("alerts"), findings, regions_of(ctx, findings), at)
    return {**state, "detectors": {**detectors, anomaly.NAME: closed}, "alerts": alerts}, changes
