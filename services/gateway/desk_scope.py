"""Who sees what in the desk workspace, and the small conversions its reads share.

The rule is /v1/alerts' (services/gateway/alert_reads.py): admins see every region; a desk sees
institutions whose region starts with its prefix, and an institution or account outside it answers
404, exactly as an unknown one; a ``region=`` filter that holds the desk's prefix narrows to it,
one outside it answers 404 naming ``region`` (outside the region is not there, as for an
institution; /v1/alerts, older, refuses such a filter with 403); bank tokens are refused 403 (but on
/v1/accounts, where a bank sees its own bank's accounts).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.fields import BEIJING, parse_time
from services.auth import Principal
from services.gateway.errors import ApiError


def desk_scope(principal: Principal, what: str) -> str:
    """The region prefix a caller reads within ("" for admins); 403 for other roles."""
    if principal.role == "admin":
        return ""
    if principal.role == "desk":
        return principal.region
    raise ApiError(403, "forbidden", f"{principal.role} tokens may not read {what}")


def narrowed(scope: str, region: str | None) -> str:
    """The prefix a read covers: the caller's scope, narrowed by a ``region`` filter."""
    region = region or ""
    if scope and region and not (region.startswith(scope) or scope.startswith(region)):
        # as for an institution outside it: the answer names nothing, neither region
        raise ApiError(404, "not_found", "`region`: no such region in your scope", "region")
    return max(scope, region, key=len)


def not_found(what: str) -> ApiError:
    # the same answer for unknown and out of scope, naming nothing of the object
    return ApiError(404, "not_found", f"no {what} of that id in your scope")


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day_start(at: datetime) -> datetime:
    """The start of ``at``'s Beijing day."""
    local = at.astimezone(BEIJING)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def next_day_start(at: datetime) -> datetime:
    return day_start(at) + timedelta(days=1)


def day_or_time(text: str) -> datetime:
    """A query's DayOrTime (schemas/desk.py), already checked: a bare day is its Beijing start."""
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=BEIJING)
    return parse_time(text)


def beijing_day(day_number: int) -> str:
    """A Beijing day counted from the epoch (as the SQL counts it) as YYYY-MM-DD."""
    return (datetime(1970, 1, 1) + timedelta(days=day_number)).date().isoformat()


def day_number(at: datetime) -> int:
    return int((at.timestamp() + 8 * 3600) // 86400)


def mask_holder(name: str) -> str:
    """A holder's name as a desk sees it (DOMAIN.md, Personal data): the last 4 characters."""
    return "****" + name[-4:] if len(name) > 4 else "****"
