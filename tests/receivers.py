"""Real HTTP webhook receivers for tests: an aiohttp server on a free loopback port, in a thread
of its own, that verifies each message with the `standardwebhooks` package and parses it with
the `cloudevents` SDK, as a subscriber's system would."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support import free_port


@dataclass
class Received:
    webhook_id: str
    at: float
    signatures: int
    event: Any  # the parsed CloudEvent
    body: bytes
    headers: dict[str, str]
    ok: bool = False  # answered with a 2xx

    @property
    def data(self) -> dict[str, Any]:
        return self.event.get_data()


@dataclass
class Endpoint:
    """One subscriber's URL and how it behaves: ``answer(webhook_id, attempt)`` gives the status
    (and optional headers); ``delay_s`` holds each answer back."""

    secret: str = ""
    status: int = 200
    fail_first: int = 0  # answer 503 to the first attempts of each message
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)  # every attempt that verified
    attempts: dict[str, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # what failed verification or parsing

    def delivered(self) -> dict[str, Received]:
        """The messages answered with a 2xx, by webhook-id (the receiver's dedupe)."""
        return {r.webhook_id: r for r in self.received if r.ok}


class Receivers:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoints: dict[str, Endpoint] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def url(self, name: str) -> str:
        self.endpoints.setdefault(name, Endpoint())
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    def __getitem__(self, name: str) -> Endpoint:
        return self.endpoints[name]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _handle(self, request: web.Request) -> web.Response:
        endpoint = self.endpoints.get(request.match_info["name"])
        if endpoint is None:
            return web.Response(status=404)
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        attempt = endpoint.attempts[webhook_id] = endpoint.attempts.get(webhook_id, 0) + 1
        if endpoint.delay_s:
            await asyncio.sleep(endpoint.delay_s)
        try:
            Webhook(endpoint.secret).verify(body, headers)
            event = from_http(HTTPMessage(headers=headers, body=body), JSONFormat())
        except (WebhookVerificationError, ValueError, KeyError) as error:
            endpoint.bad.append(f"{webhook_id}: {type(error).__name__}: {error}")
            return web.Response(status=400)
        received = Received(
            webhook_id, time.time(), len(headers.get("webhook-signature", "").split()), event, body, headers
        )
        endpoint.received.append(received)
        status = 503 if attempt <= endpoint.fail_first else endpoint.status
        received.ok = 200 <= status < 300
        extra = {"Retry-After": "0"} if status == 503 else {}
        return web.Response(status=status, headers=extra)
