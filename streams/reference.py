"""Reference data as every worker holds it: the compacted reference topics, read from the start
into memory and followed from then on (DESIGN.md: "Faust GlobalTable or equivalent").

Faust's GlobalTable with its own changelog topic did not receive updates on the embedded broker,
so a plain consumer does the same job: no consumer group, every partition assigned, read from
the beginning. Each worker process thus holds every item, and a detector looks up an account's
role without I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import mode
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from models.detectors.context import banks_by_institution, listed_by
from models.features.counterparties import counterparty_hash_of
from models.features.kinds import kind_entry, kind_map
from schemas.reference import REFERENCE_KINDS
from streams.transport import FETCH_MAX_WAIT_MS

log = logging.getLogger("fundwatch.reference")

# How long a message waits for reference data still in flight before it is judged without it.
SYNC_TIMEOUT_S = 3.0


class ReferenceView:
    """Look-ups a worker makes per record: dictionaries only."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in REFERENCE_KINDS}
        # accounts of each institution's related parties, rebuilt lazily after a party changes
        self._related: dict[str, frozenset[str]] | None = None
        self._listed_by: dict[str, str] | None = None
        # products per institution and per institution type, rebuilt lazily after a change
        self._by_institution: dict[str, tuple[dict[str, Any], ...]] | None = None
        self._by_type: dict[str, tuple[dict[str, Any], ...]] | None = None
        # banks of each institution's accounts, rebuilt lazily after an account changes
        self._banks: dict[str, frozenset[str]] | None = None
        # counterparty hash -> kind of the registered accounts: built at the first question,
        # then changed account by account (a full rebuild per change would hash every account)
        self._kinds: dict[int, str] | None = None

    def apply(self, kind: str, key: bytes, value: bytes | None) -> None:
        table = self.items[kind]
        item_id = key.decode("utf-8")
        if value is None:  # a tombstone removes the item
            table.pop(item_id, None)
        else:
            table[item_id] = msgspec.json.decode(value)
        if kind == "related-parties":
            self._related = self._listed_by = None
        elif kind in ("products", "institutions"):
            self._by_institution = self._by_type = None
        elif kind == "accounts":
            self._banks = None
            self._apply_kind(item_id, table.get(item_id))

    def _apply_kind(self, account_id: str, account: dict[str, Any] | None) -> None:
        if self._kinds is None:
            return
        hashed = counterparty_hash_of(account_id)
        if hashed is not None:
            self._kinds.pop(hashed, None)
        entry = kind_entry(account) if account is not None else None
        if entry is not None:
            self._kinds[entry[0]] = entry[1]

    def counterparty_kinds(self) -> dict[int, str]:
        if self._kinds is None:
            self._kinds = kind_map(self.items["accounts"].values())
        return self._kinds

    def related_accounts(self, institution_id: str) -> frozenset[str]:
        if self._related is None:
            index: dict[str, set[str]] = {}
            for party in self.items["related-parties"].values():
                index.setdefault(party.get("institution_id", ""), set()).update(party.get("accounts") or ())
            self._related = {inst: frozenset(accounts) for inst, accounts in index.items()}
        return self._related.get(institution_id, frozenset())

    def related_institution(self, account_id: str) -> str | None:
        if self._listed_by is None:
            self.related_accounts("")  # builds the index of related parties' accounts
            self._listed_by = listed_by(self._related or {})
        return self._listed_by.get(account_id)

    def banks_of(self, institution_id: str) -> frozenset[str]:
        if self._banks is None:
            self._banks = banks_by_institution(self.items["accounts"].values())
        return self._banks.get(institution_id, frozenset())

    def product(self, product_id: str) -> dict[str, Any] | None:
        return self.items["products"].get(product_id)

    def _product_indexes(
        self,
    ) -> tuple[dict[str, tuple[dict[str, Any], ...]], dict[str, tuple[dict[str, Any], ...]]]:
        if self._by_institution is None or self._by_type is None:
            products, institutions = self.items["products"], self.items["institutions"]
            by_institution: dict[str, list[dict[str, Any]]] = {}
            by_type: dict[str, list[dict[str, Any]]] = {}
            for product_id in sorted(products):
                product = products[product_id]
                institution_id = str(product.get("institution_id") or "")
                by_institution.setdefault(institution_id, []).append(product)
                institution = institutions.get(institution_id)
                if institution is not None:
                    by_type.setdefault(str(institution.get("type") or ""), []).append(product)
            self._by_institution = {key: tuple(items) for key, items in by_institution.items()}
            self._by_type = {key: tuple(items) for key, items in by_type.items()}
        return self._by_institution, self._by_type

    # The index's own tuples, not copies: the same object until a product or institution
    # changes, so a detector may keep what it derived from one (excess_return's peer figures).
    def products_of(self, institution_id: str) -> tuple[dict[str, Any], ...]:
        return self._product_indexes()[0].get(institution_id, ())

    def products_of_type(self, institution_type: str) -> tuple[dict[str, Any], ...]:
        return self._product_indexes()[1].get(institution_type, ())

    def account(self, account_id: str) -> dict[str, Any] | None:
        return self.items["accounts"].get(account_id)

    def institution(self, institution_id: str) -> dict[str, Any] | None:
        return self.items["institutions"].get(institution_id)

    def enrich(self, account_id: str) -> tuple[str, str, str]:
        """(institution_id, account role, region) of an account, empty strings when unknown."""
        account = self.items["accounts"].get(account_id)
        if account is None:
            return "", "", ""
        institution_id = account.get("institution_id") or ""
        region = ""
        if institution_id:
            institution = self.items["institutions"].get(institution_id)
            if institution is not None:
                region = institution.get("region", "")
        return institution_id, account.get("role", ""), region


