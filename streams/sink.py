"""Where a worker's results go: ClickHouse inserts that wait out an outage, alerts to ClickHouse
and the alerts topic, and state snapshots coalesced in time. Shared by the records agent and the
institution agent of one worker process."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import msgspec

from models.alert_history import keeps, mark
from schemas.alerts import AlertData, encode_event, to_event
from schemas.ddl import DATABASE
from schemas.fields import epoch_seconds
from services.storage.async_storage import AsyncStorage
from services.storage.base import ColumnValues, StorageError, block_length
from streams import metrics
from streams.figure_hold import FigureHold

log = logging.getLogger("fundwatch.worker")

_json = msgspec.json.Encoder()

# Snapshots wait and go to ClickHouse, the newest per key: busy accounts change on every take,
# and their state is what a restart on a memory-only broker (or another worker taking an
# institution over) needs, not every step of it. A changed state waits about SNAPSHOT_INTERVAL_S;
# the waiting ones go oldest first in slices of at most SNAPSHOT_SLICE_BYTES every
# SNAPSHOT_SLICE_S, so a province's states (seen: 13 MB, 140 ms for chDB to take at once) never
# hold the one storage connection, and the gateway's and the worker's inserts behind it, for long.
SNAPSHOT_INTERVAL_S = 2.0
SNAPSHOT_SLICE_S = 0.25
SNAPSHOT_SLICE_BYTES = 1 << 20

ALERT_COLUMNS = (
    "alert_id", "typology", "severity", "status", "score", "institution_id", "region", "amount",
    "window_start", "window_end", "created_at", "updated_at", "doc", "version",
)  # fmt: skip
ALERT_EVENT_COLUMNS = (
    "alert_id", "event_time", "event_type", "typology", "severity", "status", "institution_id", "region",
    "actor", "doc", "version",
)  # fmt: skip

# What the history last kept of each alert (severity, status, amount band), for the alerts this
# worker changed lately: enough to leave out the next figure tick. An alert not found here (after
# a restart, or evicted) has its next update kept; the read side leaves out what changed nothing.
HISTORY_MARKS_KEPT = 50_000

SNAPSHOT_TABLES = {
    "account": ("account_state", "account_id"),
    "institution": ("institution_state", "institution_id"),
}


class Sink:
    def __init__(
        self, storage: AsyncStorage, alerts_topic: Any, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.storage = storage
        self.alerts_topic = alerts_topic
        # (key, event) pairs to the alerts topic, in record batches (streams/batches.py); without
        # it, one send each through ``alerts_topic``
        self.send_events: Callable[[list[tuple[bytes, bytes]]], Awaitable[None]] | None = None
        self.clock = clock
        # lays each alert's case and suppression over it before it is written (streams/alert_state.py)
        self.overlay: (
            Callable[[list[tuple[str, AlertData]]], Awaitable[list[tuple[str, AlertData]]]] | None
        ) = None
        # withholds the anomaly alerts over their region's daily budget (streams/anomaly_budget.py)
        self.budget: Callable[[list[tuple[str, AlertData]]], list[tuple[str, AlertData]]] | None = None
        # (scope, key) -> (newest state, when it first changed since its last snapshot), in the
        # order they first changed: the front is the oldest
        self._dirty: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self._last_slice = clock()
        # encoded size of each state as last snapshotted, and their sum per scope, for
        # fundwatch_state_held_bytes
        self._sizes: dict[tuple[str, str], int] = {}
        self._held: dict[str, int] = dict.fromkeys(SNAPSHOT_TABLES, 0)
        # (when, msg_id, stage, parts) of messages handled, in time order, waiting until every
        # state changed before them is in ClickHouse (outbox_done, schemas/ddl.py migration 4)
        self._marks: list[tuple[float, str, str, int]] = []
        # alert id -> the newest revision written (load_revisions, then every emit)
        self._revisions: dict[str, int] = {}
        # one snapshot write at a time: a mark is due only once the states picked before it
        # are written, not merely picked by a write still under way
        self._writing = asyncio.Lock()
        self._history_kept: OrderedDict[str, tuple[str, str, int]] = OrderedDict()
        # updates of figures alone held until the next commit (streams/figure_hold.py); the
        # worker's sink has one, a sink without writes every revision at once
        self.hold: FigureHold | None = None
        # one emission at a time, so the revisions of an alert reach the table and the topic in order
        self._emitting = asyncio.Lock()

    def load_snapshots(self, scope: str) -> dict[str, dict[str, Any]]:
        """The states of one scope ("account" or "institution") from ClickHouse (blocking:
        start-up only)."""
        table, key = SNAPSHOT_TABLES[scope]
        rows = self.storage.sync.query(f"SELECT {key}, state FROM {DATABASE}.{table} FINAL")
        return {name: msgspec.json.decode(state) for name, state in rows}

    async def insert(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        await self._until_written(
            lambda: self.storage.insert(table, columns, rows), lambda: (table, len(rows))
        )

    async def insert_columns(self, table: str, columns: Mapping[str, ColumnValues]) -> None:
        """One block given column by column, retried as ``insert`` is."""
        await self.insert_blocks([(table, columns)])

    async def insert_blocks(self, blocks: list[tuple[str, Mapping[str, ColumnValues]]]) -> None:
        """Blocks given column by column (a take's raw records and aggregates), in order, in one
        call to the storage thread; after a failure, retried from the first not written, as
        ``insert`` is. A block whose columns differ in length is refused at once (StorageError),
        before any is written: no retry would mend it."""
        for _, columns in blocks:
            block_length(columns)
        if not blocks:
            return  # a take of messages that did not decode: nothing for the storage thread
        left = list(blocks)

        async def write_left() -> None:
            counts, error = await self.storage.insert_blocks(left)
            del left[: len(counts)]
            if error is not None:
                raise error

        def failed() -> tuple[str, int]:
            table, columns = left[0]
            return table, block_length(columns)

        await self._until_written(write_left, failed)

    async def _until_written(
        self, write: Callable[[], Awaitable[Any]], failed: Callable[[], tuple[str, int]]
    ) -> None:
        """``write()`` until it does not raise StorageError; ``failed()`` names the table (and
        its rows) that the last attempt failed at, for the log."""
        # ClickHouse being away must hold the partition back, not drop records: retry until it
        # answers. Kafka keeps the uncommitted messages meanwhile.
        delay = 0.5
        while True:
            try:
                await write()
                return
            except StorageError as error:
                table, count = failed()
                log.error(
                    "clickhouse insert failed table=%s rows=%d retry_in_s=%.1f error=%s",
                    table,
                    count,
                    delay,
                    error,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def forget_sizes(self) -> None:
        """After a rebalance the states held change: counted again as they are snapshotted."""
        self._sizes.clear()
        for scope in SNAPSHOT_TABLES:
            self._held[scope] = 0
            metrics.STATE_HELD_BYTES.labels(scope).set(0)

    def remember(self, scope: str, key: str, state: dict[str, Any]) -> None:
        waiting = self._dirty.get((scope, key))
        self._dirty[(scope, key)] = (state, self.clock() if waiting is None else waiting[1])
        metrics.SNAPSHOTS_PENDING.set(len(self._dirty))

    def mark_done(self, msg_id: str, stage: str, parts: int = 0) -> None:
        """A stage of a records message is handled: its states are remembered (and, for the
        records stage, its ``parts`` institution messages sent). The mark goes to ClickHouse
        once every state changed until now is there too, so a marked message needs no replay
        after a restart from the snapshots."""
        self._marks.append((self.clock(), msg_id, stage, parts))

    async def maybe_flush(self) -> None:
        """Write a slice of the states that have waited SNAPSHOT_INTERVAL_S, oldest first, and
        the marks of what that made durable."""
        now = self.clock()
        if now - self._last_slice < SNAPSHOT_SLICE_S or self._writing.locked():
            return
        async with self._writing:
            self._last_slice = now
            await self._write_slice(now)
            await self._write_marks()

    async def _write_slice(self, now: float) -> None:
        due = now - SNAPSHOT_INTERVAL_S
        picked: list[tuple[tuple[str, str], bytes]] = []
        size = 0
        for entry, (state, since) in self._dirty.items():
            if since > due or size >= SNAPSHOT_SLICE_BYTES:
                break
            doc = _json.encode(state)
            picked.append((entry, doc))
            size += len(doc)
        for entry, _ in picked:
            del self._dirty[entry]
        await self._write(picked)

    async def flush_snapshots(self) -> None:
        """Write the newest state of every key changed since its last snapshot."""
        async with self._writing:
            dirty, self._dirty = self._dirty, {}
            self._last_slice = self.clock()
            await self._write([(entry, _json.encode(state)) for entry, (state, _) in dirty.items()])
            await self._write_marks()

    async def _write_marks(self) -> None:
        """The marks made before the oldest state still waiting (the states reach ClickHouse
        oldest first, so every state changed before that moment is written)."""
        if not self._marks:
            return
        oldest_waiting = next(iter(self._dirty.values()))[1] if self._dirty else float("inf")
        due = 0
        while due < len(self._marks) and self._marks[due][0] < oldest_waiting:
            due += 1
        if not due:
            return
        marks, self._marks = self._marks[:due], self._marks[due:]
        at = int(time.time())
        await self.insert(
            f"{DATABASE}.outbox_done",
            ("msg_id", "stage", "parts", "done_at"),
            [[msg_id, stage, parts, at] for _, msg_id, stage, parts in marks],
        )

    async def _write(self, docs: list[tuple[tuple[str, str], bytes]]) -> None:
        metrics.SNAPSHOTS_PENDING.set(len(self._dirty))
        if not docs:
            return
        metrics.STATE_BYTES.labels("snapshot").inc(sum(len(doc) for _, doc in docs))
        for entry, doc in docs:
            self._held[entry[0]] += len(doc) - self._sizes.get(entry, 0)
            self._sizes[entry] = len(doc)
        for scope, held in self._held.items():
            metrics.STATE_HELD_BYTES.labels(scope).set(held)
        version = time.time_ns()
        for scope, (table, column) in SNAPSHOT_TABLES.items():
            rows = [[key, doc.decode(), version] for (s, key), doc in docs if s == scope]
            if rows:
                await self.insert(f"{DATABASE}.{table}", (column, "state", "version"), rows)

    async def emit_alerts(self, changed: list[tuple[str, AlertData]], hold: bool = True) -> None:
        """Alerts that changed: their current state to ClickHouse (every revision written), their
        history where a desk would see a difference (models/alert_history.py: severity, status,
        amount band), and every revision written to the alerts topic (unmasked: the topic is
        internal; the dispatcher masks what leaves and decides which revisions a subscriber hears
        of). With a FigureHold, an update of figures alone waits for the next commit (``hold``)."""
        if not changed and (self.hold is None or not self.hold.held):
            return
        async with self._emitting:
            if self.hold is not None:
                changed = self.hold.to_write(changed, hold)
            if changed:
                await self._write_alerts(changed)

    async def release_held(self) -> None:
        """The held updates written now: before the states that made them are (CommitHook), or
        once the oldest has waited long enough (streams/figure_hold.py)."""
        if self.hold is None or not self.hold.held:
            return
        async with self._emitting:
            held = self.hold.release()
            if held:
                await self._write_alerts(held)

    async def _write_alerts(self, changed: list[tuple[str, AlertData]]) -> None:
        if self.overlay is not None:
            changed = await self.overlay(changed)
        if self.budget is not None:
            changed = self.budget(changed)
            if not changed:
                return
        changed = [(event_type, self._past_written(alert)) for event_type, alert in changed]
        first_version = time.time_ns()
        current: dict[str, list[Any]] = {}  # an alert changed twice in one take: its newest state
        history = []
        for step, (event_type, alert) in enumerate(changed):
            version = first_version + step  # the order of the changes, kept in the history
            doc = _json.encode(alert).decode()
            current[alert.alert_id] = [
                alert.alert_id, alert.typology, alert.severity, alert.status, alert.score, alert.institution_id,
                alert.region, Decimal(alert.amount), epoch_seconds(alert.window_start),
                epoch_seconds(alert.window_end), epoch_seconds(alert.created_at),
                epoch_seconds(alert.updated_at), doc, version,
            ]  # fmt: skip
            if self._keep_in_history(event_type, alert):
                history.append([
                    alert.alert_id, epoch_seconds(alert.updated_at), event_type, alert.typology, alert.severity,
                    alert.status, alert.institution_id, alert.region, f"detector:{alert.detector.name}", doc, version,
                ])  # fmt: skip
            metrics.ALERTS.labels(alert.typology, alert.severity, event_type).inc()
        await self.insert(f"{DATABASE}.alerts", ALERT_COLUMNS, list(current.values()))
        if history:
            await self.insert(f"{DATABASE}.alert_events", ALERT_EVENT_COLUMNS, history)
        events = [
            (alert.alert_id.encode("utf-8"), encode_event(to_event(alert, masked=False)))
            for _, alert in changed
        ]
        if self.send_events is not None:
            await self.send_events(events)
        else:
            for key, value in events:
                await self.alerts_topic.send(key=key, value=value)
        if self.hold is not None:
            self.hold.written(alert for _, alert in changed)

    def load_revisions(self) -> int:
        """The newest revision written of every alert (blocking: start-up only)."""
        rows = self.storage.sync.query(
            f"SELECT alert_id, max(visitParamExtractUInt(doc, 'revision')) FROM {DATABASE}.alerts GROUP BY alert_id"
        )
        self._revisions = {alert_id: int(revision) for alert_id, revision in rows}
        return len(self._revisions)

    def _past_written(self, alert: AlertData) -> AlertData:
        """The alert with a revision past every one written of it. After a kill a worker resumes
        from snapshots a few seconds old and counts an alert's revisions again from there: the
        same number with other figures would reach a subscriber under the webhook id it already
        has (one message per alert revision) and be taken for a repeat."""
        written = self._revisions.get(alert.alert_id, 0)
        if alert.revision <= written:
            alert = msgspec.structs.replace(alert, revision=written + 1)
        self._revisions[alert.alert_id] = alert.revision
        return alert

    def _keep_in_history(self, event_type: str, alert: AlertData) -> bool:
        now = mark(alert.severity, alert.status, alert.amount)
        kept = self._history_kept.get(alert.alert_id)
        if kept is not None:
            self._history_kept.move_to_end(alert.alert_id)  # busy alerts stay
        if not keeps(event_type, kept, now):
            return False
        self._history_kept[alert.alert_id] = now
        if len(self._history_kept) > HISTORY_MARKS_KEPT:
            self._history_kept.popitem(last=False)
        return True
