"""Saved replays (`fundwatch replay --save`) as the API serves them: `GET /v1/replays` and
`GET /v1/replays/{replay_id}` (schemas/replays.py).

Scoping is the desk workspace's (desk_scope.py): admins see every region; a desk sees the rows of
institutions whose region starts with its prefix: its totals, groupings and alerts are summed
from those rows alone, and the replay's own reading figures (records and messages of every region)
are left out. A replay in which neither run raised any alert of the desk's region holds nothing of
it: it is not listed, and reading it answers 404, exactly as an unknown id, naming nothing. An
alert of an account no institution owns has no region: only admins see it. A ``region`` filter
narrows within the scope; one outside it is 404 naming ``region``. Bank tokens are refused 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.ddl import DATABASE
from schemas.replays import (
    ReplayDetail,
    ReplayList,
    ReplayListQuery,
    ReplayQuery,
    ReplaySummary,
    SavedReplay,
)
from services.auth import Principal
from services.gateway.desk_scope import desk_scope, iso, narrowed, not_found
from services.gateway.errors import parse_query
from services.replay.saved import cell, groups, replay_alert, totals

_IN_REGION = "substring(region, 1, %(prefix_len)s) = %(prefix)s"
_COUNT_COLUMNS = "typology, institution_id, region, baseline, candidate, gained, lost, regraded"
_ALERT_COLUMNS = (
    "toString(kind), alert_id, typology, institution_id, region, severity, baseline_severity, amount, "
    "window_start, window_end"
)
_KINDS = ("gained", "lost", "regraded")


def _where(prefix: str) -> tuple[str, dict[str, Any]]:
    if not prefix:
        return "1 = 1", {}
    return _IN_REGION, {"prefix": prefix, "prefix_len": len(prefix)}


class ReplayReads:
    def __init__(self, storage: Any) -> None:
        self.storage = storage

    async def list(self, principal: Principal, query: Mapping[str, str]) -> ReplayList:
        scope = desk_scope(principal, "replays")  # a bank is refused before its query is judged
        ask = parse_query(query, ReplayListQuery)
        prefix = narrowed(scope, ask.region)
        where, params = _where(prefix)
        rows = await self.storage.query(
            f"""SELECT replay_id, {_COUNT_COLUMNS} FROM {DATABASE}.replay_counts FINAL WHERE {where}""",
            params,
        )
        cells: dict[str, list[Any]] = {}
        for row in rows:
            cells.setdefault(row[0], []).append(cell(row[1:]))
        if prefix and not cells:
            return ReplayList(replays=[])
        # every replay for a reader of every region (one with no alert at all too); else those
        # holding a row of the reader's region
        chosen = "replay_id IN %(ids)s" if prefix else "1 = 1"
        headers = await self.storage.query(
            f"""SELECT replay_id, saved_at, doc FROM {DATABASE}.replays FINAL WHERE {chosen}
                ORDER BY saved_at DESC, replay_id DESC LIMIT %(limit)s""",
            {"limit": ask.limit, **({"ids": tuple(cells)} if prefix else {})},
        )
        admin = principal.role == "admin"
        return ReplayList(
            replays=[_summary(r, saved_at, doc, cells.get(r, []), admin) for r, saved_at, doc in headers]
        )

    async def get(self, principal: Principal, replay_id: str, query: Mapping[str, str]) -> ReplayDetail:
        scope = desk_scope(principal, "replays")
        ask = parse_query(query, ReplayQuery)
        prefix = narrowed(scope, ask.region)
        where, params = _where(prefix)
        params = {**params, "id": replay_id}
        headers = await self.storage.query(
            f"SELECT saved_at, doc FROM {DATABASE}.replays FINAL WHERE replay_id = %(id)s", params
        )
        rows = await self.storage.query(
            f"""SELECT {_COUNT_COLUMNS} FROM {DATABASE}.replay_counts FINAL
                WHERE replay_id = %(id)s AND {where}""",
            params,
        )
        if not headers or (prefix and not rows):
            raise not_found("replay")  # unknown, or nothing of the caller's region: the same answer
        cells = [cell(row) for row in rows]
        lists, truncated = await self._alerts(replay_id, where, params, ask.limit)
        return ReplayDetail(
            replay=_summary(replay_id, headers[0][0], headers[0][1], cells, principal.role == "admin"),
            region=prefix,
            by_typology=groups(cells, "typology"),
            by_institution=groups(cells, "institution"),
            by_region=groups(cells, "region"),
            truncated=truncated,
            **lists,
        )

    async def _alerts(
        self, replay_id: str, where: str, params: dict[str, Any], limit: int
    ) -> tuple[dict[str, list[Any]], bool]:
        """Each list's alerts within the scope, the largest amounts first, at most ``limit``; and
        whether a list held more."""
        rows = await self.storage.query(
            f"""SELECT {_ALERT_COLUMNS} FROM {DATABASE}.replay_alerts FINAL
                WHERE replay_id = %(id)s AND {where}
                ORDER BY kind, toFloat64OrZero(amount) DESC, alert_id LIMIT %(per)s BY kind""",
            {**params, "per": limit + 1},
        )
        lists: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
        for row in rows:
            lists[row[0]].append(replay_alert(row))
        truncated = any(len(alerts) > limit for alerts in lists.values())
        return {kind: alerts[:limit] for kind, alerts in lists.items()}, truncated


def _summary(replay_id: str, saved_at: datetime, doc: str, cells: list[Any], admin: bool) -> ReplaySummary:
    saved = msgspec.json.decode(doc, type=SavedReplay)
    return ReplaySummary(
        replay_id=replay_id,
        saved_at=iso(saved_at.replace(tzinfo=saved_at.tzinfo or UTC)),
        since=saved.since,
        until=saved.until,
        baseline=saved.baseline,
        candidate=saved.candidate,
        records=saved.records if admin else None,
        messages=saved.messages if admin else None,
        totals=totals(cells),
    )