class ReferenceFollower(mode.Service):
    """Reads the reference topics into a ReferenceView and keeps following them."""

    def __init__(self, bootstrap: str, view: ReferenceView, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bootstrap = bootstrap
        self.view = view
        self.caught_up = asyncio.Event()
        self._kind_of_topic = {kind.topic: kind.path for kind in REFERENCE_KINDS.values()}
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions_followed: list[TopicPartition] = []
        self._applied: dict[TopicPartition, int] = {}  # next offset to apply, per partition
        self._progress = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self.synced_at = 0.0  # everything published before this epoch time is applied

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,  # a records message may be waiting on this item
        )
        await self._consumer.start()
        partitions = []
        for topic in self._kind_of_topic:
            for p in self._consumer.partitions_for_topic(topic) or await self._partitions(topic):
                partitions.append(TopicPartition(topic, p))
        self._consumer.assign(partitions)
        self._partitions_followed = partitions
        await self._consumer.seek_to_beginning(*partitions)
        self._targets = await self._consumer.end_offsets(partitions)
        self.add_future(self._follow())

    async def _partitions(self, topic: str) -> set[int]:
        assert self._consumer is not None
        for _ in range(50):
            found = self._consumer.partitions_for_topic(topic)
            if found:
                return found
            await self._consumer._client.force_metadata_update()  # the topic may have just been made
            await asyncio.sleep(0.1)
        raise RuntimeError(f"reference topic {topic} has no partitions")

    async def _follow(self) -> None:
        assert self._consumer is not None
        loaded = 0
        pending = {tp for tp, end in self._targets.items() if end > 0}
        if not pending:
            self.caught_up.set()
        while not self.should_stop:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            except KafkaError as error:
                log.warning("reference follow error=%s", error)
                await asyncio.sleep(1.0)
                continue
            for tp, messages in batches.items():
                kind = self._kind_of_topic[tp.topic]
                for message in messages:
                    if message.key is not None:
                        self.view.apply(kind, message.key, message.value)
                        loaded += 1
                if messages:
                    self._applied[tp] = messages[-1].offset + 1
                if tp in pending and messages and messages[-1].offset + 1 >= self._targets[tp]:
                    pending.discard(tp)
            if batches:
                self._progress.set()
            if pending and not self.caught_up.is_set():
                for tp in list(pending):
                    if await self._consumer.position(tp) >= self._targets[tp]:
                        pending.discard(tp)
            if not pending and not self.caught_up.is_set():
                self.caught_up.set()
                log.info("reference data loaded items=%d", loaded)

    async def seen_since(self, epoch_s: float, timeout_s: float = SYNC_TIMEOUT_S) -> bool:
        """Wait until every reference item published before ``epoch_s`` is applied.

        A custody bank may register an account and push its first records a moment later; the
        records message then races the account on another topic. The gateway publishes reference
        data before it answers the upsert, so what was published before a batch was received is
        on the reference topics by then: reading them up to their current ends settles the race.
        False when that took longer than ``timeout_s`` (the records are then judged without it).
        """
        if self.synced_at >= epoch_s:
            return True
        # One look at a time; a look that began after a waiting message's time serves it too.
        async with self._sync_lock:
            if self.synced_at >= epoch_s:
                return True
            consumer = self._consumer
            if consumer is None:
                return False
            started = time.time()
            try:
                ends = await consumer.end_offsets(self._partitions_followed)
            except KafkaError as error:
                log.warning("reference sync failed error=%s", error)
                return False
            deadline = time.monotonic() + timeout_s
            while True:
                self._progress.clear()  # before the look, so progress made after it wakes us
                if all(self._applied.get(tp, 0) >= end for tp, end in ends.items()):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("reference data still behind after %.1f s; judging without it", timeout_s)
                    return False
                try:
                    await asyncio.wait_for(self._progress.wait(), left)
                except TimeoutError:
                    pass
            self.synced_at = started
            return True

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
