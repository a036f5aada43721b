"""Reference-data upserts (CONTRACT.md §2 `PUT /v1/reference/...`).

Accepted items are written to ClickHouse (the durable copy) and to their compacted topic (what
workers hold). At start the gateway publishes the durable copy again, so workers have every item
even when the broker kept nothing; on a broker that kept its topics this rewrites identical
values, which compaction folds away.

Products and institutions that change are also sent for *review* to the institution topic: the
product-level detectors judge a declared yield or a split term from reference data alone, so a
product is flagged when it is registered, not at its first payment. A review carries the products
just stored, since the workers' reference view may not have them yet when it arrives.

Accounts are judged against what is stored (CONTRACT.md §2): a bank registers and updates only
its own accounts, so a request of a bank that touches an account registered to another bank is
refused whole (403 naming `account_id`, nothing applied); moving an account between banks is an
admin's act. An account's institution_id, when given, must name a stored institution.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from schemas.ddl import DATABASE
from schemas.messages import (
    INSTITUTION_TOPIC,
    InstitutionMessage,
    InstitutionPart,
    encode_institution_message,
    partition_for,
)
from schemas.reference import Institution, Product, ReferenceKind
from schemas.validation import ValidationFailure, convert, decode
from services.auth import Principal
from services.gateway import metrics
from services.gateway.errors import ApiError, unavailable
from services.gateway.registry import AccountOwners, KnownInstitutions
from services.kafka_io import Publisher, PublishError
from services.storage.async_storage import AsyncStorage
from services.storage.base import StorageError

log = logging.getLogger("fundwatch.reference")

MAX_ITEMS = 10_000
_encoder = msgspec.json.Encoder()

# (index in the request, the item's id as sent, the decoded item)
_Items = list[tuple[int, str | None, Any]]

# Columns each reference table carries besides the document, taken from the item.
_EXTRA_COLUMNS: dict[str, tuple[str, ...]] = {
    "institutions": ("institution_id", "region", "type"),
    "accounts": ("account_id", "bank_code", "institution_id", "role"),
    "related-parties": ("party_id", "institution_id"),
    "products": ("product_id", "institution_id"),
}


def _column_value(item: Any, column: str) -> str:
    value = getattr(item, column)
    if value is None:
        return ""
    return value.value if hasattr(value, "value") else str(value)


class ReferenceService:
    def __init__(
        self,
        storage: AsyncStorage,
        publisher: Publisher,
        partitions: int,
        owners: AccountOwners | None = None,
    ) -> None:
        self.storage = storage
        self.publisher = publisher
        self.partitions = partitions
        # shared with batch intake: an account upserted here is judged so by the next batch
        self.owners = owners if owners is not None else AccountOwners.of(storage)
        self.institutions = KnownInstitutions(storage)
        # an account's owner is checked and written in one go, so two requests of this gateway
        # cannot both find an account free and both take it
        self._accounts = asyncio.Lock()

    async def upsert(self, kind: ReferenceKind, body: bytes, principal: Principal) -> dict[str, Any]:
        if principal.role != "admin" and not (principal.role == "bank" and kind.path == "accounts"):
            raise ApiError(403, "forbidden", f"{principal.role} tokens may not upsert {kind.path}")
        try:
            items = decode(body, list[msgspec.Raw])
        except ValidationFailure as failure:
            status = 400 if failure.message.startswith("is not valid JSON") else 422
            raise ApiError(
                status, "invalid_body", f"the body must be a JSON array of {kind.path}: {failure}"
            ) from None
        if len(items) > MAX_ITEMS:
            raise ApiError(413, "too_many_items", f"at most {MAX_ITEMS} items per call, got {len(items)}")

        decoded: _Items = []
        rejected: list[dict[str, Any]] = []
        for index, raw in enumerate(items):
            loose = msgspec.json.decode(raw)
            item_id = loose.get(kind.key) if isinstance(loose, dict) else None
            item_id = item_id if isinstance(item_id, str) else None
            try:
                item = convert(loose, kind.type)
            except ValidationFailure as failure:
                rejected.append({"index": index, "id": item_id, "error": str(failure)})
                continue
            decoded.append((index, item_id, item))

        if kind.path == "accounts":
            async with self._accounts:
                accepted = await self._judge_accounts(principal, decoded, rejected)
                await self._store_or_503(kind, accepted)
                for _, _, account in accepted:
                    self.owners.learn(account.account_id, account.bank_code)
        else:
            accepted = decoded
            await self._store_or_503(kind, accepted)
            if kind.path == "institutions":
                self.institutions.learn(item.institution_id for _, _, item in accepted)
        rejected.sort(key=lambda rejection: rejection["index"])
        metrics.REFERENCE_ITEMS.labels(kind.path, "upserted").inc(len(accepted))
        metrics.REFERENCE_ITEMS.labels(kind.path, "rejected").inc(len(rejected))
        log.info(
            "reference upserted kind=%s upserted=%d rejected=%d", kind.path, len(accepted), len(rejected)
        )
        return {"upserted": len(accepted), "rejected": rejected}

    async def _judge_accounts(
        self, principal: Principal, decoded: _Items, rejected: list[dict[str, Any]]
    ) -> _Items:
        """The accounts that may be stored; the others join ``rejected``. Raises 403 when a bank
        touches an account registered to another bank: nothing of that request is applied."""
        try:
            # what is stored, not what this gateway remembers: another gateway may have changed it
            await self.owners.ask(sorted({account.account_id for _, _, account in decoded}))
            unknown = await self.institutions.unknown(
                account.institution_id for _, _, account in decoded if account.institution_id is not None
            )
        except StorageError as error:
            log.error("reference data not readable error=%s", error)
            raise unavailable("reference data cannot be read now; send it again") from None
        if principal.role == "bank":
            self._refuse_foreign(principal.bank_code or "", decoded)
        accepted: _Items = []
        for index, item_id, account in decoded:
            if principal.role == "bank" and account.bank_code != principal.bank_code:
                error = f"`bank_code`: a token of bank {principal.bank_code!r} may upsert only that bank's accounts"
            elif account.institution_id is not None and account.institution_id in unknown:
                error = "`institution_id`: names no known institution; upsert the institution first"
            else:
                accepted.append((index, item_id, account))
                continue
            rejected.append({"index": index, "id": item_id, "error": error})
        return accepted

    def _refuse_foreign(self, bank_code: str, decoded: _Items) -> None:
        banks = self.owners.banks
        foreign = [
            (index, account.account_id)
            for index, _, account in decoded
            if banks.get(account.account_id, bank_code) != bank_code
        ]
        if not foreign:
            return
        named = ", ".join(f"{account_id!r} (index {index})" for index, account_id in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise ApiError(
            403,
            "forbidden",
            f"`account_id`: {named}{more} {'is' if len(foreign) == 1 else 'are'} registered to another "
            "bank; a bank registers and updates only its own accounts (moving an account between banks "
            "is an admin's act); nothing of this request was applied",
            "account_id",
        )

    async def _store_or_503(self, kind: ReferenceKind, decoded: _Items) -> None:
        items = [item for _, _, item in decoded]
        try:
            await self._store(kind, items)
        except (StorageError, PublishError) as error:
            log.error("reference upsert failed kind=%s items=%d error=%s", kind.path, len(items), error)
            raise unavailable("reference data could not be stored now; send it again") from None

    async def _store(self, kind: ReferenceKind, items: list[Any]) -> None:
        if not items:
            return
        version = time.time_ns()
        columns = _EXTRA_COLUMNS[kind.path]
        docs = [_encoder.encode(item) for item in items]
        await self.storage.insert(
            f"{DATABASE}.{kind.table}",
            (*columns, "doc", "version"),
            [
                [*(_column_value(item, c) for c in columns), doc.decode("utf-8"), version]
                for item, doc in zip(items, docs, strict=True)
            ],
        )
        await self.publisher.send_all(
            (kind.topic, None, getattr(item, kind.key).encode("utf-8"), doc)
            for item, doc in zip(items, docs, strict=True)
        )
        await self.publisher.send_all(review_messages(items, self.partitions))

    async def republish(self, kinds: list[ReferenceKind]) -> int:
        """Publish every stored item of each kind again (start-up)."""
        total = 0
        for kind in kinds:
            rows = await self.storage.query(f"SELECT {kind.key}, doc FROM {DATABASE}.{kind.table} FINAL")
            for start in range(0, len(rows), 5000):
                chunk = rows[start : start + 5000]
                await self.publisher.send_all(
                    (kind.topic, None, key.encode("utf-8"), doc.encode("utf-8")) for key, doc in chunk
                )
            total += len(rows)
        return total


def review_messages(items: list[Any], partitions: int) -> list[tuple[str, int, bytes, bytes]]:
    """Institution-topic messages asking the institution agent to look at these products (or at
    the products of these institutions) again: one per partition. Each review is new (its id holds
    the time); reviewing unchanged products again changes no alert."""
    parts: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if isinstance(item, Product):
            parts.setdefault(item.institution_id, []).append(msgspec.to_builtins(item))
        elif isinstance(item, Institution):
            parts.setdefault(item.institution_id, [])
    by_partition: dict[int, list[InstitutionPart]] = {}
    for institution_id in sorted(parts):
        part = InstitutionPart(institution_id=institution_id, records=[], products=parts[institution_id])
        by_partition.setdefault(partition_for(institution_id, partitions), []).append(part)
    messages = []
    now = time.time_ns()
    for partition, group in sorted(by_partition.items()):
        msg_id = f"review/{now}/{partition}"
        value = encode_institution_message(
            InstitutionMessage(msg_id=msg_id, received_at=now // 1_000_000_000, parts=group)
        )
        messages.append((INSTITUTION_TOPIC, partition, msg_id.encode("utf-8"), value))
    return messages
