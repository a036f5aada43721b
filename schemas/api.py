"""Request and answer bodies of the HTTP API that are not records or reference items."""

from __future__ import annotations

from enum import Enum
from typing import Any

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
