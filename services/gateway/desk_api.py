"""The aiohttp handlers of the desk workspace's reads; services/gateway/api.py routes to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from models.risk_index import RiskConfig, load_risk_config
from schemas.desk import XLSX_MEDIA_TYPE
from services.auth import Principal
from services.gateway.desk_reads import DeskReads
from services.gateway.desk_store import DeskStore
from services.gateway.desk_trace import DeskTrace
from services.gateway.errors import json_response
from services.gateway.replay_reads import ReplayReads
from services.gateway.risk_report import build_report, filename, to_html, to_xlsx


class DeskHandlers:
    def __init__(
        self,
        storage: Any,
        principal_of: Callable[[web.Request], Principal],
        path_parameter: Callable[[web.Request, str], str],
        config: RiskConfig | None = None,
    ) -> None:
        store = DeskStore(storage)
        self.reads = DeskReads(store, config or load_risk_config())
        self.tracer = DeskTrace(store)
        self.replay_reads = ReplayReads(storage)
        self._principal = principal_of
        self._path = path_parameter

    async def institutions(self, request: web.Request) -> web.Response:
        return json_response(await self.reads.institutions(self._principal(request), request.query))

    async def dossier(self, request: web.Request) -> web.Response:
        principal = self._principal(request)
        return json_response(await self.reads.dossier(principal, self._path(request, "institution_id")))

    async def accounts(self, request: web.Request) -> web.Response:
        return json_response(await self.reads.accounts(self._principal(request), request.query))

    async def trace(self, request: web.Request) -> web.Response:
        return json_response(await self.tracer.trace(self._principal(request), request.query))

    async def overview(self, request: web.Request) -> web.Response:
        return json_response(await self.reads.overview(self._principal(request), request.query))

    async def risk_report(self, request: web.Request) -> web.Response:
        report, form = await build_report(self.reads, self._principal(request), request.query)
        if form == "html":
            return web.Response(
                text=to_html(report), content_type="text/html", charset="utf-8",
                headers={"Content-Disposition": f'inline; filename="{filename(report, "html")}"'},
            )  # fmt: skip
        if form == "xlsx":
            return web.Response(
                body=to_xlsx(report), content_type=XLSX_MEDIA_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{filename(report, "xlsx")}"'},
            )  # fmt: skip
        return json_response(report)

    async def replays(self, request: web.Request) -> web.Response:
        return json_response(await self.replay_reads.list(self._principal(request), request.query))

    async def replay(self, request: web.Request) -> web.Response:
        principal = self._principal(request)
        replay_id = self._path(request, "replay_id")
        return json_response(await self.replay_reads.get(principal, replay_id, request.query))
