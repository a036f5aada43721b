"""Subscriptions and webhook messages in ClickHouse (CONTRACT.md §6): the durable record the
dispatcher resumes from after a restart, and what the delivery log reads.

Both tables are ReplacingMergeTree: each change inserts the whole row again with a larger
version. A message's first row has version 1, so making it a second time (the dispatcher re-read
the alerts topic after a crash) never overwrites what its attempts have recorded since.

A subscription's signing secrets (the current one and, for 24 h after a rotation, the previous
one) are encrypted in its document (services/secret_box.py); the store seals them on every save
and opens them on every read, so callers only ever see them in clear, and a row written before
encryption is sealed the next time it is saved.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.ddl import DATABASE
from services import secret_box
from services.secret_box import SecretBox
from services.storage.async_storage import AsyncStorage
from services.webhooks.notify import Heard

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
DELIVERY_STATES = (PENDING, DELIVERED, DEAD)
FIRST_VERSION = 1
_CHUNK = 1000  # alert ids per query

_SUBSCRIPTION_COLUMNS = ("subscription_id", "owner_token_id", "url", "doc", "deleted", "version")
_SEALED_FIELDS = ("secret", "previous_secret")
_DELIVERY_COLUMNS = (
    "subscription_id", "webhook_id", "alert_id", "state", "attempts", "next_attempt_at", "doc", "version",
)  # fmt: skip


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Attempt(msgspec.Struct, omit_defaults=True):
    at: float
    duration_ms: int
    status: int | None = None
    error: str | None = None


class Delivery(msgspec.Struct, omit_defaults=True):
    """One webhook message: an alert revision for one subscription, and what became of it."""

    webhook_id: str
    subscription_id: str
    alert_id: str
    revision: int
    typology: str
    severity: str
    created_at: float
    next_attempt_at: float
    body: str  # the masked CloudEvent, fixed when made so every retry sends the same bytes
    state: str = PENDING
    attempts: list[Attempt] = []
    delivered_at: float | None = None
    dead_reason: str | None = None
    # The alert's status in this revision, and why the notification policy made the message
    # (services/webhooks/notify.py); empty in messages made before the policy. Named so that no
    # other key of the document (an attempt's "status") shares the name: heard() reads it out of
    # the stored JSON.
    alert_status: str = ""
    reason: str = ""


_delivery_decoder = msgspec.json.Decoder(Delivery)
_encoder = msgspec.json.Encoder()


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """A message as the delivery log shows it: times in RFC 3339, no body."""
    view: dict[str, Any] = {
        "webhook_id": delivery.webhook_id,
        "alert_id": delivery.alert_id,
        "revision": delivery.revision,
        "typology": delivery.typology,
        "severity": delivery.severity,
        "state": delivery.state,
        "created_at": iso(delivery.created_at),
        "attempts": [
            {
                "at": iso(a.at),
                "duration_ms": a.duration_ms,
                **({"status": a.status} if a.status is not None else {}),
                **({"error": a.error} if a.error else {}),
            }
            for a in delivery.attempts
        ],
    }
    if delivery.state == PENDING:
        view["next_attempt_at"] = iso(delivery.next_attempt_at)
    if delivery.delivered_at is not None:
        view["delivered_at"] = iso(delivery.delivered_at)
    if delivery.dead_reason:
        view["dead_reason"] = delivery.dead_reason
    if delivery.reason:
        view["reason"] = delivery.reason
    return view


class Versions:
    """Strictly growing row versions within a process, above anything from an earlier start."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last


class SubscriptionStore:
    def __init__(self, storage: AsyncStorage, box: SecretBox | None = None) -> None:
        self.storage = storage
        self.box = box or secret_box.installed()
        self.versions = Versions()

    def _opened(self, stored: str) -> dict[str, Any]:
        doc = msgspec.json.decode(stored)
        for name in _SEALED_FIELDS:
            if doc.get(name):
                doc[name] = self.box.open(doc[name], doc["id"])
        return doc

    def _sealed(self, doc: dict[str, Any]) -> dict[str, Any]:
        sealed = dict(doc)
        for name in _SEALED_FIELDS:
            if doc.get(name):
                # opened first: a value handed back still sealed is sealed once, not twice
                sealed[name] = self.box.seal(self.box.open(doc[name], doc["id"]), doc["id"])
        return sealed

    async def get(self, subscription_id: str) -> tuple[str, dict[str, Any]] | None:
        """(owner token id, document) of a live subscription, or None."""
        rows = await self.storage.query(
            f"""SELECT owner_token_id, doc, deleted FROM {DATABASE}.subscriptions FINAL
                WHERE subscription_id = %(id)s""",
            {"id": subscription_id},
        )
        if not rows or rows[0][2]:
            return None
        return rows[0][0], self._opened(rows[0][1])

    async def live(self, owner_token_id: str | None = None) -> list[dict[str, Any]]:
        """Every subscription not deleted (of one owner if given), oldest first."""
        where, params = "deleted = 0", {}
        if owner_token_id is not None:
            where += " AND owner_token_id = %(owner)s"
            params["owner"] = owner_token_id
        rows = await self.storage.query(
            f"SELECT doc FROM {DATABASE}.subscriptions FINAL WHERE {where}", params
        )
        docs = [self._opened(doc) for (doc,) in rows]
        docs.sort(key=lambda d: (d["created_at"], d["id"]))
        return docs

    async def save(self, owner_token_id: str, doc: dict[str, Any], deleted: bool = False) -> None:
        stored = _encoder.encode(self._sealed(doc)).decode()
        row = [doc["id"], owner_token_id, doc["url"], stored, int(deleted)]
        await self.storage.insert(
            f"{DATABASE}.subscriptions", _SUBSCRIPTION_COLUMNS, [[*row, self.versions.next()]]
        )


