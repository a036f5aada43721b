"""The Faust app: topics, tables and the records agent. Wiring only; the logic is in models/.

The agent takes one message (a sub-batch of one partition's records) at a time, writes its
raw records and aggregate partials to ClickHouse, then folds each touched account's records into
that account's state with one table write per account, not per record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import faust
import msgspec

from models.account_detection import step_account
from models.account_state import already_applied, apply
from models.detectors import DetectContext
from models.thresholds import load_thresholds
from schemas.alerts import AlertData, encode_event, to_event
from schemas.ddl import DATABASE
from schemas.messages import ALERTS_TOPIC, RECORDS_TOPIC, TxnRecord, decode_batch
from services.storage.async_storage import AsyncStorage
from services.storage.base import StorageError
from streams import metrics
from streams.reference import ReferenceFollower, ReferenceView
from streams.rows import Rows, message_rows

log = logging.getLogger("fundwatch.worker")

_json = msgspec.json.Encoder()


@dataclass
class WorkerApp:
    app: faust.App
    records_topic: Any
    account_state: Any
    references: ReferenceView
    follower: ReferenceFollower
    processor: RecordsProcessor

    def services(self) -> list[Any]:
        """Services that must run beside the Faust app in the same worker."""
        return [self.follower]

    async def ready(self) -> bool:
        app = self.app
        return bool(
            app.started
            and not app.rebalancing
            and app.tables.recovery.completed.is_set()
            and self.follower.caught_up.is_set()
        )


def faust_app(app_id: str, bootstrap: str, partitions: int) -> faust.App:
    return faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=32 * 1024 * 1024,
        consumer_max_fetch_size=32 * 1024 * 1024,
        table_standby_replicas=0,
        broker_commit_interval=1.0,
        # A joining worker waits up to the rebalance timeout for the group to settle (seen: half
        # of it on Tansu); 10 s keeps start-up and fail-over short without false expiries.
        broker_session_timeout=10.0,
        broker_rebalance_timeout=10.0,
        broker_heartbeat_interval=2.0,
        autodiscover=False,
    )


class RecordsProcessor:
    def __init__(
        self, storage: AsyncStorage, references: ReferenceView, account_state: Any, alerts_topic: Any
    ) -> None:
        self.storage = storage
        self.references = references
        self.account_state = account_state
        self.alerts_topic = alerts_topic
        self.context = DetectContext(references=references, thresholds=load_thresholds())
        # State snapshots from ClickHouse, used for an account the table does not hold: after the
        # memory-only embedded broker restarted, its changelogs are gone but ClickHouse is not.
        self.seed: dict[str, dict[str, Any]] = {}
        self.messages_handled = 0
        # Snapshots wait here and go to ClickHouse together, the newest per account, at most
        # every SNAPSHOT_INTERVAL_S: busy accounts change on every message, and their state is
        # what a restart on a memory-only broker needs, not every step of it.
        self._dirty: dict[str, dict[str, Any]] = {}
        self._last_snapshot = time.monotonic()

    def load_seed(self) -> int:
        """Read the snapshots before the agent starts (blocking: start-up only)."""
        rows = self.storage.sync.query(f"SELECT account_id, state FROM {DATABASE}.account_state FINAL")
        self.seed = {account: msgspec.json.decode(state) for account, state in rows}
        return len(self.seed)

    async def _insert(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        # ClickHouse being away must hold the partition back, not drop records: retry until it
        # answers. Kafka keeps the uncommitted messages meanwhile.
        delay = 0.5
        while True:
            try:
                await self.storage.insert(table, columns, rows)
                metrics.CLICKHOUSE_ROWS.labels(table.split(".")[-1]).inc(len(rows))
                return
            except StorageError as error:
                metrics.CLICKHOUSE_ERRORS.labels(table.split(".")[-1]).inc()
                log.error(
                    "clickhouse insert failed table=%s rows=%d retry_in_s=%.1f error=%s",
                    table,
                    len(rows),
                    delay,
                    error,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def flush_snapshots(self) -> None:
        """Write the newest state of every account changed since the last flush."""
        dirty, self._dirty = self._dirty, {}
        self._last_snapshot = time.monotonic()
        if dirty:
            version = time.time_ns()
            rows = [[account, _json.encode(state).decode(), version] for account, state in dirty.items()]
            await self._insert(f"{DATABASE}.account_state", ("account_id", "state", "version"), rows)

    async def _emit_alerts(self, changed: list[tuple[str, AlertData]], version: int) -> None:
        """Alerts that changed: their current state and history to ClickHouse, the event to the
        alerts topic (unmasked: the topic is internal; the dispatcher masks what leaves)."""
        current, history = [], []
        for event_type, alert in changed:
            doc = _json.encode(alert).decode()
            current.append([
                alert.alert_id, alert.typology, alert.severity, alert.status, alert.score, alert.institution_id,
                alert.region, Decimal(alert.amount), _at(alert.window_start), _at(alert.window_end),
                _at(alert.created_at), _at(alert.updated_at), doc, version,
            ])  # fmt: skip
            history.append([
                alert.alert_id, _at(alert.updated_at), event_type, alert.typology, alert.severity, alert.status,
                alert.institution_id, alert.region, f"detector:{alert.detector.name}", doc, version,
            ])  # fmt: skip
            metrics.ALERTS.labels(alert.typology, alert.severity, event_type).inc()
        await self._insert(f"{DATABASE}.alerts", ALERT_COLUMNS, current)
        await self._insert(f"{DATABASE}.alert_events", ALERT_EVENT_COLUMNS, history)
        for _, alert in changed:
            await self.alerts_topic.send(
                key=alert.alert_id.encode("utf-8"), value=encode_event(to_event(alert, masked=False))
            )

    async def handle(self, value: bytes) -> None:
        started = time.perf_counter()
        message = decode_batch(value)
        rows = Rows()
        message_rows(message, self.references.enrich, rows)
        for table, (columns, table_rows) in rows.tables.items():
            await self._insert(table, columns, table_rows)

        by_account: dict[str, list[Any]] = defaultdict(list)
        for record in message.records:
            by_account[record.account_id].append(record)
        version = time.time_ns()
        now = int(time.time())
        replayed = False
        changed_alerts: list[tuple[str, AlertData]] = []
        for account_id, records in by_account.items():
            key = account_id.encode("utf-8")
            state = self.account_state.get(key)
            if state is None:
                state = self.seed.pop(account_id, None)
            flows = flows_of(state)
            if already_applied(flows, message.msg_id):
                replayed = True
                continue
            detection, changed = step_account(self.context, state, account_id, message.msg_id, records, now)
            new_state = {"flows": apply(flows, message.msg_id, records), **detection}
            self.account_state[key] = new_state
            self._dirty[account_id] = new_state
            changed_alerts.extend(changed)
        if changed_alerts:
            await self._emit_alerts(changed_alerts, version)
        if time.monotonic() - self._last_snapshot >= SNAPSHOT_INTERVAL_S:
            await self.flush_snapshots()
        if replayed:
            metrics.MESSAGES_REPLAYED.inc()

        n_txn = sum(1 for r in message.records if isinstance(r, TxnRecord))
        metrics.RECORDS_PROCESSED.labels("transaction").inc(n_txn)
        metrics.RECORDS_PROCESSED.labels("balance").inc(len(message.records) - n_txn)
        metrics.MESSAGES_PROCESSED.inc()
        self.messages_handled += 1
        metrics.PROCESSING_SECONDS.observe(time.perf_counter() - started)
        metrics.RECORD_LAG_SECONDS.observe(max(0.0, time.time() - message.received_at))


SNAPSHOT_INTERVAL_S = 2.0

ALERT_COLUMNS = (
    "alert_id", "typology", "severity", "status", "score", "institution_id", "region", "amount",
    "window_start", "window_end", "created_at", "updated_at", "doc", "version",
)  # fmt: skip
ALERT_EVENT_COLUMNS = (
    "alert_id", "event_time", "event_type", "typology", "severity", "status", "institution_id", "region",
    "actor", "doc", "version",
)  # fmt: skip


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def flows_of(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The flow totals within an account's state."""
    return None if state is None else state.get("flows")


def create_worker_app(app_id: str, bootstrap: str, partitions: int, storage: AsyncStorage) -> WorkerApp:
    app = faust_app(app_id, bootstrap, partitions)
    records_topic = app.topic(
        RECORDS_TOPIC, partitions=partitions, key_serializer="raw", value_serializer="raw", internal=False
    )
    account_state = app.Table(
        "account-state",
        partitions=partitions,
        key_type=bytes,
        default=None,
        help="running state per account, one write per account per message",
    )
    references = ReferenceView()
    follower = ReferenceFollower(bootstrap, references)
    alerts_topic = app.topic(
        ALERTS_TOPIC, partitions=partitions, key_serializer="raw", value_serializer="raw", internal=False
    )
    processor = RecordsProcessor(storage, references, account_state, alerts_topic)

    @app.agent(records_topic, name="records")
    async def records_agent(stream: Any) -> None:
        async for event in stream.events():
            await processor.handle(event.value)

    log.info("account state seeds loaded accounts=%d", processor.load_seed())
    return WorkerApp(app, records_topic, account_state, references, follower, processor)
