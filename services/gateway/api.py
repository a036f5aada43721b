"""The aiohttp application: routes, bearer authentication, body limits, health and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.api import Health, TokenAnswer, TokenRequest
from schemas.openapi import build_openapi
from schemas.records import MAX_BATCH_BYTES
from schemas.reference import REFERENCE_KINDS
from schemas.validation import ValidationFailure, decode
from services.auth import Principal, TokenStore
from services.gateway import metrics
from services.gateway.alert_reads import AlertReads
from services.gateway.errors import ApiError, json_response, query_limit, raw_json_response
from services.gateway.intake import BatchIntake, parse_batch
from services.gateway.reads import Reads
from services.gateway.reference import ReferenceService
from services.gateway.subscriptions import Subscriptions
from services.kafka_io import Publisher
from services.storage.async_storage import AsyncStorage

log = logging.getLogger("fundwatch.api")

PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"}
PRINCIPAL = web.AppKey("principal", Principal)
# Reference bodies may be as large as batches.
MAX_BODY_BYTES = MAX_BATCH_BYTES

Check = Callable[[], Awaitable[bool]]


class Gateway:
    """Everything the handlers need, built once by the process that serves the API."""

    def __init__(
        self,
        storage: AsyncStorage,
        publisher: Publisher,
        tokens: TokenStore,
        partitions: int,
        extra_checks: dict[str, Check] | None = None,
        allow_private_webhooks: bool = False,
    ) -> None:
        self.storage = storage
        self.publisher = publisher
        self.tokens = tokens
        self.intake = BatchIntake(storage, publisher, partitions)
        self.reference = ReferenceService(storage, publisher, partitions)
        self.reads = Reads(storage)
        self.alert_reads = AlertReads(storage)
        self.subscriptions = Subscriptions(storage, allow_private_webhooks)
        self.extra_checks = extra_checks or {}
        self._openapi = msgspec.json.encode(build_openapi())

    async def load(self) -> None:
        """Bring back what must survive restarts, then give workers the reference data."""
        tokens = await self.tokens.load()
        await self.intake.load()
        republished = await self.reference.republish(list(REFERENCE_KINDS.values()))
        # after the reference data, so that workers know the accounts of the records replayed
        replayed = await self.intake.outbox.replay()
        log.info(
            "gateway state loaded tokens=%d reference_items_republished=%d outbox_replayed=%d",
            tokens, republished, replayed,
        )  # fmt: skip

    # --- handlers -------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response(Health("ok"))

    async def readyz(self, request: web.Request) -> web.Response:
        checks: dict[str, Any] = {}

        async def storage_ok() -> bool:
            return (await self.storage.query("SELECT 1"))[0][0] == 1

        probes: dict[str, Check] = {"broker": self.publisher.ping, "storage": storage_ok, **self.extra_checks}
        for name, probe in probes.items():
            try:
                checks[name] = bool(await asyncio.wait_for(probe(), timeout=3.0))
            except Exception as error:  # a probe that fails in any way means "not ready"
                log.warning("readiness probe failed check=%s error=%s", name, error)
                checks[name] = False
        ready = all(checks.values())
        return json_response(Health("ready" if ready else "not_ready", checks), status=200 if ready else 503)

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, request: web.Request) -> web.Response:
        return raw_json_response(self._openapi)

    async def create_token(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        if principal.role != "admin":
            raise ApiError(403, "forbidden", "only an admin token may create tokens")
        body = await read_body(request)
        try:
            ask = decode(body, TokenRequest)
        except ValidationFailure as failure:
            raise ApiError(422, "invalid_token_request", str(failure), failure.field) from None
        role = ask.role.value
        if role == "bank" and not ask.bank_code:
            raise ApiError(
                422, "invalid_token_request", "`bank_code`: is required for a bank token", "bank_code"
            )
        if role == "desk" and not ask.region:
            raise ApiError(422, "invalid_token_request", "`region`: is required for a desk token", "region")
        if role != "bank" and ask.bank_code:
            raise ApiError(
                422, "invalid_token_request", "`bank_code`: only a bank token has a bank_code", "bank_code"
            )
        if role != "desk" and ask.region:
            raise ApiError(422, "invalid_token_request", "`region`: only a desk token has a region", "region")
        token, created, at = await self.tokens.create(role, ask.bank_code or "", ask.region or "")
        log.info("token created token_id=%s role=%s by=%s", created.token_id, role, principal.token_id)
        answer = TokenAnswer(
            token=token,
            token_id=created.token_id,
            role=ask.role,
            created_at=at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            bank_code=ask.bank_code,
            region=ask.region,
        )
        return json_response(answer, status=201)

    async def push_batch(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        if principal.role != "bank":
            raise ApiError(403, "forbidden", "only a bank token may push batches")
        body = await read_body(request)
        batch = parse_batch(body, principal)
        return raw_json_response(await self.intake.submit(batch), status=202)

    async def upsert_reference(self, request: web.Request) -> web.Response:
        kind = REFERENCE_KINDS.get(request.match_info["kind"])
        if kind is None:
            raise ApiError(404, "not_found", f"no reference kind {request.match_info['kind']!r}; "
                           f"one of {', '.join(REFERENCE_KINDS)}")  # fmt: skip
        body = await read_body(request)
        return json_response(await self.reference.upsert(kind, body, request[PRINCIPAL]))

    async def account_flows(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        if principal.role not in {"admin", "desk", "bank"}:
            raise ApiError(403, "forbidden", "no right to read flows")
        query = request.query
        answer = await self.reads.account_flows(
            principal, request.match_info["account_id"], query.get("grain", "day"), query.get("since"),
            query_limit(query),
        )  # fmt: skip
        return json_response(answer)

    async def list_alerts(self, request: web.Request) -> web.Response:
        return json_response(await self.alert_reads.list(request[PRINCIPAL], request.query))

    async def get_alert(self, request: web.Request) -> web.Response:
        return json_response(await self.alert_reads.get(request[PRINCIPAL], request.match_info["alert_id"]))

    async def create_subscription(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        self.subscriptions.may_manage(principal)  # before reading a body it would refuse anyway
        body = await read_body(request)
        return json_response(await self.subscriptions.create(principal, body), status=201)

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        return json_response(await self.subscriptions.list(request[PRINCIPAL]))

    async def delete_subscription(self, request: web.Request) -> web.Response:
        await self.subscriptions.delete(request[PRINCIPAL], request.match_info["subscription_id"])
        return web.Response(status=204)

    async def rotate_secret(self, request: web.Request) -> web.Response:
        return json_response(
            await self.subscriptions.rotate(request[PRINCIPAL], request.match_info["subscription_id"])
        )

    async def delivery_log(self, request: web.Request) -> web.Response:
        answer = await self.subscriptions.delivery_log(
            request[PRINCIPAL], request.match_info["subscription_id"], request.query
        )
        return json_response(answer)

    async def storage_summary(self, request: web.Request) -> web.Response:
        if request[PRINCIPAL].role != "admin":
            raise ApiError(403, "forbidden", "only an admin token may read the storage summary")
        return json_response(await self.reads.storage_summary())

    # --- application ----------------------------------------------------------------------

    def application(self) -> web.Application:
        # aiohttp's own limit is set above ours so that read_body answers 413 in the contract's form
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES * 2)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_text)
        app.router.add_get("/v1/openapi.json", self.openapi)
        app.router.add_post("/v1/admin/tokens", self.create_token)
        app.router.add_post("/v1/batches", self.push_batch)
        app.router.add_put("/v1/reference/{kind}", self.upsert_reference)
        app.router.add_get("/v1/accounts/{account_id}/flows", self.account_flows)
        app.router.add_get("/v1/admin/storage", self.storage_summary)
        app.router.add_get("/v1/alerts", self.list_alerts)
        app.router.add_get("/v1/alerts/{alert_id}", self.get_alert)
        app.router.add_post("/v1/subscriptions", self.create_subscription)
        app.router.add_get("/v1/subscriptions", self.list_subscriptions)
        app.router.add_delete("/v1/subscriptions/{subscription_id}", self.delete_subscription)
        app.router.add_post("/v1/subscriptions/{subscription_id}/rotate-secret", self.rotate_secret)
        app.router.add_get("/v1/subscriptions/{subscription_id}/deliveries", self.delivery_log)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        route = (
            request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        )
        status = 500
        try:
            if request.path not in PUBLIC_PATHS:
                request[PRINCIPAL] = self._authenticate(request)
            response = await handler(request)
            status = response.status
            return response
        except ApiError as error:
            status = error.status
            response = error.response()
            if status == 413:
                response.force_close()  # the rest of the body is not read; do not reuse the connection
            return response
        except web.HTTPException as error:
            status = error.status
            code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
                error.status, "http_error"
            )
            return ApiError(error.status, code, error.reason).response()
        except Exception:
            log.exception("unhandled error route=%s", route)
            return ApiError(500, "internal", "internal error; the event is logged").response()
        finally:
            metrics.HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
            metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)

    def _authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
        principal = self.tokens.authenticate(token.strip())
        if principal is None:
            raise ApiError(401, "unauthorized", "the token is not valid")
        return principal


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, or 413 as soon as it passes ``limit`` (declared or streamed)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            413, "body_too_large", f"the body is {request.content_length} bytes; at most {limit} are taken"
        )
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
