"""Request and answer bodies of the HTTP API that are not records or reference items."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

import msgspec

from schemas.fields import Id, RegionPrefix


class Role(str, Enum):
    admin = "admin"
    bank = "bank"
    desk = "desk"


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    role: Role
    bank_code: Id | None = None
    region: RegionPrefix | None = None


class TokenAnswer(msgspec.Struct, omit_defaults=True):
    token: str
    token_id: str
    role: Role
    created_at: str
    bank_code: str | None = None
    region: str | None = None


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    field: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class ItemRejection(msgspec.Struct):
    index: int
    id: str | None
    error: str


class UpsertAnswer(msgspec.Struct):
    upserted: int
    rejected: list[ItemRejection]


class Health(msgspec.Struct):
    status: str
    checks: dict[str, Any] = {}


Typology = Literal[
    "misappropriation", "reserve_shortfall", "commingling", "fund_pool", "maturity_mismatch",
    "excess_return", "self_financing", "disguised_clearing", "investor_cap_breach", "rapid_growth",
    "large_value", "anomaly",
]  # fmt: skip
Severity = Literal["low", "medium", "high", "critical"]
WebhookUrl = Annotated[str, msgspec.Meta(min_length=8, max_length=2048, description="an http(s) URL")]


class SubscriptionFilter(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Which alerts a subscription receives: all of these that are given must match."""

    typologies: list[Typology] = []  # empty: every typology
    min_severity: Severity = "low"
    region: RegionPrefix | None = None  # a prefix of the institution's region; a desk's is forced


class SubscriptionRequest(msgspec.Struct, forbid_unknown_fields=True):
    url: WebhookUrl
    filter: SubscriptionFilter = msgspec.field(default_factory=SubscriptionFilter)


class SubscriptionCreated(msgspec.Struct):
    id: str
    secret: str  # whsec_<base64 key>: shown once


class SecretAnswer(msgspec.Struct):
    secret: str


class SubscriptionList(msgspec.Struct):
    subscriptions: list[dict[str, Any]]


class DeliveryLog(msgspec.Struct):
    deliveries: list[dict[str, Any]]
