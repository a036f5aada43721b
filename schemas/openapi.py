"""The OpenAPI 3.1 description of the API, generated from the types that validate requests.

Request bodies, query parameters (schemas/api.py FlowQuery, AlertQuery, DeliveryQuery) and path
parameters (PATH_PARAMETERS) are the msgspec types the gateway decodes them with, so the document
says exactly what the server takes: a schema-driven client or fuzzer that follows it reaches every
operation, and one that breaks it gets the error it was told of. Every error answer has the one
error shape; each operation lists the statuses it can answer.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import msgspec

from schemas.actions import ActionRequest, SuppressionList, SuppressionRequest, SuppressionView
from schemas.api import (
    PATH_PARAMETERS,
    AlertList,
    AlertQuery,
    Caller,
    DeliveryLog,
    DeliveryQuery,
    ErrorBody,
    FlowQuery,
    Health,
    SecretAnswer,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionRequest,
    TokenAnswer,
    TokenRequest,
    UpsertAnswer,
)
from schemas.desk import (
    XLSX_MEDIA_TYPE,
    AccountList,
    AccountQuery,
    Dossier,
    InstitutionList,
    InstitutionQuery,
    Overview,
    OverviewQuery,
    ReportQuery,
    RiskReport,
    Trace,
    TraceQuery,
)
from schemas.records import BatchAnswer, BatchSchema
from schemas.reference import REFERENCE_KINDS
from schemas.replays import ReplayDetail, ReplayList, ReplayListQuery, ReplayQuery

API_VERSION = "1.0.0"
RETRY_AFTER_S = 5  # what a 503 asks a client to wait (services/gateway/errors.py says the same)


class Media(NamedTuple):
    """An answer in several media types, by the request's choice (a report's ``format``): the
    JSON one by its type, the others as strings (text) or bytes (binary)."""

    json: Any
    others: dict[str, Any]


class Operation(NamedTuple):
    method: str
    path: str
    summary: str
    roles: tuple[str, ...]
    request: Any
    answers: dict[int, Any]
    query: Any = None  # a Struct of schemas/api.py whose fields are the query parameters


def operations() -> list[Operation]:
    ops = [
        Operation("get", "/healthz", "Liveness", (), None, {200: Health}),
        Operation("get", "/readyz", "Readiness: broker, storage and workers reachable", (), None, {200: Health, 503: Health}),
        Operation("get", "/metrics", "Prometheus metrics (text exposition format)", (), None, {200: str}),
        Operation("get", "/v1/openapi.json", "This document", (), None, {200: dict}),
        Operation(
            "post", "/v1/admin/tokens",
            "Create a bearer token for a role: admin; bank with its bank_code; desk with its region prefix",
            ("admin",), TokenRequest, {201: TokenAnswer},
        ),
        Operation(
            "get", "/v1/me", "Who the token is: its id, role, and a bank's code or a desk's region",
            ("admin", "bank", "desk"), None, {200: Caller},
        ),
        Operation(
            "post", "/v1/batches",
            "Push a batch of records (at most 10,000 records and 8 MiB); re-sending a batch_id returns the first answer",
            ("bank",), BatchSchema, {202: BatchAnswer, 409: ErrorBody},
        ),
        Operation(
            "get", "/v1/accounts/{account_id}/flows",
            "An account's windowed flows and totals, per currency; desks within their region, banks for their "
            "own accounts",
            ("admin", "desk", "bank"), None, {200: dict}, FlowQuery,
        ),
        Operation(
            "get", "/v1/admin/storage", "Row counts of the ClickHouse tables and the newest booked record",
            ("admin",), None, {200: dict},
        ),
        Operation(
            "get", "/v1/alerts", "Alerts newest first, filtered; desks within their region",
            ("admin", "desk"), None, {200: AlertList}, AlertQuery,
        ),
        Operation(
            "get", "/v1/alerts/{alert_id}", "One alert with its evidence and its history",
            ("admin", "desk"), None, {200: dict},
        ),
        Operation(
            "post", "/v1/alerts/{alert_id}/actions",
            "Act on an alert: acknowledge, assign (assignee), dispose (disposition, DOMAIN.md 四(三)), reopen, "
            "comment (note); every action joins the alert's audit trail. 200: the alert as GET shows it. 409 "
            "names `action` when it does not apply to the alert's status (a disposed alert is reopened before "
            "it is disposed again)",
            ("admin", "desk"), ActionRequest, {200: dict, 409: ErrorBody},
        ),
        Operation(
            "post", "/v1/suppressions",
            "Suppress alerts of a typology on an institution or a key (an alert id, or an account the alert "
            "names) until a time at most 180 days ahead: they are stored and listed, marked suppressed, but "
            "not delivered; a desk's is confined to its region",
            ("admin", "desk"), SuppressionRequest, {201: SuppressionView},
        ),
        Operation(
            "get", "/v1/suppressions", "Suppressions not removed (expired ones marked inactive), within a desk's region",
            ("admin", "desk"), None, {200: SuppressionList},
        ),
        Operation(
            "delete", "/v1/suppressions/{suppression_id}", "Remove a suppression; its alerts are delivered again",
            ("admin", "desk"), None, {204: None},
        ),
        Operation(
            "post", "/v1/subscriptions",
            "Subscribe a URL to alerts (filter: typologies, min_severity, region prefix; a desk's region is "
            "forced within its own); the secret is shown once",
            ("admin", "desk"), SubscriptionRequest, {201: SubscriptionCreated},
        ),
        Operation(
            "get", "/v1/subscriptions", "Subscriptions without their secrets: all for an admin, its own for a desk",
            ("admin", "desk"), None, {200: SubscriptionList},
        ),
        Operation(
            "delete", "/v1/subscriptions/{subscription_id}", "Delete a subscription; its pending messages are dropped",
            ("admin", "desk"), None, {204: None},
        ),
        Operation(
            "post", "/v1/subscriptions/{subscription_id}/rotate-secret",
            "A new secret; for 24 h each message carries two signatures, new and old",
            ("admin", "desk"), None, {200: SecretAnswer},
        ),
        Operation(
            "get", "/v1/subscriptions/{subscription_id}/deliveries",
            "The delivery log: each message's webhook-id, alert id, attempts (time, status or error) and state",
            ("admin", "desk"), None, {200: DeliveryLog}, DeliveryQuery,
        ),
        *desk_operations(),
    ]  # fmt: skip
    for kind in REFERENCE_KINDS.values():
        roles = ("admin", "bank") if kind.path == "accounts" else ("admin",)
        ops.append(
            Operation(
                "put", f"/v1/reference/{kind.path}", f"Upsert {kind.path} (JSON array); per-item rejections",
                roles, list[kind.type], {200: UpsertAnswer},
            )
        )  # fmt: skip
    return ops


def desk_operations() -> list[Operation]:
    """The desk workspace's reads (schemas/desk.py); 403 for bank tokens but on /v1/accounts."""
    return [
        Operation(
            "get", "/v1/institutions",
            "Institutions with their risk index and open alerts; desks within their region (a region filter "
            "outside it is 404 naming `region`)",
            ("admin", "desk"), None, {200: InstitutionList, 404: ErrorBody}, InstitutionQuery,
        ),
        Operation(
            "get", "/v1/institutions/{institution_id}",
            "The dossier (一户一档): profile, accounts by role, products, related parties, 90 days of daily flows, "
            "alerts with dispositions, screening hits, the risk index with its components and weights",
            ("admin", "desk"), None, {200: Dossier},
        ),
        Operation(
            "get", "/v1/accounts",
            "Accounts, of one institution or all in reach: desks within their region (holders masked), banks "
            "their own bank's",
            ("admin", "desk", "bank"), None, {200: AccountList, 404: ErrorBody}, AccountQuery,
        ),
        Operation(
            "get", "/v1/trace",
            "Where money leaving an account went, hop by hop (穿透), from the raw records: edges with from, to, "
            "amount, count, first_at, last_at, hop; cycles end, fan-out and hops are capped and said so",
            ("admin", "desk"), None, {200: Trace, 404: ErrorBody}, TraceQuery,
        ),
        Operation(
            "get", "/v1/overview",
            "Alerts by typology, severity, status and region level (province, city, county), a 30-day trend, "
            "institutions ranked by risk index; a region filter outside a desk's region is 404 naming `region`",
            ("admin", "desk"), None, {200: Overview, 404: ErrorBody}, OverviewQuery,
        ),
        Operation(
            "get", "/v1/reports/risk",
            "The risk assessment for the leading group: alerts created in [from, to) by institution type, region, "
            "typology and disposition; format json, html (printable) or xlsx",
            ("admin", "desk"), None,
            {200: Media(RiskReport, {"text/html": str, XLSX_MEDIA_TYPE: bytes}), 404: ErrorBody}, ReportQuery,
        ),
        Operation(
            "get", "/v1/replays",
            "Saved replays (`fundwatch replay --save`), newest first: period, thresholds and anomaly model of "
            "each run, totals; a desk's are summed from its region's rows, and lists only replays holding one "
            "(a region filter outside it is 404 naming `region`)",
            ("admin", "desk"), None, {200: ReplayList, 404: ErrorBody}, ReplayListQuery,
        ),
        Operation(
            "get", "/v1/replays/{replay_id}",
            "One saved replay: counts per typology, institution and region, and the alerts gained, lost and "
            "regraded; a desk's from its region's rows only (404 when it holds none)",
            ("admin", "desk"), None, {200: ReplayDetail, 404: ErrorBody}, ReplayQuery,
        ),
    ]  # fmt: skip


