"""The OpenAPI 3.1 description of the API, generated from the types that validate requests."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from schemas.api import (
    DeliveryLog,
    ErrorBody,
    Health,
    SecretAnswer,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionRequest,
    TokenAnswer,
    TokenRequest,
    UpsertAnswer,
)
from schemas.records import BatchAnswer, BatchSchema
from schemas.reference import REFERENCE_KINDS

API_VERSION = "1.0.0"


class Operation(NamedTuple):
    method: str
    path: str
    summary: str
    roles: tuple[str, ...]
    request: Any
    answers: dict[int, Any]


def operations() -> list[Operation]:
    ops = [
        Operation("get", "/healthz", "Liveness", (), None, {200: Health}),
        Operation("get", "/readyz", "Readiness: broker, storage and workers reachable", (), None, {200: Health, 503: Health}),
        Operation("get", "/metrics", "Prometheus metrics (text exposition format)", (), None, {200: str}),
        Operation("get", "/v1/openapi.json", "This document", (), None, {200: dict}),
        Operation(
            "post", "/v1/admin/tokens", "Create a bearer token for a role", ("admin",), TokenRequest,
            {201: TokenAnswer, 401: ErrorBody, 403: ErrorBody, 422: ErrorBody},
        ),
        Operation(
            "post", "/v1/batches",
            "Push a batch of records (at most 10,000 records and 8 MiB); re-sending a batch_id returns the first answer",
            ("bank",), BatchSchema,
            {202: BatchAnswer, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 413: ErrorBody, 422: ErrorBody, 503: ErrorBody},
        ),
        Operation(
            "get", "/v1/accounts/{account_id}/flows",
            "An account's windowed flows (grain=hour|day, since, limit) and totals; desks within their region, "
            "banks for their own accounts",
            ("admin", "desk", "bank"), None, {200: dict, 401: ErrorBody, 404: ErrorBody, 422: ErrorBody},
        ),
        Operation(
            "get", "/v1/admin/storage", "Row counts of the ClickHouse tables and the newest booked record",
            ("admin",), None, {200: dict, 401: ErrorBody, 403: ErrorBody},
        ),
        Operation(
            "get", "/v1/alerts",
            "Alerts newest first; filters typology, status, severity (one or several, comma-separated), "
            "region (prefix), institution_id, since (updated at or after), limit (1..1000); desks within "
            "their region",
            ("admin", "desk"), None, {200: dict, 401: ErrorBody, 403: ErrorBody, 422: ErrorBody},
        ),
        Operation(
            "get", "/v1/alerts/{alert_id}", "One alert with its evidence and its history",
            ("admin", "desk"), None, {200: dict, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody},
        ),
        Operation(
            "post", "/v1/subscriptions",
            "Subscribe a URL to alerts (filter: typologies, min_severity, region prefix; a desk's region is "
            "forced within its own); the secret is shown once",
            ("admin", "desk"), SubscriptionRequest,
            {201: SubscriptionCreated, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 413: ErrorBody, 422: ErrorBody},
        ),
        Operation(
            "get", "/v1/subscriptions", "Subscriptions without their secrets: all for an admin, its own for a desk",
            ("admin", "desk"), None, {200: SubscriptionList, 401: ErrorBody, 403: ErrorBody},
        ),
        Operation(
            "delete", "/v1/subscriptions/{subscription_id}", "Delete a subscription; its pending messages are dropped",
            ("admin", "desk"), None, {204: None, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody},
        ),
        Operation(
            "post", "/v1/subscriptions/{subscription_id}/rotate-secret",
            "A new secret; for 24 h each message carries two signatures, new and old",
            ("admin", "desk"), None, {200: SecretAnswer, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody},
        ),
        Operation(
            "get", "/v1/subscriptions/{subscription_id}/deliveries",
            "The delivery log: each message's webhook-id, alert id, attempts (time, status or error) and state "
            "(status=pending|delivered|dead, limit 1..1000)",
            ("admin", "desk"), None, {200: DeliveryLog, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 422: ErrorBody},
        ),
    ]  # fmt: skip
    for kind in REFERENCE_KINDS.values():
        roles = ("admin", "bank") if kind.path == "accounts" else ("admin",)
        ops.append(
            Operation(
                "put", f"/v1/reference/{kind.path}", f"Upsert {kind.path} (JSON array); per-item rejections",
                roles, list[kind.type],
                {200: UpsertAnswer, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 413: ErrorBody, 422: ErrorBody},
            )
        )  # fmt: skip
    return ops


def build_openapi() -> dict[str, Any]:
    ops = operations()
    types: list[Any] = []
    for op in ops:
        if op.request is not None:
            types.append(op.request)
        types.extend(t for t in op.answers.values() if t not in (str, dict, None))
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    schema_of = dict(zip(map(id, types), schemas, strict=True))

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
        if op.request is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(op.request)]}},
            }
        responses: dict[str, Any] = {}
        for status, answer in op.answers.items():
            if answer is None:
                responses[str(status)] = {"description": _STATUS_WORDS.get(status, "answer")}
                continue
            if answer is str:
                content = {"text/plain": {"schema": {"type": "string"}}}
            elif answer is dict:
                content = {"application/json": {"schema": {"type": "object"}}}
            else:
                content = {"application/json": {"schema": schema_of[id(answer)]}}
            responses[str(status)] = {"description": _STATUS_WORDS.get(status, "answer"), "content": content}
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


_STATUS_WORDS = {
    200: "OK",
    201: "Created",
    202: "Accepted: the per-record answer",
    204: "No content",
    400: "Malformed body",
    401: "Missing or wrong token",
    403: "The token does not have the right",
    404: "Unknown, or outside the caller's reach",
    413: "Body or batch over the limit",
    422: "A field breaks a rule; the error names it",
    503: "Not ready, or the broker or storage is unavailable",
}
