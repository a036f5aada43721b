"""The Faust app: topics, tables and agents. Wiring only; the logic is in models/.

The records agent takes one message (a sub-batch of one partition's records) at a time, writes
its raw records and aggregate partials to ClickHouse, then folds each touched account's records
into that account's state with one table write per account, not per record. The records that
product- and institution-level detectors need go on, re-keyed by institution, to the institution
agent, which keeps one state per institution the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from models.anomaly_serving import AnomalyModels
from models.detectors import DetectContext
from models.thresholds import load_thresholds
from schemas.actions import ALERT_ACTIONS_TOPIC
from schemas.messages import ALERTS_TOPIC, INSTITUTION_TOPIC, RECORDS_TOPIC
from services.kafka_io import MAX_MESSAGE_BYTES, PRODUCER_BATCH_BYTES
from services.storage.async_storage import AsyncStorage
from streams.alert_state import AlertOverlay, AlertStateFollower, AlertStateView
from streams.anomaly_budget import AnomalyBudgetGate, accounts_by_scope, bank_lookup
from streams.batches import BatchSender
from streams.figure_hold import FigureHold
from streams.institutions import InstitutionProcessor
from streams.lag import LagService
from streams.models import AnomalyModelService
from streams.order_guard import OrderGuard
from streams.records import RecordsProcessor
from streams.reference import ReferenceFollower, ReferenceView
from streams.sink import SNAPSHOT_SLICE_S, Sink

log = logging.getLogger("fundwatch.worker")

TAKE_MESSAGES = 64
# A message on the institution topic carries a records take's parts for its partition
# (streams/forwards.py): a few of them hold as many records as a records take does. Taken 64 at
# a time, the records of a dozen records takes were alive at once, outlived the young
# collections, and brought on full ones (seen in the aged backlog: 8 µs a record in the collector).
INSTITUTION_TAKE_MESSAGES = 8
TAKE_WITHIN_S = 0.02  # what a lone message may wait for company: latency bought for throughput


@dataclass
class WorkerApp:
    app: faust.App
    references: ReferenceView
    follower: ReferenceFollower
    processor: RecordsProcessor
    institutions: InstitutionProcessor
    lag: LagService
    alert_state: AlertStateFollower | None = None  # cases and suppressions laid over alerts
    models: AnomalyModelService | None = None  # loads and swaps the anomaly model

    def services(self) -> list[Any]:
        """Services that must run beside the Faust app in the same worker."""
        optional = [service for service in (self.alert_state, self.models) if service is not None]
        return [self.follower, self.lag, *optional]

    async def ready(self) -> bool:
        app = self.app
        return bool(
            app.started
            and not app.rebalancing
            and app.tables.recovery.completed.is_set()
            and self.follower.caught_up.is_set()
            and (self.alert_state is None or self.alert_state.caught_up.is_set())
        )

    async def flush_snapshots(self) -> None:
        await self.processor.sink.release_held()  # alert updates before the states that made them
        self.institutions.write_states()
        await self.processor.flush_snapshots()


class CommitHook(faust.Sensor):
    """Writes the account and institution states changed since the last commit to their
    tables' changelogs as a commit starts: Faust then flushes the producer and only after that
    commits the offsets (faust.transport.consumer: force_commit calls the sensors first, on
    every commit path). A take whose alerts are not out yet has its states written once they
    are, and the flush waits for that (streams/take_gate.py)."""

    def __init__(
        self, processor: RecordsProcessor, institutions: InstitutionProcessor, sink: Sink | None = None
    ) -> None:
        super().__init__()
        self.processor = processor
        self.institutions = institutions
        self.sink = sink  # the agents' sink, when it holds alert updates (streams/figure_hold.py)

    def on_commit_initiated(self, consumer: Any) -> Any:
        hold = self.sink.hold if self.sink is not None else None
        if hold is not None:
            # held alert updates go out before any state that made them (streams/figure_hold.py);
            # nothing is held until the states are written
            hold.releasing += 1
            writing = asyncio.ensure_future(self._release_then_write(hold))
            consumer.app.producer.unacked.track(writing)
            return 0
        written, waiting = self._write_states()
        for deferred in waiting:
            # the producer's flush, which the commit awaits before any offset, waits for it
            consumer.app.producer.unacked.track(deferred)
        return written

    def _write_states(self) -> tuple[int, list[asyncio.Future[int]]]:
        """The states written now (their count), and the writes deferred until a take's alerts
        are out (streams/take_gate.py)."""
        written, waiting = 0, []
        for gate in (self.processor.gate, self.institutions.gate):
            result = gate.write_or_defer()
            if isinstance(result, int):
                written += result
            else:
                waiting.append(result)
        return written, waiting

    async def _release_then_write(self, hold: FigureHold) -> int:
        assert self.sink is not None
        try:
            await self.sink.release_held()
            written, waiting = self._write_states()
            return written + sum(await asyncio.gather(*waiting))
        finally:
            hold.releasing -= 1


def faust_app(
    app_id: str, bootstrap: str, partitions: int, datadir: Path, commit_interval_s: float = 3.0
) -> faust.App:
    return faust.App(
        app_id,
        datadir=str(datadir),  # Faust's default is a directory in the working directory
        broker=f"fundwatch://{bootstrap}",  # streams/transport.py: a short fetch wait
        store="memory://",
        web_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_MESSAGE_BYTES,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,  # services/kafka_io.py says why
        consumer_max_fetch_size=32 * 1024 * 1024,
        table_standby_replicas=0,
        # Each commit writes every state changed since the last one, whole (CommitHook), and a
        # live worker changes most of them within a second: 3 s instead of 1 s cut the changelog
        # written about threefold and a probe's p99 at 10,000 records/s (docs/benchmarks.md).
        broker_commit_interval=commit_interval_s,
        # A joining worker waits up to the rebalance timeout for the group to settle (seen: half
        # of it on Tansu); 10 s keeps start-up and fail-over short without false expiries.
        broker_session_timeout=10.0,
        broker_rebalance_timeout=10.0,
        broker_heartbeat_interval=2.0,
        autodiscover=False,
    )


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(
        name, partitions=partitions, key_serializer="raw", value_serializer="raw", internal=False
    )


def create_worker_app(
    app_id: str,
    bootstrap: str,
    partitions: int,
    storage: AsyncStorage,
    datadir: Path,
    max_future_s: int = 3600,
    models_dir: Path | None = None,
    commit_interval_s: float = 3.0,
) -> WorkerApp:
    app = faust_app(app_id, bootstrap, partitions, datadir, commit_interval_s)
    storage.sync.prepare_columns()
    records_topic = _raw_topic(app, RECORDS_TOPIC, partitions)
    institution_topic = _raw_topic(app, INSTITUTION_TOPIC, partitions)
    alerts_topic = _raw_topic(app, ALERTS_TOPIC, partitions)
    account_state = app.Table(
        "account-state",
        partitions=partitions,
        key_type=bytes,
        default=None,
        help="running state per account, one write per account per message",
    )
    institution_state = app.Table(
        "institution-state",
        partitions=partitions,
        key_type=bytes,
        default=None,
        help="running state per institution, one write per institution per commit",
    )
    references = ReferenceView()
    follower = ReferenceFollower(bootstrap, references)
    thresholds = load_thresholds()
    context = DetectContext(references=references, thresholds=thresholds)
    sink = Sink(storage, alerts_topic)
    alert_state = AlertStateFollower(bootstrap, AlertStateView())
    actions_topic = _raw_topic(app, ALERT_ACTIONS_TOPIC, partitions)

    async def send_case(key: bytes, value: bytes) -> None:
        await actions_topic.send(key=key, value=value)

    overlay = AlertOverlay(alert_state.view, alert_state.caught_up, sink.insert, send_case)
    # a version that raced a desk's action is written again, at once
    overlay.reemit = functools.partial(sink.emit_alerts, hold=False)
    sink.hold = FigureHold(time.monotonic)
    sink.overlay = overlay
    processor = RecordsProcessor(
        sink, context, references, account_state, institution_topic, partitions, follower.seen_since,
        max_future_s,
    )  # fmt: skip
    institutions = InstitutionProcessor(sink, context, institution_state, partitions, max_future_s)
    # a commit's states and a take's alert revisions in record batches, not one send each
    # (streams/batches.py)
    processor.write_changelog = BatchSender(app, lambda: account_state.changelog_topic.get_topic_name()).write
    institutions.write_changelog = BatchSender(
        app, lambda: institution_state.changelog_topic.get_topic_name()
    ).write
    sink.send_events = BatchSender(app, lambda: ALERTS_TOPIC).send_keyed
    # a take's rows go to ClickHouse while the next take runs; a commit waits for them
    processor.track_pending = lambda rows: app.producer.unacked.track(rows)
    app.sensors.add(CommitHook(processor, institutions, sink))

    def records_share() -> float:
        """This worker's share of the records partitions (the anomaly budget's share)."""
        if not app.started:
            return 1.0
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == RECORDS_TOPIC]
        return len(assigned) / partitions if assigned else 1.0

    sink.budget = AnomalyBudgetGate(
        thresholds,
        lambda: accounts_by_scope(references.items["accounts"], references.items["institutions"]),
        records_share,
        bank_of=bank_lookup(references.items["accounts"]),
    )

    def install(model: AnomalyModels) -> None:
        # the processors make each take's context from theirs: the next take is judged with it
        processor.context = dataclasses.replace(processor.context, anomaly_model=model)
        institutions.context = dataclasses.replace(institutions.context, anomaly_model=model)

    models = AnomalyModelService(models_dir, install) if models_dir is not None else None
    if models is not None:
        models.check_now()

    # Messages waiting are taken together (at most TAKE_MESSAGES, waiting at most TAKE_WITHIN_S
    # for more): one ClickHouse insert per table and one state write per account for all of
    # them. Faust acknowledges them once the whole take is handled. The agents take each
    # partition's messages in offset order (streams/order_guard.py).
    def committed(tp: Any) -> int | None:
        return app.consumer._committed_offset.get(tp)

    async def take_in_order(
        stream: Any,
        guard: OrderGuard,
        handle: Callable[[list[bytes]], Awaitable[None]],
        most: int = TAKE_MESSAGES,
    ) -> None:
        async for events in stream.take_events(most, within=TAKE_WITHIN_S):
            admitted, refetch = guard.admit(events)
            for tp, offset in refetch.items():
                await app.consumer.seek(tp, offset)
            if admitted:
                await handle([event.value for event in admitted])

    @app.agent(records_topic, name="records")
    async def records_agent(stream: Any) -> None:
        await take_in_order(stream, OrderGuard("records", committed), processor.handle_many)

    @app.agent(institution_topic, name="institutions")
    async def institutions_agent(stream: Any) -> None:
        await take_in_order(
            stream, OrderGuard("institutions", committed), institutions.handle_many, INSTITUTION_TAKE_MESSAGES
        )

    # Snapshot slices, and alert updates held long enough, go out on a timer of their own,
    # whether or not messages keep coming
    @app.timer(interval=SNAPSHOT_SLICE_S)
    async def snapshot_slices() -> None:
        if sink.hold is not None and sink.hold.due():
            await sink.release_held()
        await sink.maybe_flush()

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        # another worker may take these accounts and institutions over: their states go out,
        # after the alert updates they made
        await worker.flush_snapshots()
        processor.forget_sweeps()  # rebuilt from the table for the partitions taken next
        sink.forget_sizes()

    # the consumer exists once the app runs; before that there is no lag to show
    lag = LagService(app_id, lambda: app.consumer if app.started else None)
    log.info("account state seeds loaded accounts=%d", processor.load_seed())
    log.info("alert revisions loaded alerts=%d", sink.load_revisions())
    log.info("anomaly alerts counted in their daily budgets alerts=%d", sink.budget.load(storage.sync))
    log.info(
        "alert cases and suppressions seeded cases=%d suppressions=%d", *alert_state.view.load(storage.sync)
    )
    worker = WorkerApp(app, references, follower, processor, institutions, lag, alert_state, models)
    return worker