class DeliveryStore:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage
        self.versions = Versions()

    async def save(self, deliveries: list[Delivery], first: bool = False) -> None:
        """Write messages as they are now; ``first`` for newly made ones (version 1)."""
        if not deliveries:
            return
        rows = []
        for d in deliveries:
            version = FIRST_VERSION if first else self.versions.next()
            next_at = datetime.fromtimestamp(int(d.next_attempt_at), UTC)
            rows.append([
                d.subscription_id, d.webhook_id, d.alert_id, d.state, len(d.attempts), next_at,
                _encoder.encode(d).decode(), version,
            ])  # fmt: skip
        await self.storage.insert(f"{DATABASE}.deliveries", _DELIVERY_COLUMNS, rows)

    async def known(self, webhook_ids: list[str]) -> set[str]:
        """Which of these messages exist already."""
        if not webhook_ids:
            return set()
        rows = await self.storage.query(
            f"SELECT DISTINCT webhook_id FROM {DATABASE}.deliveries WHERE webhook_id IN %(ids)s",
            {"ids": tuple(webhook_ids)},
        )
        return {webhook_id for (webhook_id,) in rows}

    async def heard(self, alert_ids: list[str]) -> dict[str, dict[str, Heard]]:
        """Per alert and subscription, the newest message made (its revision, severity, alert
        status, when): the notification policy's memory, as a restarted dispatcher finds it.

        Read out of the stored JSON with ClickHouse's simple JSON functions (both 18.16 and chDB
        have them): the first key of that name, and the body's keys are escaped inside a string,
        so they never match. Every version of a message carries the same values."""
        found: dict[str, dict[str, Heard]] = {}
        for start in range(0, len(alert_ids), _CHUNK):
            rows = await self.storage.query(
                f"""SELECT alert_id, subscription_id, max(visitParamExtractUInt(doc, 'revision')) AS revision,
                        argMax(visitParamExtractString(doc, 'severity'), visitParamExtractUInt(doc, 'revision')),
                        argMax(visitParamExtractString(doc, 'alert_status'), visitParamExtractUInt(doc, 'revision')),
                        max(visitParamExtractFloat(doc, 'created_at'))
                    FROM {DATABASE}.deliveries WHERE alert_id IN %(ids)s
                    GROUP BY alert_id, subscription_id""",
                {"ids": tuple(alert_ids[start : start + _CHUNK])},
            )
            for alert_id, sid, revision, severity, status, made in rows:
                # before the policy no message named the status, and alerts had no other than open
                found.setdefault(alert_id, {})[sid] = Heard(
                    int(revision), severity, status or "open", float(made)
                )
        return found

    async def last_written(self) -> float | None:
        """When this table was last written to after a message was made (an attempt, a state),
        in epoch seconds; None when no message was ever made."""
        rows = await self.storage.query(f"SELECT count(), max(version) FROM {DATABASE}.deliveries")
        count, version = rows[0] if rows else (0, 0)
        if not count:
            return None
        # the first row of a message has version 1; every later one the time it was written
        return int(version) / 1e9 if int(version) > FIRST_VERSION else 0.0

    async def pending(self) -> list[Delivery]:
        """Every message still to deliver, as last recorded: what a restarted dispatcher resumes."""
        rows = await self.storage.query(
            f"SELECT doc FROM {DATABASE}.deliveries FINAL WHERE state = %(state)s", {"state": PENDING}
        )
        return [_delivery_decoder.decode(doc) for (doc,) in rows]

    async def log(self, subscription_id: str, state: str | None, limit: int) -> list[Delivery]:
        where, params = "subscription_id = %(id)s", {"id": subscription_id, "limit": limit}
        if state:
            where += " AND state = %(state)s"
            params["state"] = state
        rows = await self.storage.query(
            f"""SELECT doc FROM {DATABASE}.deliveries FINAL WHERE {where}
                ORDER BY version DESC, webhook_id LIMIT %(limit)s""",
            params,
        )
        return [_delivery_decoder.decode(doc) for (doc,) in rows]