_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


def _errors(op: Operation) -> list[int]:
    """The error statuses an operation can answer, besides those it lists itself."""
    statuses = [414]  # any URL past 8190 bytes
    if op.roles:
        # 503: storage or the broker unavailable, for every operation that reads or writes them
        statuses += [401, 403, 503]
    if op.request is not None:
        statuses += [400, 413, 415, 422]
    if _PATH_PARAMETER.search(op.path):
        statuses += [404, 422]
    if op.query is not None:
        statuses += [422]
    return statuses


def _parameter_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without the null msgspec allows for an absent optional field:
    in a URL a parameter is given or not, never null."""
    schema = {key: value for key, value in schema.items() if not (key == "default" and value is None)}
    options = schema.get("anyOf")
    if options:
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            return {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept[0]}
    return schema


def _exclusive_unions(node: Any) -> Any:
    """A union tagged by a field (a record's kind, a token's role) matches one member at most:
    OpenAPI says so with oneOf, where msgspec writes anyOf."""
    if isinstance(node, dict):
        node = {key: _exclusive_unions(value) for key, value in node.items()}
        if "discriminator" in node and "anyOf" in node:
            node["oneOf"] = node.pop("anyOf")
        return node
    if isinstance(node, (list, tuple)):
        return [_exclusive_unions(item) for item in node]
    return node


def build_openapi() -> dict[str, Any]:
    ops = operations()
    types: list[Any] = [ErrorBody]
    for op in ops:
        if op.request is not None:
            types.append(op.request)
        if op.query is not None:
            types.append(op.query)
        types.extend(
            (t.json if isinstance(t, Media) else t) for t in op.answers.values() if t not in (str, dict, None)
        )
    types.extend(PATH_PARAMETERS.values())
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    schemas, components = _exclusive_unions(schemas), _exclusive_unions(components)
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    error_schema = schema_of[id(ErrorBody)]

    paths: dict[str, Any] = {}
    for op in ops:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_').replace('-', '_').replace('.', '_')}",
        }
        if op.roles:
            entry["security"] = [{"bearer": []}]
            entry["description"] = "Roles: " + ", ".join(op.roles)
        else:
            entry["security"] = []
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": schema_of[id(PATH_PARAMETERS[name])]}
            for name in _PATH_PARAMETER.findall(op.path)
        ]
        if op.query is not None:
            # the parameters are the Struct's fields; the Struct itself is no body anywhere
            query = components.pop(op.query.__name__)
            required = set(query.get("required", ()))
            parameters += [
                {"name": name, "in": "query", "required": name in required, "schema": _parameter_schema(schema)}
                for name, schema in query["properties"].items()
            ]
        if parameters:
            entry["parameters"] = parameters
        if op.request is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(op.request)]}},
            }
        answers = {status: ErrorBody for status in _errors(op)} | op.answers
        responses: dict[str, Any] = {}
        for status, answer in sorted(answers.items()):
            response: dict[str, Any] = {"description": _STATUS_WORDS.get(status, "answer")}
            if answer is str:
                response["content"] = {"text/plain": {"schema": {"type": "string"}}}
            elif answer is dict:
                response["content"] = {"application/json": {"schema": {"type": "object"}}}
            elif isinstance(answer, Media):
                response["content"] = {"application/json": {"schema": schema_of[id(answer.json)]}} | {
                    media: {"schema": {"type": "string"} if kind is str else {"type": "string", "format": "binary"}}
                    for media, kind in answer.others.items()
                }
            elif answer is ErrorBody:
                response["content"] = {"application/json": {"schema": error_schema}}
            elif answer is not None:
                response["content"] = {"application/json": {"schema": schema_of[id(answer)]}}
            if status == 503:
                response["headers"] = {"Retry-After": _RETRY_AFTER}
            responses[str(status)] = response
        entry["responses"] = responses
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "FundWatch API",
            "version": API_VERSION,
            "description": "Fund-flow monitoring of internet-finance institutions: custody banks push records, "
            "monitoring desks read alerts and dossiers.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_RETRY_AFTER = {
    "description": "seconds to wait before sending the same request again",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}

_STATUS_WORDS = {
    200: "OK",
    201: "Created",
    202: "Accepted: the per-record answer",
    204: "No content",
    400: "Malformed body: not UTF-8 JSON, nested too deeply, or a compressed body that does not decompress",
    401: "Missing or wrong token",
    403: "The token does not have the right",
    404: "Unknown, or outside the caller's reach",
    409: "A batch_id sent before with other content, or an action that does not apply to the alert's status",
    413: "Body or batch over the limit",
    414: "URL over 8190 bytes",
    415: "A body declared other than application/json, or in an encoding other than gzip or deflate",
    422: "A field or parameter breaks a rule (or a key is given twice); the error names it",
    503: "Not ready, or the broker or storage is unavailable; Retry-After says when to send again",
}
