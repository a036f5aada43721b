"""Alert reads for desks and admins (CONTRACT.md §2 `GET /v1/alerts`, `GET /v1/alerts/{id}`).

The current state of each alert is ``alerts`` FINAL (one row per alert id, the newest revision);
its history is ``alert_events``, as models/alert_history.py keeps it: the creation, every action,
and the detector's updates that changed the severity, the status or the amount's band (rows of a
figure tick written before that rule, or again after a worker restarted, are left out here). A
desk sees only institutions whose region starts with its own prefix; a bank token sees no alert
at all. An alert outside the caller's scope answers exactly as an unknown one does, so a caller
learns nothing about other regions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from models.alert_history import amount_band, keeps
from schemas.api import AlertQuery
from schemas.ddl import DATABASE
from schemas.fields import query_time
from services.auth import Principal
from services.gateway.alert_actions import action_trail
from services.gateway.errors import ApiError, parse_query
from services.gateway.suppressions import mark_suppressed


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AlertReads:
    def __init__(self, storage: Any) -> None:
        self.storage = storage

    @staticmethod
    def _scope(principal: Principal) -> str:
        """The region prefix a caller is confined to ("" for admins)."""
        if principal.role == "admin":
            return ""
        if principal.role == "desk":
            return principal.region
        raise ApiError(403, "forbidden", f"{principal.role} tokens may not read alerts")

    async def list(self, principal: Principal, query: Any) -> dict[str, Any]:
        scope = self._scope(principal)  # a bank is refused before its query is judged
        # the filters as schemas/api.py AlertQuery documents them: each typology, status and
        # severity filter one value or several, comma-separated; since an RFC 3339 time with offset
        ask = parse_query(query, AlertQuery)
        where = ["1 = 1"]
        params: dict[str, Any] = {}
        for name in ("typology", "status", "severity"):
            values = getattr(ask, name)
            if values:
                where.append(f"{name} IN %({name})s")
                params[name] = tuple(values.split(","))
        region = ask.region or ""
        if scope and region and not (region.startswith(scope) or scope.startswith(region)):
            raise ApiError(
                403, "forbidden", f"`region`: {region!r} is outside your region {scope!r}", "region"
            )
        prefix = max(scope, region, key=len)
        if prefix:
            where.append("substring(region, 1, %(prefix_len)s) = %(prefix)s")
            params.update(prefix=prefix, prefix_len=len(prefix))
        if ask.institution_id:
            where.append("institution_id = %(institution_id)s")
            params["institution_id"] = ask.institution_id
        if ask.since:
            where.append("updated_at >= %(since)s")
            params["since"] = query_time(ask.since)
        params["limit"] = ask.limit
        rows = await self.storage.query(
            f"""SELECT doc FROM {DATABASE}.alerts FINAL WHERE {" AND ".join(where)}
                ORDER BY updated_at DESC, alert_id LIMIT %(limit)s""",
            params,
        )
        alerts = [msgspec.json.decode(doc) for (doc,) in rows]
        await mark_suppressed(self.storage, alerts)  # by the suppressions in force now
        return {"alerts": alerts}

    async def get(self, principal: Principal, alert_id: str) -> dict[str, Any]:
        scope = self._scope(principal)
        rows = await self.storage.query(
            f"SELECT doc, region FROM {DATABASE}.alerts FINAL WHERE alert_id = %(id)s", {"id": alert_id}
        )
        if not rows or not rows[0][1].startswith(scope):
            raise ApiError(404, "not_found", f"no alert {alert_id!r} in your scope")
        alert = msgspec.json.decode(rows[0][0])
        await mark_suppressed(self.storage, [alert])  # by the suppressions in force now
        alert["actions"] = await action_trail(self.storage, alert_id)  # the audit trail, oldest first
        events = await self.storage.query(
            f"""SELECT event_time, event_type, actor, status, severity, doc FROM {DATABASE}.alert_events
                WHERE alert_id = %(id)s ORDER BY event_time, version""",
            {"id": alert_id},
        )
        history: list[dict[str, Any]] = []
        kept: tuple[str, str, int] | None = None
        for event_time, event_type, actor, status, severity, doc in events:
            data = msgspec.json.decode(doc)
            amount = data.get("amount")
            # an event that names no amount (an action's own record) leaves the band as it was
            band = amount_band(amount) if isinstance(amount, str) else (kept[2] if kept else -1)
            if not keeps(event_type, kept, (severity, status, band)):
                continue
            kept = (severity, status, band)
            history.append({
                "at": _iso(event_time), "event": event_type, "actor": actor, "status": status,
                "severity": severity, "revision": data.get("revision"),
                **({"amount": amount} if isinstance(amount, str) else {}),
            })  # fmt: skip
        return {**alert, "history": history}
