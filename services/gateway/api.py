"""The aiohttp application: routes, bearer authentication, body limits, health and metrics.

The edge of the API answers every malformed request in the contract's error shape, never 500:
bodies that are not UTF-8 JSON or nest too deeply (schemas/validation.py), compressed bodies that
do not decompress, encodings and media types it does not take (body.py), URLs too long, methods a
path does not have (with ``Allow``). aiohttp's own HTTP parser answers what it cannot parse at all (a header
with a NUL byte) in plain text before any middleware runs; it logs such a request through
``PARSER_LOG``, which keeps no byte of the request, since the parser's error quotes the offending
line (a bearer token included).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

import msgspec
from aiohttp import web

from schemas.api import (
    PATH_PARAMETERS,
    BankTokenRequest,
    Caller,
    DeliveryQuery,
    DeskTokenRequest,
    FlowQuery,
    Health,
    Role,
    TokenAnswer,
    TokenRequest,
)
from schemas.openapi import build_openapi
from schemas.reference import REFERENCE_KINDS
from schemas.validation import ValidationFailure, convert, decode
from services.auth import Principal, TokenStore
from services.console.routes import add_console_routes, is_console_path
from services.exposition import metrics_page
from services.gateway import metrics
from services.gateway.alert_actions import AlertActions, may_act
from services.gateway.alert_reads import AlertReads
from services.gateway.body import MAX_BODY_BYTES, read_body
from services.gateway.desk_api import DeskHandlers
from services.gateway.errors import (
    RETRY_AFTER_S,
    ApiError,
    json_response,
    parse_query,
    raw_json_response,
    unavailable,
)
from services.gateway.intake import BatchIntake, parse_batch
from services.gateway.reads import Reads
from services.gateway.reference import ReferenceService
from services.gateway.subscriptions import Subscriptions
from services.gateway.suppressions import Suppressions
from services.kafka_io import Publisher, PublishError
from services.storage.async_storage import AsyncStorage
from services.storage.base import StorageError

log = logging.getLogger("fundwatch.api")

PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"}
PRINCIPAL = web.RequestKey("principal", Principal)
# The longest URL (path and query) taken, aiohttp's own default. Its parser is told to take lines
# up to PARSER_LINE_BYTES instead, so that a longer URL reaches the middleware and gets 414 in the
# contract's shape; only one beyond that gets the parser's plain-text 400.
MAX_URL_BYTES = 8190
PARSER_LINE_BYTES = 1 << 20


class _KeepNoRequestBytes(logging.Filter):
    """For aiohttp's server log: a request its parser refuses is logged with the parser's error,
    which quotes the offending bytes (``b'Authorization: Bearer fw_...\\x00'``, a URL). Only the
    error's class and status stay; the traceback, which repeats the message, goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            status = getattr(error, "code", None) or getattr(error, "status", None)
            record.msg = f"{record.getMessage()}: {type(error).__name__}" + (
                f" (status {status})" if status else ""
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


PARSER_LOG = logging.getLogger("fundwatch.http")
PARSER_LOG.addFilter(_KeepNoRequestBytes())

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
        self.suppressions = Suppressions(storage, publisher)
        self.alert_actions = AlertActions(storage, publisher, self.suppressions)
        self.desk = DeskHandlers(storage, lambda request: request[PRINCIPAL], path_parameter)
        self.extra_checks = extra_checks or {}
        self._openapi = msgspec.json.encode(build_openapi())

    async def load(self) -> None:
        """Bring back what must survive restarts, then give workers the reference data."""
        tokens = await self.tokens.load()
        await self.intake.load()
        republished = await self.reference.republish(list(REFERENCE_KINDS.values()))
        # alert cases and suppressions, which workers lay over the alerts they emit
        republished += await self.alert_actions.republish() + await self.suppressions.republish()
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
        response = json_response(
            Health("ready" if ready else "not_ready", checks), status=200 if ready else 503
        )
        if not ready:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        return raw_json_response(self._openapi)

    async def create_token(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        if principal.role != "admin":
            raise ApiError(403, "forbidden", "only an admin token may create tokens")
        body = await read_body(request)
        try:
            # one type per role, each with exactly its fields: a bank_code for a bank, a region for a desk
            ask = decode(body, TokenRequest)
        except ValidationFailure as failure:
            status = 400 if failure.message.startswith("is not valid JSON") else 422
            raise ApiError(status, "invalid_token_request", str(failure), failure.field) from None
        bank_code = ask.bank_code if isinstance(ask, BankTokenRequest) else None
        region = ask.region if isinstance(ask, DeskTokenRequest) else None
        role = Role(type(ask).__struct_config__.tag)
        token, created, at = await self.tokens.create(role.value, bank_code or "", region or "")
        log.info("token created token_id=%s role=%s by=%s", created.token_id, role.value, principal.token_id)
        answer = TokenAnswer(
            token=token,
            token_id=created.token_id,
            role=role,
            created_at=at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            bank_code=bank_code,
            region=region,
        )
        return json_response(answer, status=201)

    async def whoami(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        answer = Caller(
            token_id=principal.token_id,
            role=Role(principal.role),
            bank_code=principal.bank_code or None,
            region=principal.region or None,
        )
        return json_response(answer)

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
        account_id = path_parameter(request, "account_id")
        ask = parse_query(request.query, FlowQuery)
        answer = await self.reads.account_flows(principal, account_id, ask.grain, ask.since, ask.limit)
        return json_response(answer)

    async def list_alerts(self, request: web.Request) -> web.Response:
        return json_response(await self.alert_reads.list(request[PRINCIPAL], request.query))

    async def get_alert(self, request: web.Request) -> web.Response:
        return json_response(
            await self.alert_reads.get(request[PRINCIPAL], path_parameter(request, "alert_id"))
        )

    async def act_on_alert(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        may_act(principal)  # a bank is refused before its body or the alert is looked at
        alert_id = path_parameter(request, "alert_id")
        await self.alert_actions.act(principal, alert_id, await read_body(request))
        return json_response(await self.alert_reads.get(principal, alert_id))  # as GET shows it

    async def create_suppression(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        self.suppressions.may_manage(principal)  # before reading a body it would refuse anyway
        return json_response(await self.suppressions.create(principal, await read_body(request)), status=201)

    async def list_suppressions(self, request: web.Request) -> web.Response:
        return json_response(await self.suppressions.list(request[PRINCIPAL]))

    async def delete_suppression(self, request: web.Request) -> web.Response:
        await self.suppressions.delete(request[PRINCIPAL], path_parameter(request, "suppression_id"))
        return web.Response(status=204)

    async def create_subscription(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        self.subscriptions.may_manage(principal)  # before reading a body it would refuse anyway
        body = await read_body(request)
        return json_response(await self.subscriptions.create(principal, body), status=201)

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        return json_response(await self.subscriptions.list(request[PRINCIPAL]))

    async def delete_subscription(self, request: web.Request) -> web.Response:
        await self.subscriptions.delete(request[PRINCIPAL], path_parameter(request, "subscription_id"))
        return web.Response(status=204)

    async def rotate_secret(self, request: web.Request) -> web.Response:
        return json_response(
            await self.subscriptions.rotate(request[PRINCIPAL], path_parameter(request, "subscription_id"))
        )

    async def delivery_log(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        self.subscriptions.may_manage(principal)  # a bank is refused before its query is judged
        subscription_id = path_parameter(request, "subscription_id")
        parse_query(request.query, DeliveryQuery)  # the documented rules, before any look-up
        answer = await self.subscriptions.delivery_log(principal, subscription_id, request.query)
        return json_response(answer)

    async def storage_summary(self, request: web.Request) -> web.Response:
        if request[PRINCIPAL].role != "admin":
            raise ApiError(403, "forbidden", "only an admin token may read the storage summary")
        return json_response(await self.reads.storage_summary())

    # --- application ----------------------------------------------------------------------

    def application(self) -> web.Application:
        # aiohttp's own limit is set above ours so that read_body answers 413 in the contract's form.
        # Its parser is told: take URLs up to PARSER_LINE_BYTES (the middleware answers 414 past
        # MAX_URL_BYTES), leave bodies compressed (read_body decompresses the encodings it takes,
        # within the body limit, and answers the others 415), log through PARSER_LOG.
        app = web.Application(
            middlewares=[self._middleware],
            client_max_size=MAX_BODY_BYTES * 2,
            handler_args={"max_line_size": PARSER_LINE_BYTES, "auto_decompress": False, "logger": PARSER_LOG},
        )
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", metrics_page)
        app.router.add_get("/v1/openapi.json", self.openapi)
        app.router.add_post("/v1/admin/tokens", self.create_token)
        app.router.add_get("/v1/me", self.whoami)
        app.router.add_post("/v1/batches", self.push_batch)
        app.router.add_put("/v1/reference/{kind}", self.upsert_reference)
        app.router.add_get("/v1/accounts/{account_id}/flows", self.account_flows)
        app.router.add_get("/v1/admin/storage", self.storage_summary)
        app.router.add_get("/v1/alerts", self.list_alerts)
        app.router.add_get("/v1/alerts/{alert_id}", self.get_alert)
        app.router.add_post("/v1/alerts/{alert_id}/actions", self.act_on_alert)
        app.router.add_post("/v1/suppressions", self.create_suppression)
        app.router.add_get("/v1/suppressions", self.list_suppressions)
        app.router.add_delete("/v1/suppressions/{suppression_id}", self.delete_suppression)
        app.router.add_post("/v1/subscriptions", self.create_subscription)
        app.router.add_get("/v1/subscriptions", self.list_subscriptions)
        app.router.add_delete("/v1/subscriptions/{subscription_id}", self.delete_subscription)
        app.router.add_post("/v1/subscriptions/{subscription_id}/rotate-secret", self.rotate_secret)
        app.router.add_get("/v1/subscriptions/{subscription_id}/deliveries", self.delivery_log)
        app.router.add_get("/v1/institutions", self.desk.institutions)
        app.router.add_get("/v1/institutions/{institution_id}", self.desk.dossier)
        app.router.add_get("/v1/accounts", self.desk.accounts)
        app.router.add_get("/v1/trace", self.desk.trace)
        app.router.add_get("/v1/overview", self.desk.overview)
        app.router.add_get("/v1/reports/risk", self.desk.risk_report)
        app.router.add_get("/v1/replays", self.desk.replays)  # saved `fundwatch replay --save` reports
        app.router.add_get("/v1/replays/{replay_id}", self.desk.replay)
        add_console_routes(app.router)  # GET / and /console/{name}: the desk console, public
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        route = (
            request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        )
        status = 500
        try:
            if len(request.raw_path) > MAX_URL_BYTES:
                raise ApiError(
                    414,
                    "uri_too_long",
                    f"the URL is {len(request.raw_path)} bytes; at most {MAX_URL_BYTES} are taken",
                )
            if request.path not in PUBLIC_PATHS and not is_console_path(request.path):
                request[PRINCIPAL] = self._authenticate(request)
            response = await handler(request)
            status = response.status
            return response
        except ApiError as error:
            status = error.status
            response = error.response()
            if status in (413, 414, 415):
                response.force_close()  # the rest of the body is not read; do not reuse the connection
            return response
        except web.HTTPException as error:
            status = error.status
            code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
                error.status, "http_error"
            )
            headers = {}
            if isinstance(error, web.HTTPMethodNotAllowed):
                headers["Allow"] = ", ".join(sorted(error.allowed_methods))
            return ApiError(error.status, code, error.reason, headers=headers).response()
        except (StorageError, PublishError) as error:
            # the handlers that answer 503 themselves say more; this is for every other read or write
            status = 503
            log.error("storage or broker unavailable route=%s error=%s", route, error)
            return unavailable("storage or the broker is unavailable now; send the request again").response()
        except Exception:
            log.exception("unhandled error route=%s", route)
            return ApiError(500, "internal", "internal error; the event is logged").response()
        finally:
            metrics.HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
            metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)

    def _authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
        principal = self.tokens.authenticate(token)
        if principal is None:
            # never the token itself, nor any part of it, in an answer or a log line
            raise ApiError(401, "unauthorized", "the token is not valid")
        return principal


def path_parameter(request: web.Request, name: str) -> str:
    """A path parameter that follows its documented rule (schemas/api.py), else 422 naming it."""
    try:
        return convert(request.match_info[name], PATH_PARAMETERS[name], prefix=name)
    except ValidationFailure as failure:
        raise ApiError(422, "invalid_path", str(failure), name) from None
