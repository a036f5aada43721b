"""The records agent's work on the messages it takes together: raw records and aggregates to
ClickHouse, each touched account's state through the account-level detectors, and the records the
institution-level detectors need re-keyed onto the institution topic."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from models.account_detection import step_account_messages
from models.account_state import already_applied, apply
from models.anomaly_sweep import SweepIndex, anomaly_state_of, sweep_due
from models.detectors import DetectContext
from schemas.alerts import AlertData
from schemas.messages import TxnRecord, decode_batch, partition_for
from streams import metrics
from streams.batches import Document, send_each, state_document
from streams.forwards import take_forwards
from streams.reference import ReferenceView
from streams.rows import Columns, message_columns
from streams.sink import Sink
from streams.take_gate import TakeGate

log = logging.getLogger("fundwatch.worker")


def readable(values: list[bytes], decode: Callable[[bytes], Any], topic: str) -> list[Any]:
    """The messages of a take that decode. One that does not (written by something that is not a
    gateway of this version) must not stop the partition behind it: it is logged by its size and
    counted, never its content, and left out."""
    messages = []
    for value in values:
        try:
            messages.append(decode(value))
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            metrics.MESSAGES_UNREADABLE.labels(topic).inc()
            log.error("unreadable message left out topic=%s bytes=%d error=%s", topic, len(value), error)
    return messages


class RecordsProcessor:
    def __init__(
        self,
        sink: Sink,
        context: DetectContext,
        references: ReferenceView,
        account_state: Any,
        institution_topic: Any,
        partitions: int,
        reference_sync: Callable[[float], Awaitable[bool]] | None = None,
        max_future_s: int = 3600,
    ) -> None:
        self.sink = sink
        self.context = context
        self.references = references
        self.account_state = account_state
        self.institution_topic = institution_topic
        self.partitions = partitions
        # waits for reference data published before a given time (ReferenceFollower.seen_since)
        self.reference_sync = reference_sync
        # how far ahead of the clock a record's time may lie (FUNDWATCH_MAX_FUTURE_S): the
        # detectors' watermarks never pass the clock by more
        self.max_future_s = max_future_s
        # State snapshots from ClickHouse, used for an account the table does not hold: after the
        # memory-only embedded broker restarted, its changelogs are gone but ClickHouse is not.
        self.seed: dict[str, dict[str, Any]] = {}
        self.messages_handled = 0
        self.institution_messages_sent = 0
        # states changed since the last write_states(), the newest per account
        self._unwritten: dict[str, dict[str, Any]] = {}
        # per records partition, the anomaly sweep (models/anomaly_sweep.py); rebuilt from the
        # table the first time a partition is taken from after a start or a rebalance
        self.sweeps: dict[int, SweepIndex] = {}
        # a take's states go to the changelog only once its alerts are out (streams/take_gate.py)
        self.gate = TakeGate(self.write_states)
        # (partition, key, document) triples to the table's changelog: the worker's writes them
        # in batches (streams/batches.py), one message each through the table without it
        self.write_changelog: Callable[[list[Document]], None] = functools.partial(send_each, account_state)
        # How a commit waits for a take's rows still on their way to ClickHouse (the worker's:
        # the producer's unacknowledged sends, streams/transport.py). Without it a take waits for
        # its own rows before it is done.
        self.track_pending: Callable[[asyncio.Future[None]], None] | None = None
        self._rows: asyncio.Future[None] | None = None  # the last take's rows, when still on their way

    def load_seed(self) -> int:
        self.seed = self.sink.load_snapshots("account")
        return len(self.seed)

    async def flush_snapshots(self) -> None:
        """Every changed state out: account states to the changelog (the consumer's next commit
        would write them too), every state to ClickHouse."""
        self.write_states()
        await self.sink.flush_snapshots()

    async def handle_many(self, values: list[bytes]) -> None:
        """The messages the agent took together (DESIGN.md, Performance: the cost is per message
        and per write): one ClickHouse insert per table and one table write per touched account
        for all of them. Each account's messages go through the detectors in order, each judged
        on its own as if it came alone, and each is marked in the account's flows, so a replay
        of any one is recognised as before."""
        started = time.perf_counter()
        messages = readable(values, decode_batch, "records")
        grouped = [(message, _by_account(message)) for message in messages]
        if self.reference_sync is not None:
            waiting = [
                message.received_at
                for message, by_account in grouped
                if any(self.references.account(account_id) is None for account_id in by_account)
            ]
            if waiting:
                # An account registered just before its first records may still be on its way
                # to this worker; received_at is whole seconds, so wait for what came before its end.
                await self.reference_sync(max(waiting) + 1.0)
        columns = Columns()
        for message in messages:
            message_columns(message, self.references.enrich, columns)
        await self._detect(messages, grouped, columns, started)

    async def _write_rows(
        self, columns: Columns, messages: list[Any], spread: list[int], started: float
    ) -> None:
        """The take's rows on their way to ClickHouse, once the last take's are in.

        They go on the storage thread while this thread runs the next take's detectors, and
        after this take's alerts: a take's alerts wait for no rows but the last take's, which
        had its detectors' time to go. Before, a take's rows went as its detectors started and
        its alerts waited for them: the storage thread takes one call at a time, and the rows
        of a take of thousands of records take longer than its alerts' dozens. The take's
        messages are counted processed, and marked done with their forwards' parts (``spread``),
        once their rows are in; a commit waits for rows still on their way before it commits the
        offsets that the take's acknowledgement moved on."""
        last, self._rows = self._rows, None
        if last is not None:
            await last  # one take's rows on their way at a time: a slow ClickHouse holds takes back
        rows = asyncio.ensure_future(self._insert_and_count(columns, messages, spread, started))
        if self.track_pending is None:
            await rows
            return
        self.track_pending(rows)
        self._rows = rows

    async def _insert_and_count(
        self, columns: Columns, messages: list[Any], spread: list[int], started: float
    ) -> None:
        await self._insert(columns)
        # a mark in ClickHouse says a message needs no replay after a restart from the snapshots
        self._mark_done(messages, spread)
        clock = time.time()
        for message in messages:
            n_txn = sum(1 for r in message.records if isinstance(r, TxnRecord))
            metrics.RECORDS_PROCESSED.labels("transaction").inc(n_txn)
            metrics.RECORDS_PROCESSED.labels("balance").inc(len(message.records) - n_txn)
            metrics.RECORD_LAG_SECONDS.observe(max(0.0, clock - message.received_at))
        metrics.MESSAGES_PROCESSED.inc(len(messages))
        self.messages_handled += len(messages)
        metrics.PROCESSING_SECONDS.observe(time.perf_counter() - started)
        metrics.LAST_TAKE_DONE.set(time.time())

    async def _insert(self, columns: Columns) -> None:
        await self.sink.insert_blocks([(table, values.columns()) for table, values in columns.tables.items()])

    async def _detect(
        self,
        messages: list[Any],
        grouped: list[tuple[Any, dict[str, list[Any]]]],
        rows: Columns | None = None,
        started: float = 0.0,
    ) -> None:
        """The take's accounts stepped and their alerts out, its forwards sent, then its rows
        (``_write_rows``); without rows, its messages marked done once the forwards are sent."""
        now = int(time.time())
        context = dataclasses.replace(self.context, event_time_ceiling=now + self.max_future_s)
        with self.gate:
            await self._step_and_emit(context, grouped, now)
        # Re-sent on a redelivery too: the institution agent knows each part's id and skips it.
        if rows is None:
            await self._forward(messages)
            return
        await self._write_rows(rows, messages, await self._send_forwards(messages), started)

    async def _step_and_emit(
        self, context: DetectContext, grouped: list[tuple[Any, dict[str, list[Any]]]], now: int
    ) -> None:
        """Each account's new messages through the detectors, the silent accounts swept, the
        new states kept and the alerts that changed out."""
        touched: dict[str, dict[str, Any]] = {}
        changed_alerts: list[tuple[str, AlertData]] = []
        replayed: set[str] = set()
        for account_id, parts in _by_account_across(grouped).items():
            state = self.account_state.get(account_id.encode("utf-8"))
            if state is None:
                state = self.seed.pop(account_id, None)
            flows = flows_of(state)
            fresh: list[tuple[str, list[Any]]] = []
            for msg_id, records in parts:
                if already_applied(flows, msg_id):
                    replayed.add(msg_id)
                    continue
                flows = apply(flows, msg_id, records)
                fresh.append((msg_id, records))
            if not fresh:
                continue
            # the table's value is replaced by the new state right after: consumed, not copied
            detection, changed = step_account_messages(context, state, account_id, fresh, now, consume=True)
            touched[account_id] = {"flows": flows, **detection}
            changed_alerts.extend(changed)
        if replayed:
            metrics.MESSAGES_REPLAYED.inc(len(replayed))
        changed_alerts.extend(self._sweep(context, grouped, touched, now))
        for account_id, state in touched.items():
            self._keep_state(account_id, state)
            self.sink.remember("account", account_id, state)
        await self.sink.emit_alerts(changed_alerts)

    def _sweep(
        self,
        context: DetectContext,
        grouped: list[tuple[Any, dict[str, list[Any]]]],
        touched: dict[str, dict[str, Any]],
        now: int,
    ) -> list[tuple[str, AlertData]]:
        """Each partition's banks' event time moves on with the take's messages (one partition's
        share of a batch each); the silent accounts whose open day their bank's time has passed
        are judged (``touched`` gets their new states) and the alerts that changed are returned.
        Replayed messages move the bank times too: to nowhere the first pass did not."""
        indexes: dict[int, SweepIndex] = {}
        for message, by_account in grouped:
            if not by_account:
                continue
            partition = partition_for(next(iter(by_account)), self.partitions)
            index = indexes.get(partition) or indexes.setdefault(partition, self._sweep_index(partition))
            index.observe(message.bank_code, message.records, context.event_time_ceiling)
            for account_id in by_account:
                if account_id in touched:
                    index.track(account_id, message.bank_code, anomaly_state_of(touched[account_id]))
        changed: list[tuple[str, AlertData]] = []
        for _, index in sorted(indexes.items()):
            for account_id, state, alerts in sweep_due(
                context, index, lambda a: self._state_of(a, touched), now
            ):
                touched[account_id] = state
                changed.extend(alerts)
        return changed

    def _state_of(self, account_id: str, touched: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        state = touched.get(account_id)
        if state is None:
            state = self.account_state.get(account_id.encode("utf-8"))
        if state is None:
            state = self.seed.pop(account_id, None)
        return state

    def _sweep_index(self, partition: int) -> SweepIndex:
        """The partition's sweep index, rebuilt from the states held (the table's, and the
        ClickHouse snapshots not yet read into it) the first time after a start or a rebalance:
        every open day is tracked again, and waits for its bank's next records."""
        index = self.sweeps.get(partition)
        if index is None:
            index = self.sweeps[partition] = SweepIndex()
            held = {key.decode("utf-8"): state for key, state in self.account_state.data.items()}
            for account_id, state in self.seed.items():
                held.setdefault(account_id, state)
            index.rebuild(
                (account_id, self._bank_of(account_id), anomaly_state_of(state))
                for account_id, state in held.items()
                if partition_for(account_id, self.partitions) == partition
            )
        return index

    def _bank_of(self, account_id: str) -> str:
        account = self.references.account(account_id) if self.references is not None else None
        return str((account or {}).get("bank_code") or "")

    def forget_sweeps(self) -> None:
        """On a rebalance: the partitions' indexes are rebuilt from the table when next taken."""
        self.sweeps = {}

    def _keep_state(self, account_id: str, state: dict[str, Any]) -> None:
        """The account's new state: in the table at once (the next take reads it), to the
        changelog when the consumer commits (write_states)."""
        self.account_state.data[account_id.encode("utf-8")] = state
        self._unwritten[account_id] = state

    def write_states(self) -> int:
        """Write the states changed since the last call to the table's changelog, each account's
        newest once. The worker calls this as the consumer starts a commit, before Faust flushes
        the producer and commits the offsets (streams/app.py), so every state is in the
        changelog before the offsets of the messages that made it are committed: a busy
        account's state goes out once per commit interval, not once per take.

        Each goes on the changelog partition of the account's own records partition. Faust takes
        the partition from the event being processed; with messages taken together that is the
        last one taken, which may be another partition's. The account's partition is known (the
        gateway routes by it), so the write names it and the changelog stays co-partitioned with
        the records topic, as recovery after a rebalance needs.
        """
        unwritten, self._unwritten = self._unwritten, {}
        self.write_changelog([self._document(account_id, state) for account_id, state in unwritten.items()])
        return len(unwritten)

    def _write_state(self, account_id: str, state: dict[str, Any]) -> None:
        """One account's state to the changelog at once."""
        self.write_changelog([self._document(account_id, state)])

    def _document(self, account_id: str, state: dict[str, Any]) -> Document:
        return state_document(partition_for(account_id, self.partitions), account_id, state)

    async def _forward(self, messages: list[Any]) -> int:
        """The take's records that institution-level detectors need on to the institution topic,
        then each records message marked done with its parts; returns how many messages were sent."""
        sent_before = self.institution_messages_sent
        self._mark_done(messages, await self._send_forwards(messages))
        return self.institution_messages_sent - sent_before

    async def _send_forwards(self, messages: list[Any]) -> list[int]:
        """The take's forwards, one message per institution partition (streams/forwards.py);
        returns how many parts each records message has in them."""
        forwards, spread = take_forwards(self.context, messages, self.partitions)
        for forward in forwards:
            await self.institution_topic.send(
                key=forward.msg_id.encode(), value=forward.value, partition=forward.partition
            )
        self.institution_messages_sent += len(forwards)
        metrics.INSTITUTION_MESSAGES_SENT.inc(len(forwards))
        return spread

    def _mark_done(self, messages: list[Any], spread: list[int]) -> None:
        for message, parts in zip(messages, spread, strict=True):
            self.sink.mark_done(message.msg_id, "records", parts)


def _by_account_across(
    grouped: list[tuple[Any, dict[str, list[Any]]]],
) -> dict[str, list[tuple[str, list[Any]]]]:
    """Each account's (message id, records) over the messages taken, in message order."""
    parts: dict[str, list[tuple[str, list[Any]]]] = defaultdict(list)
    for message, by_account in grouped:
        for account_id, records in by_account.items():
            parts[account_id].append((message.msg_id, records))
    return parts


def _by_account(message: Any) -> dict[str, list[Any]]:
    by_account: dict[str, list[Any]] = defaultdict(list)
    for record in message.records:
        by_account[record.account_id].append(record)
    return by_account


def flows_of(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The flow totals within an account's state."""
    return None if state is None else state.get("flows")
