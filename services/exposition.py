"""``GET /metrics`` for every FundWatch process: Prometheus text, the whole registry or, with
``?name[]=<sample name>`` (repeated), those metrics alone, as Prometheus's own exposition allows.
A poller that watches a count or two (the bench, the simulator waiting for its records) then
costs the process it watches a few lines instead of the whole registry."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


async def metrics_page(request: web.Request) -> web.Response:
    names = request.query.getall("name[]", [])
    registry = REGISTRY.restricted_registry(names) if names else REGISTRY
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
