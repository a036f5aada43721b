"""The console's routes: the page at ``/`` and its assets under ``/console/``.

Both are public (the page asks for a token and sends it as a bearer header on every API call; the
token is never in a URL). Every asset is one of the files found under ``static/`` when the routes
are added, held in memory and looked up by its exact name, so no request names a file outside
that folder. ECharts is the file ``make setup`` installs from the npm registry
(``node_modules/echarts/dist/echarts.min.js`` beside this module); without it the server starts,
logs a warning, and the page shows its tables without charts (the page is told by an attribute
on ``<html>``, so it asks for no missing file).

Each answer carries a strict Content-Security-Policy (scripts, styles, images and connections
from FundWatch itself only, no inline script or style), ``nosniff``, no referrer, no framing, and
``Cache-Control: no-cache`` with an ETag, so a browser asks again and gets 304 while unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

log = logging.getLogger("fundwatch.console")

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
ECHARTS = HERE / "node_modules" / "echarts" / "dist" / "echarts.min.js"
PREFIX = "/console/"
ECHARTS_ASSET = "vendor/echarts.min.js"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))  # fmt: skip
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# the page tells its scripts whether charts can be drawn
CHARTS_MARK = 'data-charts="off"'
COMPRESS_FROM = 2048  # bytes: smaller assets go as they are


def is_console_path(path: str) -> bool:
    """Paths served without a token: the page and its assets."""
    return path == "/" or path.startswith(PREFIX)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _asset(body: bytes, content_type: str) -> Asset:
    return Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


class Console:
    """The page and its assets, read once."""

    def __init__(self, static_dir: Path = STATIC, echarts: Path | None = ECHARTS) -> None:
        self.assets: dict[str, Asset] = {}
        for path in sorted(static_dir.rglob("*")):
            content_type = CONTENT_TYPES.get(path.suffix)
            if path.is_file() and content_type and path.name != "index.html":
                self.assets[path.relative_to(static_dir).as_posix()] = _asset(path.read_bytes(), content_type)
        self.charts = echarts is not None and echarts.is_file()
        if self.charts:
            assert echarts is not None
            self.assets[ECHARTS_ASSET] = _asset(echarts.read_bytes(), CONTENT_TYPES[".js"])
        else:
            log.warning(
                "console charts unavailable: %s is missing (make setup installs it); the console shows "
                "tables only", echarts,
            )  # fmt: skip
        page = (static_dir / "index.html").read_text(encoding="utf-8")
        if self.charts:
            page = page.replace(CHARTS_MARK, 'data-charts="on"', 1)
        self.index = _asset(page.encode("utf-8"), CONTENT_TYPES[".html"])

    async def page(self, request: web.Request) -> web.StreamResponse:
        return self._answer(request, self.index)

    async def asset(self, request: web.Request) -> web.StreamResponse:
        found = self.assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(reason="no such console asset")
        return self._answer(request, found)

    @staticmethod
    def _answer(request: web.Request, asset: Asset) -> web.StreamResponse:
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": asset.etag}
        if asset.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        response = web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})
        if len(asset.body) >= COMPRESS_FROM:
            response.enable_compression()  # by what the request accepts; none when it accepts none
        return response


def add_console_routes(router: web.UrlDispatcher, console: Console | None = None) -> Console:
    """``GET /`` and ``GET /console/{name}`` (HEAD too); returns the console for its state."""
    console = console or Console()
    router.add_get("/", console.page)
    router.add_get(PREFIX + "{name:.+}", console.asset)
    return console
