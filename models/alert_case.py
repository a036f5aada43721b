"""An alert's case (CONTRACT.md §2, §4; DOMAIN.md 四(三) 分类处置): the status machine of desk
actions, the overlay every worker puts on the alerts it emits, and which suppression holds an
alert back from delivery. Pure functions: the gateway and the workers do the I/O.

The status machine, kept small on purpose:

    acknowledge  open                          → acknowledged
    assign       open, acknowledged, assigned  → assigned (a reassignment is allowed)
    dispose      open, acknowledged, assigned  → disposed
    reopen       acknowledged, assigned, disposed → open (disposition and assignee cleared)
    comment      any status, unchanged

Everything else is refused (409 naming ``action``): acknowledging twice, acting on a disposed
alert other than by reopening or commenting, reopening an open one. A disposition is a decision
on the record: changing it is a reopen and a new disposal, so the trail shows both.

A disposed alert whose severity rises past the one it had when disposed reopens itself: the
figures got worse after the decision, so the decision no longer covers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from models.findings import SEVERITIES
from schemas.actions import ActionRequest, AlertCase, Suppression
from schemas.alerts import AlertData
from schemas.fields import epoch_seconds

ALLOWED_FROM: dict[str, frozenset[str]] = {
    "acknowledge": frozenset({"open"}),
    "assign": frozenset({"open", "acknowledged", "assigned"}),
    "dispose": frozenset({"open", "acknowledged", "assigned"}),
    "reopen": frozenset({"acknowledged", "assigned", "disposed"}),
    "comment": frozenset({"open", "acknowledged", "assigned", "disposed"}),
}
LEADS_TO = {"acknowledge": "acknowledged", "assign": "assigned", "dispose": "disposed", "reopen": "open"}
SYSTEM = "system"


class Refused(Exception):
    """The action does not apply to the alert's current status."""


def action_name(request: ActionRequest) -> str:
    return type(request).__struct_config__.tag  # type: ignore[return-value]


def case_of(alert: AlertData, last: AlertCase | None) -> AlertCase:
    """The case as it stands now: the alert's newest version holds its status fields (a worker may
    have reopened it since the last action); the last case holds how many versions actions wrote."""
    return AlertCase(
        alert_id=alert.alert_id,
        status=alert.status,
        disposition=alert.disposition,
        assignee=alert.assignee,
        severity=alert.severity,
        bumps=last.bumps if last is not None else 0,
        revision=alert.revision,
        reopened_reason=alert.reopened_reason,
        seq=last.seq if last is not None else 0,
    )


def apply_action(case: AlertCase, request: ActionRequest, severity: str, seq: int) -> tuple[AlertCase, bool]:
    """The case after ``request``, and whether the alert changes (a new version of it is written).
    Raises Refused when the action does not apply to the current status."""
    action = action_name(request)
    if case.status not in ALLOWED_FROM[action]:
        hint = "; reopen it first" if case.status == "disposed" else ""
        raise Refused(f"an alert that is {case.status} cannot be given `{action}`{hint}")
    if action == "comment":
        return case, False
    changes: dict[str, Any] = {"status": LEADS_TO[action], "severity": severity, "seq": seq,
                               "bumps": case.bumps + 1, "revision": case.revision + 1}  # fmt: skip
    if action == "assign":
        changes["assignee"] = request.assignee  # type: ignore[union-attr]
    elif action == "dispose":
        changes.update(disposition=request.disposition, reopened_reason=None)  # type: ignore[union-attr]
    elif action == "reopen":
        changes.update(disposition=None, assignee=None, reopened_reason=None)
    return msgspec.structs.replace(case, **changes), True


def with_case(alert: AlertData, case: AlertCase, revision: int) -> AlertData:
    return msgspec.structs.replace(
        alert,
        status=case.status,
        disposition=case.disposition,
        assignee=case.assignee,
        reopened_reason=case.reopened_reason,
        revision=revision,
    )


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def overlay_case(alert: AlertData, case: AlertCase | None, seq: int) -> tuple[AlertData, AlertCase | None]:
    """A worker's alert (its status as the detector left it, its revision the worker's count) with
    its case laid over it. Returns the alert to emit and, when the alert reopened itself because
    its severity rose after disposal, the new case (to publish, and to audit as the system's)."""
    if case is None:
        return alert, None
    revision = alert.revision + case.bumps
    if case.status == "disposed" and _rank(alert.severity) > _rank(case.severity):
        reopened = msgspec.structs.replace(
            case,
            status="open",
            disposition=None,
            assignee=None,
            severity=alert.severity,
            reopened_reason=f"severity rose from {case.severity} to {alert.severity} after disposal",
            seq=seq,
            revision=revision,
        )
        return with_case(alert, reopened, revision), reopened
    return with_case(alert, case, revision), None


# --- suppressions ------------------------------------------------------------------------------


def suppression_applies(
    suppression: Suppression,
    typology: str,
    institution_id: str,
    region: str,
    alert_id: str,
    accounts: Sequence[str],
    now: float,
) -> bool:
    if suppression.typology != typology or not region.startswith(suppression.region):
        return False
    if epoch_seconds(suppression.until) <= now:  # expired suppressions stop applying
        return False
    if suppression.institution_id is not None:
        return suppression.institution_id == institution_id
    return suppression.key == alert_id or suppression.key in accounts


def suppression_for(
    suppressions: Iterable[Suppression],
    typology: str,
    institution_id: str,
    region: str,
    alert_id: str,
    accounts: Sequence[str],
    now: float,
) -> Suppression | None:
    """The suppression holding the alert back (the one lasting longest when several do), or None."""
    found = [
        s for s in suppressions
        if suppression_applies(s, typology, institution_id, region, alert_id, accounts, now)
    ]  # fmt: skip
    return max(found, key=lambda s: (epoch_seconds(s.until), s.id)) if found else None


def overlay_suppression(alert: AlertData, suppressions: Iterable[Suppression], now: float) -> AlertData:
    """The alert marked ``suppressed`` with the suppression's id when one applies: the dispatcher
    reads ``data.suppressed`` and delivers nothing of it."""
    found = suppression_for(
        suppressions, alert.typology, alert.institution_id, alert.region, alert.alert_id, alert.accounts, now
    )
    if found is None:
        if not alert.suppressed and alert.suppression_id is None:
            return alert
        return msgspec.structs.replace(alert, suppressed=False, suppression_id=None)
    return msgspec.structs.replace(alert, suppressed=True, suppression_id=found.id)


def audit_row(
    case: AlertCase,
    alert: AlertData,
    at: int,
    actor_id: str,
    actor_role: str,
    action: str,
    previous_status: str,
    note: str | None = None,
    version: int = 0,
) -> list[Any]:
    """A row of the audit table (schemas/actions.py AUDIT_COLUMNS); ``at`` in epoch seconds."""
    return [
        alert.alert_id, at, actor_id, actor_role, action, previous_status, case.status,
        (case.disposition or "") if action == "dispose" else "",
        (case.assignee or "") if action == "assign" else "",
        note or "", (case.reopened_reason or "") if actor_role == SYSTEM else "",
        alert.institution_id, alert.region, msgspec.json.encode(case).decode(), version or case.seq,
    ]  # fmt: skip
