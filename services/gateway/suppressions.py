"""Suppressions (CONTRACT.md §2 `POST /v1/suppressions`, `GET /v1/suppressions`,
`DELETE /v1/suppressions/{id}`): alerts of one typology on one institution, or on one key (an
alert id, or an account the alert names), are still stored and listed, marked ``suppressed``, but
not delivered by webhook until the suppression expires (at most 180 days ahead) or is removed.

A suppression is stored in ClickHouse (``suppressions``, its state; ``suppression_events``, its
creation and removal with who did it) and published on the compacted topic ``fw.suppressions``
(removal: a tombstone). Every worker follows that topic and marks the alerts it emits
(``data.suppressed``, ``data.suppression_id``), which is all the dispatcher reads. Reads mark
listed alerts from the suppressions in force at the time of the read.

Admins suppress anywhere. A desk suppresses only within its region: an institution outside it is
refused as an unknown one is (403 naming ``institution_id``), and a suppression by key is confined
to the desk's region. A desk lists and removes the suppressions within its region.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from models.alert_case import suppression_for
from schemas.actions import (
    MAX_SUPPRESSION_DAYS,
    SUPPRESSIONS_TOPIC,
    Actor,
    Suppression,
    SuppressionList,
    SuppressionRequest,
    SuppressionView,
)
from schemas.ddl import DATABASE
from schemas.fields import epoch_seconds
from schemas.validation import ValidationFailure, decode
from services.auth import Principal
from services.gateway.errors import ApiError
from services.kafka_io import Publisher

log = logging.getLogger("fundwatch.suppressions")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Suppression)
_COLUMNS = ("suppression_id", "region", "until", "deleted", "doc", "version")
_EVENT_COLUMNS = ("suppression_id", "at", "event", "actor_id", "actor_role", "doc", "version")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat().replace("+00:00", "Z")


def may_manage(principal: Principal) -> str:
    """The region prefix a caller manages suppressions within ("" for admins); 403 for others."""
    if principal.role == "admin":
        return ""
    if principal.role == "desk":
        return principal.region
    raise ApiError(403, "forbidden", f"{principal.role} tokens may not manage suppressions")


def view(suppression: Suppression, now: float) -> SuppressionView:
    fields = msgspec.structs.asdict(suppression)
    return SuppressionView(**fields, active=epoch_seconds(suppression.until) > now)


def mark(alerts: list[dict[str, Any]], suppressions: list[Suppression], now: float) -> None:
    """Mark alert documents (as read) with the suppression in force for each, if any."""
    for alert in alerts:
        found = suppression_for(
            suppressions, str(alert.get("typology", "")), str(alert.get("institution_id", "")),
            str(alert.get("region", "")), str(alert.get("alert_id", "")), alert.get("accounts") or (), now,
        )  # fmt: skip
        alert["suppressed"] = found is not None
        alert["suppression_id"] = found.id if found is not None else None


async def mark_suppressed(storage: Any, alerts: list[dict[str, Any]]) -> None:
    """Mark alerts read from ClickHouse by the suppressions in force now (alert_reads.py)."""
    if alerts:
        mark(alerts, await active_suppressions(storage), time.time())


async def active_suppressions(storage: Any) -> list[Suppression]:
    rows = await storage.query(
        f"""SELECT doc FROM {DATABASE}.suppressions FINAL
            WHERE deleted = 0 AND until > toDateTime(%(now)s, 'UTC')""",
        {"now": int(time.time())},
    )
    return [_decoder.decode(doc) for (doc,) in rows]


class Suppressions:
    may_manage = staticmethod(may_manage)

    def __init__(self, storage: Any, publisher: Publisher) -> None:
        self.storage = storage
        self.publisher = publisher

    async def active(self) -> list[Suppression]:
        return await active_suppressions(self.storage)

    async def create(self, principal: Principal, body: bytes) -> SuppressionView:
        scope = may_manage(principal)
        try:
            ask = decode(body, SuppressionRequest)
        except ValidationFailure as failure:
            status = 400 if failure.message.startswith("is not valid JSON") else 422
            raise ApiError(status, "invalid_suppression", str(failure), failure.field) from None
        now = time.time()
        until = epoch_seconds(ask.until)
        if until <= now:
            raise ApiError(422, "invalid_suppression", "`until`: must lie in the future", "until")
        if until > now + MAX_SUPPRESSION_DAYS * 86400:
            raise ApiError(
                422, "invalid_suppression", f"`until`: at most {MAX_SUPPRESSION_DAYS} days ahead", "until"
            )
        region = scope
        if ask.institution_id is not None:
            region = await self._institution_region(principal, scope, ask.institution_id)
        suppression = Suppression(
            id=str(uuid.uuid4()), typology=ask.typology, region=region, until=_iso(until), reason=ask.reason,
            created_at=_iso(now), created_by=Actor(token_id=principal.token_id, role=principal.role),
            institution_id=ask.institution_id, key=ask.key,
        )  # fmt: skip
        await self._store(suppression, "created", principal, deleted=False)
        await self.publisher.send_all(
            [(SUPPRESSIONS_TOPIC, None, suppression.id.encode(), _encoder.encode(suppression))]
        )
        log.info(
            "suppression created suppression=%s typology=%s by=%s",
            suppression.id, suppression.typology, principal.token_id,
        )  # fmt: skip
        return view(suppression, now)

    async def _institution_region(self, principal: Principal, scope: str, institution_id: str) -> str:
        rows = await self.storage.query(
            f"SELECT region FROM {DATABASE}.ref_institutions FINAL WHERE institution_id = %(id)s",
            {"id": institution_id},
        )
        region = rows[0][0] if rows else None
        if principal.role == "desk" and (region is None or not region.startswith(scope)):
            # unknown and foreign alike: a desk learns nothing of other regions
            raise ApiError(
                403, "forbidden", f"`institution_id`: no institution {institution_id!r} in your region",
                "institution_id",
            )  # fmt: skip
        if region is None:
            raise ApiError(
                422, "invalid_suppression", "`institution_id`: names no known institution", "institution_id"
            )
        return region

    async def list(self, principal: Principal) -> SuppressionList:
        scope = may_manage(principal)
        now = time.time()
        return SuppressionList([view(s, now) for s in await self._live(scope)])

    async def delete(self, principal: Principal, suppression_id: str) -> None:
        scope = may_manage(principal)
        found = [s for s in await self._live(scope, suppression_id) if s.id == suppression_id]
        if not found:
            raise ApiError(404, "not_found", f"no suppression {suppression_id!r} in your scope")
        await self._store(found[0], "deleted", principal, deleted=True)
        await self.publisher.send_all([(SUPPRESSIONS_TOPIC, None, suppression_id.encode(), None)])  # type: ignore[list-item]
        log.info("suppression deleted suppression=%s by=%s", suppression_id, principal.token_id)

    async def _live(self, scope: str, suppression_id: str | None = None) -> list[Suppression]:
        """The suppressions not removed (expired ones too) within ``scope``, newest first."""
        where = ["deleted = 0"]
        params: dict[str, Any] = {}
        if scope:
            where.append("substring(region, 1, %(scope_len)s) = %(scope)s")
            params.update(scope=scope, scope_len=len(scope))
        if suppression_id is not None:
            where.append("suppression_id = %(id)s")
            params["id"] = suppression_id
        rows = await self.storage.query(
            f"""SELECT doc FROM {DATABASE}.suppressions FINAL WHERE {" AND ".join(where)}
                ORDER BY version DESC LIMIT 1000""",
            params,
        )
        return [_decoder.decode(doc) for (doc,) in rows]

    async def _store(self, suppression: Suppression, event: str, principal: Principal, deleted: bool) -> None:
        version = time.time_ns()
        doc = _encoder.encode(suppression).decode()
        until = epoch_seconds(suppression.until)
        await self.storage.insert(
            f"{DATABASE}.suppressions",
            _COLUMNS,
            [[suppression.id, suppression.region, until, int(deleted), doc, version]],
        )
        await self.storage.insert(
            f"{DATABASE}.suppression_events", _EVENT_COLUMNS,
            [[suppression.id, version // 1_000_000_000, event, principal.token_id, principal.role, doc, version]],
        )  # fmt: skip

    async def republish(self) -> int:
        """The suppressions in force, on ``fw.suppressions`` again (start): the embedded broker
        keeps nothing, and workers mark alerts from what that topic holds."""
        live = await self.active()
        if live:
            await self.publisher.send_all(
                (SUPPRESSIONS_TOPIC, None, s.id.encode(), _encoder.encode(s)) for s in live
            )
        return len(live)
