"""Request and answer bodies of the HTTP API that are not records or reference items, and the
query parameters of its list endpoints: each type both validates what comes in and describes it
in the OpenAPI document (schemas/openapi.py)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, get_args

import msgspec

from schemas.fields import Id, RegionPrefix, Time, patterned, time_breaks_rule


class Role(str, Enum):
    admin = "admin"
    bank = "bank"
    desk = "desk"


# A token request by role, each with exactly the fields that role has: a bank token is bound to
# one bank_code, a desk token to a region prefix, an admin token to nothing (CONTRACT.md §2).
class AdminTokenRequest(msgspec.Struct, tag_field="role", tag="admin", forbid_unknown_fields=True):
    """An admin token."""


class BankTokenRequest(msgspec.Struct, tag_field="role", tag="bank", forbid_unknown_fields=True):
    """A bank token: it pushes the records of this bank only."""

    bank_code: Id


class DeskTokenRequest(msgspec.Struct, tag_field="role", tag="desk", forbid_unknown_fields=True):
    """A desk token: it sees the institutions whose region starts with this prefix."""

    region: RegionPrefix


TokenRequest = AdminTokenRequest | BankTokenRequest | DeskTokenRequest


class TokenAnswer(msgspec.Struct, omit_defaults=True):
    token: str
    token_id: str
    role: Role
    created_at: str
    bank_code: str | None = None
    region: str | None = None


class Caller(msgspec.Struct, omit_defaults=True):
    """Who a token is: what the console shows in its header (a desk's region, a bank's code)."""

    token_id: str
    role: Role
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


class AlertList(msgspec.Struct):
    alerts: list[dict[str, Any]]


# --- query parameters ----------------------------------------------------------------------------

MAX_LIMIT = 1000
Limit = Annotated[
    int, msgspec.Meta(ge=1, le=MAX_LIMIT, description=f"how many at most, from 1 to {MAX_LIMIT}")
]
AlertStatus = Literal["open", "acknowledged", "assigned", "disposed"]
DeliveryState = Literal["pending", "delivered", "dead"]


def _one_or_several(choice: Any, what: str) -> Any:
    """A query parameter holding one value of the Literal ``choice`` or several, comma-separated."""
    one = "|".join(get_args(choice))
    rule = f"one {what} or several, comma-separated, of {', '.join(get_args(choice))}"
    return Annotated[str, patterned(rf"({one})(,({one}))*", rule)]


AlertRegion = Annotated[str, patterned(r"[0-9]{1,6}", 'a prefix of a 6-digit division code, e.g. "22"')]


def _check_since(since: str | None) -> None:
    # the pattern took it; the calendar and the year 2000 are checked as for records' times
    wrong = None if since is None else time_breaks_rule(since)
    if wrong is not None:
        raise ValueError(f"`since`: must be {wrong}")


class FlowQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/accounts/{account_id}/flows. Unknown parameters are ignored, as caches add them."""

    grain: Literal["hour", "day"] = "day"
    since: Time | None = None  # windows starting at or after
    limit: Limit = 100

    def __post_init__(self) -> None:
        _check_since(self.since)


class AlertQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/alerts: every filter given must match."""

    typology: _one_or_several(Typology, "typology") | None = None  # type: ignore[valid-type]
    status: _one_or_several(AlertStatus, "status") | None = None  # type: ignore[valid-type]
    severity: _one_or_several(Severity, "severity") | None = None  # type: ignore[valid-type]
    region: AlertRegion | None = None
    institution_id: Id | None = None
    since: Time | None = None  # updated at or after
    limit: Limit = 100

    def __post_init__(self) -> None:
        _check_since(self.since)


class DeliveryQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/subscriptions/{subscription_id}/deliveries."""

    status: DeliveryState | None = None
    limit: Limit = 100


# Path parameters, by name: what each must be (a value breaking it is answered 422 naming it).
PATH_PARAMETERS: dict[str, Any] = {
    "account_id": Id, "alert_id": Id, "subscription_id": Id, "suppression_id": Id, "institution_id": Id,
    "replay_id": Id,
}  # fmt: skip
