"""Desk actions on alerts (CONTRACT.md §2 `POST /v1/alerts/{id}/actions`, §4 `status`).

An action that changes the case (acknowledge, assign, dispose, reopen) writes a new version of
the alert (``alerts``, one revision more, with its status, disposition and assignee), its event
(``alert_events``, of the action's type) and sends it on the alerts topic, so subscribers hear of
the status change. It also publishes the case on the compacted topic ``fw.alert-actions``, which
every worker follows and lays over each version it emits (streams/alert_state.py): the next
figures update keeps the status. A comment changes no status and writes no alert version.

Every action, comments included, is a row of the append-only audit trail ``alert_actions``: who
(the token's id and role, never the token), when, the status before and after, the disposition or
assignee given, the note. The newest case of each alert is published again at start, since the
embedded broker keeps nothing.

Who may act: admins, and desks on alerts of their region; an alert outside it answers 404, as GET
does. The rules of the status machine are models/alert_case.py's; one that does not apply is 409
naming ``action``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from models.alert_case import (
    Refused,
    action_name,
    apply_action,
    audit_row,
    case_of,
    overlay_suppression,
    with_case,
)
from schemas.actions import ALERT_ACTIONS_TOPIC, AUDIT_COLUMNS, ActionRequest, AlertCase
from schemas.alerts import AlertData, encode_event, to_event
from schemas.ddl import DATABASE
from schemas.fields import epoch_seconds
from schemas.messages import ALERTS_TOPIC
from schemas.validation import ValidationFailure, decode
from services.auth import Principal
from services.gateway.errors import ApiError
from services.gateway.suppressions import Suppressions
from services.kafka_io import Publisher

log = logging.getLogger("fundwatch.actions")

_encoder = msgspec.json.Encoder()
_alert_decoder = msgspec.json.Decoder(AlertData)
_case_decoder = msgspec.json.Decoder(AlertCase)

# The columns of ``alerts`` and ``alert_events`` (schemas/ddl.py migration 2), as the workers
# write them (streams/sink.py).
_ALERT_COLUMNS = (
    "alert_id", "typology", "severity", "status", "score", "institution_id", "region", "amount",
    "window_start", "window_end", "created_at", "updated_at", "doc", "version",
)  # fmt: skip
_EVENT_COLUMNS = (
    "alert_id", "event_time", "event_type", "typology", "severity", "status", "institution_id", "region",
    "actor", "doc", "version",
)  # fmt: skip
REPUBLISH_CHUNK = 5000


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat().replace("+00:00", "Z")


def _epoch(text: str) -> int:
    return epoch_seconds(text) if text else 0


def may_act(principal: Principal) -> str:
    """The region prefix a caller acts within ("" for admins); 403 for other roles."""
    if principal.role == "admin":
        return ""
    if principal.role == "desk":
        return principal.region
    raise ApiError(403, "forbidden", f"{principal.role} tokens may not act on alerts")


def parse_action(body: bytes) -> ActionRequest:
    try:
        return decode(body, ActionRequest)  # type: ignore[arg-type]
    except ValidationFailure as failure:
        status = 400 if failure.message.startswith("is not valid JSON") else 422
        raise ApiError(status, "invalid_action", str(failure), failure.field) from None


async def action_trail(storage: Any, alert_id: str) -> list[dict[str, Any]]:
    """An alert's audit trail, oldest first (``actions`` of GET /v1/alerts/{id})."""
    rows = await storage.query(
        f"""SELECT at, actor_id, actor_role, action, previous_status, new_status, disposition, assignee,
                   note, reason
            FROM {DATABASE}.alert_actions WHERE alert_id = %(id)s ORDER BY version""",
        {"id": alert_id},
    )
    trail = []
    for at, actor_id, role, action, previous, new, disposition, assignee, note, reason in rows:
        entry: dict[str, Any] = {
            "at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "actor": {"token_id": actor_id, "role": role},
            "action": action, "previous_status": previous, "new_status": new,
        }  # fmt: skip
        for name, value in (
            ("disposition", disposition),
            ("assignee", assignee),
            ("note", note),
            ("reason", reason),
        ):
            if value:
                entry[name] = value
        trail.append(entry)
    return trail


