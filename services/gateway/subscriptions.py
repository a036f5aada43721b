"""Webhook subscriptions through the API (CONTRACT.md §2, §5): create, list, delete, rotate the
secret, read the delivery log.

A secret is a Standard Webhooks key, ``whsec_`` and 32 random bytes in base64. It is shown once,
when made or rotated, and kept in ClickHouse encrypted under FUNDWATCH_SECRET_KEY (the store does
it: services/webhooks/store.py), not hashed, since the dispatcher signs with it. After a rotation
the old key signs beside the new one for 24 h, so receivers switch without a gap.

Admins see and manage every subscription; desks the ones they made, and a desk's filter region is
forced within its own, so it never subscribes to another region's alerts. Banks have no
subscriptions. A subscription outside the caller's reach answers as an unknown one does (404).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from schemas.api import DeliveryLog, SecretAnswer, SubscriptionCreated, SubscriptionList, SubscriptionRequest
from schemas.validation import ValidationFailure, decode
from services.auth import Principal
from services.gateway.errors import ApiError, query_limit
from services.secret_box import SecretBox
from services.storage.async_storage import AsyncStorage
from services.webhooks.policy import ROTATION_OVERLAP_S
from services.webhooks.signing import new_secret
from services.webhooks.ssrf import UrlRefused, resolve_and_check
from services.webhooks.store import DELIVERY_STATES, DeliveryStore, SubscriptionStore, delivery_view, iso

log = logging.getLogger("fundwatch.subscriptions")

_HIDDEN = {"secret", "previous_secret", "previous_expires"}


def public_view(doc: dict[str, Any], now: float) -> dict[str, Any]:
    """A subscription as callers see it: everything but the keys."""
    view = {k: v for k, v in doc.items() if k not in _HIDDEN}
    view["state"] = "disabled" if doc.get("disabled_at") else "active"
    if float(doc.get("previous_expires") or 0) > now:
        view["previous_secret_valid_until"] = iso(float(doc["previous_expires"]))
    return view


def desk_region(principal: Principal, asked: str | None) -> str | None:
    """The filter region a caller may have: a desk's is forced within its own."""
    if principal.role != "desk":
        return asked
    own = principal.region
    if asked is None or own.startswith(asked):
        return own
    if asked.startswith(own):
        return asked
    raise ApiError(
        403, "forbidden", f"`filter.region`: {asked!r} is outside your region {own!r}", "filter.region"
    )


class Subscriptions:
    def __init__(self, storage: AsyncStorage, allow_private: bool, box: SecretBox | None = None) -> None:
        self.store = SubscriptionStore(storage, box)
        self.deliveries = DeliveryStore(storage)
        self.allow_private = allow_private

    @staticmethod
    def may_manage(principal: Principal) -> None:
        if principal.role not in ("admin", "desk"):
            raise ApiError(403, "forbidden", f"a {principal.role} token may not manage subscriptions")

    async def _owned(self, principal: Principal, subscription_id: str) -> tuple[str, dict[str, Any]]:
        self.may_manage(principal)
        found = await self.store.get(subscription_id)
        if found is None or (principal.role != "admin" and found[0] != principal.token_id):
            raise ApiError(404, "not_found", f"no subscription {subscription_id!r} of yours")
        return found

    async def create(self, principal: Principal, body: bytes) -> SubscriptionCreated:
        self.may_manage(principal)
        try:
            ask = decode(body, SubscriptionRequest)
        except ValidationFailure as failure:
            status = 400 if failure.message.startswith("is not valid JSON") else 422
            raise ApiError(status, "invalid_subscription", str(failure), failure.field) from None
        region = desk_region(principal, ask.filter.region)
        try:
            await resolve_and_check(ask.url, self.allow_private)
        except UrlRefused as refused:
            raise ApiError(422, "url_refused", str(refused), "url") from None
        wanted = msgspec.structs.replace(ask.filter, region=region)
        doc = {
            "id": str(uuid.uuid4()),
            "url": ask.url,
            "filter": msgspec.to_builtins(wanted),
            "owner": {"token_id": principal.token_id, "role": principal.role},
            "created_at": iso(time.time()),
            "secret": new_secret(),
        }
        await self.store.save(principal.token_id, doc)
        log.info("subscription created subscription=%s by=%s", doc["id"], principal.token_id)
        return SubscriptionCreated(id=doc["id"], secret=doc["secret"])

    async def list(self, principal: Principal) -> SubscriptionList:
        self.may_manage(principal)
        docs = await self.store.live(None if principal.role == "admin" else principal.token_id)
        now = time.time()
        return SubscriptionList([public_view(doc, now) for doc in docs])

    async def delete(self, principal: Principal, subscription_id: str) -> None:
        owner, doc = await self._owned(principal, subscription_id)
        await self.store.save(owner, {**doc, "deleted_at": iso(time.time())}, deleted=True)
        log.info("subscription deleted subscription=%s by=%s", subscription_id, principal.token_id)

    async def rotate(self, principal: Principal, subscription_id: str) -> SecretAnswer:
        owner, doc = await self._owned(principal, subscription_id)
        now = time.time()
        rotated = {
            **doc,
            "secret": new_secret(),
            "previous_secret": doc["secret"],
            "previous_expires": now + ROTATION_OVERLAP_S,
            "rotated_at": iso(now),
        }
        await self.store.save(owner, rotated)
        log.info("subscription secret rotated subscription=%s by=%s", subscription_id, principal.token_id)
        return SecretAnswer(secret=rotated["secret"])

    async def delivery_log(
        self, principal: Principal, subscription_id: str, query: Mapping[str, str]
    ) -> DeliveryLog:
        await self._owned(principal, subscription_id)
        state = query.get("status") or None
        if state is not None and state not in DELIVERY_STATES:
            raise ApiError(
                422, "invalid_query", f"`status`: must be one of {', '.join(DELIVERY_STATES)}", "status"
            )
        found = await self.deliveries.log(subscription_id, state, query_limit(query))
        return DeliveryLog([delivery_view(d) for d in found])