class AlertActions:
    def __init__(self, storage: Any, publisher: Publisher, suppressions: Suppressions) -> None:
        self.storage = storage
        self.publisher = publisher
        self.suppressions = suppressions
        # one action at a time in this gateway: two desks acting on one alert at once would both
        # read the same version and write the same revision
        self._lock = asyncio.Lock()

    async def act(self, principal: Principal, alert_id: str, body: bytes) -> None:
        scope = may_act(principal)
        request = parse_action(body)  # before any look-up: a bad body says nothing of the alert
        async with self._lock:
            alert = await self._alert(alert_id, scope)
            current = case_of(alert, await self._last_case(alert_id))
            seq = time.time_ns()
            try:
                case, writes = apply_action(current, request, alert.severity, seq)
            except Refused as refused:
                raise ApiError(409, "conflict", str(refused), "action") from None
            now = seq / 1e9
            action = action_name(request)
            note = getattr(request, "note", None)
            audit = audit_row(case, alert, int(now), principal.token_id, principal.role, action, current.status, note,
                              version=seq)  # fmt: skip
            if not writes:
                await self.storage.insert(f"{DATABASE}.alert_actions", AUDIT_COLUMNS, [audit])
            else:
                updated = msgspec.structs.replace(
                    with_case(alert, case, case.revision), updated_at=_iso(now)
                )
                updated = overlay_suppression(updated, await self.suppressions.active(), now)
                await self._write(updated, action, principal, seq)
                await self.storage.insert(f"{DATABASE}.alert_actions", AUDIT_COLUMNS, [audit])
                # ClickHouse first: it is the durable record, and the gateway publishes the case
                # again from it at start should the broker not take it now (503, the action stands)
                await self.publisher.send_all([
                    (ALERT_ACTIONS_TOPIC, None, alert_id.encode(), _encoder.encode(case)),
                    (ALERTS_TOPIC, None, alert_id.encode(), encode_event(to_event(updated, masked=False))),
                ])  # fmt: skip
        log.info(
            "alert action alert=%s action=%s status=%s->%s by=%s",
            alert_id, action, current.status, case.status, principal.token_id,
        )  # fmt: skip

    async def _alert(self, alert_id: str, scope: str) -> AlertData:
        rows = await self.storage.query(
            f"SELECT doc, region FROM {DATABASE}.alerts FINAL WHERE alert_id = %(id)s", {"id": alert_id}
        )
        if not rows or not rows[0][1].startswith(scope):
            raise ApiError(404, "not_found", f"no alert {alert_id!r} in your scope")
        return _alert_decoder.decode(rows[0][0])

    async def _last_case(self, alert_id: str) -> AlertCase | None:
        rows = await self.storage.query(
            f"""SELECT case_state FROM {DATABASE}.alert_actions WHERE alert_id = %(id)s
                ORDER BY version DESC LIMIT 1""",
            {"id": alert_id},
        )
        return _case_decoder.decode(rows[0][0]) if rows else None

    async def _write(self, alert: AlertData, action: str, principal: Principal, version: int) -> None:
        doc = _encoder.encode(alert).decode()
        await self.storage.insert(f"{DATABASE}.alerts", _ALERT_COLUMNS, [[
            alert.alert_id, alert.typology, alert.severity, alert.status, alert.score, alert.institution_id,
            alert.region, Decimal(alert.amount), _epoch(alert.window_start), _epoch(alert.window_end),
            _epoch(alert.created_at), _epoch(alert.updated_at), doc, version,
        ]])  # fmt: skip
        await self.storage.insert(f"{DATABASE}.alert_events", _EVENT_COLUMNS, [[
            alert.alert_id, _epoch(alert.updated_at), action, alert.typology, alert.severity, alert.status,
            alert.institution_id, alert.region, f"{principal.role}:{principal.token_id}", doc, version,
        ]])  # fmt: skip

    async def republish(self) -> int:
        """The newest case of every alert an action touched, on ``fw.alert-actions`` again (start):
        the embedded broker keeps nothing, and workers overlay what that topic holds."""
        rows = await self.storage.query(
            f"SELECT alert_id, argMax(case_state, version) FROM {DATABASE}.alert_actions GROUP BY alert_id"
        )
        for start in range(0, len(rows), REPUBLISH_CHUNK):
            await self.publisher.send_all(
                (ALERT_ACTIONS_TOPIC, None, alert_id.encode(), case.encode())
                for alert_id, case in rows[start : start + REPUBLISH_CHUNK]
            )
        return len(rows)
