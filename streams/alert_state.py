"""Alert cases and suppressions as every worker holds them, and the overlay it puts on each alert
it emits (DESIGN.md: alert state changes are events; the current state is their fold).

Desk actions change an alert's status on the gateway; the worker that owns the alert's account or
institution remembers only "open" and its own revision count. So the gateway publishes each case
on the compacted topic ``fw.alert-actions`` (key: the alert id) and each suppression on
``fw.suppressions``, and every worker reads both from the start and follows them, like the
reference topics (streams/reference.py says why a plain consumer): no consumer group, every
partition, no I/O per alert. Before it writes an alert, the sink lays the case over it (status,
disposition, assignee, revisions counted with the actions') and marks it ``suppressed`` when a
suppression in force holds it (models/alert_case.py).

A disposed alert whose severity rises reopens itself: the worker publishes the new case, keeps it
at once (its next update must not reopen it again), and writes an audit row with the actor
``system``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import mode
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from models.alert_case import SYSTEM, audit_row, overlay_case, overlay_suppression
from schemas.actions import ALERT_ACTIONS_TOPIC, AUDIT_COLUMNS, SUPPRESSIONS_TOPIC, AlertCase, Suppression
from schemas.alerts import AlertData
from schemas.ddl import DATABASE
from streams.transport import FETCH_MAX_WAIT_MS

log = logging.getLogger("fundwatch.alert_state")

# How long an alert waits, at a worker's start, for the cases and suppressions published before;
# after that it is emitted with what has arrived (and the next update corrects it).
CATCH_UP_TIMEOUT_S = 10.0
# An alert this worker emitted is remembered this long, so that a desk's action that raced it (the
# gateway read the alert before this version was written, this worker laid the case from before
# the action over it) is followed by the version with the action's case. The race lasts as long as
# the follower's lag, and the write's way to ClickHouse.
RECENT_S = 5.0
TOPICS = {ALERT_ACTIONS_TOPIC: "cases", SUPPRESSIONS_TOPIC: "suppressions"}

_case_decoder = msgspec.json.Decoder(AlertCase)
_suppression_decoder = msgspec.json.Decoder(Suppression)
_encoder = msgspec.json.Encoder()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat().replace("+00:00", "Z")


class AlertStateView:
    """The newest case of each alert and every suppression, in memory."""

    def __init__(self) -> None:
        self.cases: dict[str, AlertCase] = {}
        self.suppressions: dict[str, Suppression] = {}
        self._by_typology: dict[str, list[Suppression]] | None = None
        self.on_newer_case: Callable[[AlertCase], None] | None = None  # AlertOverlay.raced

    def apply(self, kind: str, key: bytes, value: bytes | None) -> None:
        name = key.decode("utf-8")
        try:
            if kind == "cases":
                if value is None:
                    self.cases.pop(name, None)
                else:
                    case = _case_decoder.decode(value)
                    known = self.cases.get(case.alert_id)
                    self.keep(case)
                    if self.on_newer_case is not None and (known is None or case.seq > known.seq):
                        self.on_newer_case(case)
            elif value is None:
                self.suppressions.pop(name, None)
                self._by_typology = None
            else:
                self.suppressions[name] = _suppression_decoder.decode(value)
                self._by_typology = None
        except (msgspec.DecodeError, msgspec.ValidationError) as error:  # not ours to stop on
            log.error("unreadable %s item key=%s error=%s", kind, name, error)

    def load(self, storage: Any) -> tuple[int, int]:
        """The cases and the suppressions in force from ClickHouse (blocking: start-up only).

        The topics bring the same, but an embedded broker starts empty and the gateway publishes
        them again only as it starts, which may be after this worker emits its first alerts: a
        disposed alert would be written "open" by its next update. Read first, then followed."""
        for _, doc in storage.query(
            f"SELECT alert_id, argMax(case_state, version) FROM {DATABASE}.alert_actions GROUP BY alert_id"
        ):
            self.apply("cases", b"", doc.encode("utf-8"))
        for suppression_id, doc in storage.query(
            f"""SELECT suppression_id, doc FROM {DATABASE}.suppressions FINAL
                WHERE deleted = 0 AND until > toDateTime(%(now)s, 'UTC')""",
            {"now": int(time.time())},
        ):
            self.apply("suppressions", suppression_id.encode("utf-8"), doc.encode("utf-8"))
        return len(self.cases), len(self.suppressions)

    def keep(self, case: AlertCase) -> None:
        """A case, unless a newer one is known: the gateway and the workers both write the topic,
        and this worker's own reopening is kept before its echo comes back."""
        known = self.cases.get(case.alert_id)
        if known is None or case.seq >= known.seq:
            self.cases[case.alert_id] = case

    def suppressions_of(self, typology: str) -> list[Suppression]:
        if self._by_typology is None:
            index: dict[str, list[Suppression]] = {}
            for suppression in self.suppressions.values():
                index.setdefault(suppression.typology, []).append(suppression)
            self._by_typology = index
        return self._by_typology.get(typology, [])


class AlertStateFollower(mode.Service):
    """Reads ``fw.alert-actions`` and ``fw.suppressions`` into a view and keeps following them."""

    def __init__(self, bootstrap: str, view: AlertStateView, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bootstrap = bootstrap
        self.view = view
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,  # a status change should reach the next emit soon
        )
        await self._consumer.start()
        partitions = []
        for topic in TOPICS:
            for _ in range(50):  # the topic may have just been made
                found = self._consumer.partitions_for_topic(topic)
                if found:
                    break
                await self._consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"topic {topic} has no partitions")
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._targets = await self._consumer.end_offsets(partitions)
        self.add_future(self._follow())

    async def _follow(self) -> None:
        assert self._consumer is not None
        pending = {tp for tp, end in self._targets.items() if end > 0}
        while not self.should_stop:
            if not pending and not self.caught_up.is_set():
                self.caught_up.set()
                log.info("alert cases and suppressions loaded cases=%d suppressions=%d",
                         len(self.view.cases), len(self.view.suppressions))  # fmt: skip
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            except KafkaError as error:
                log.warning("alert state follow error=%s", error)
                await asyncio.sleep(1.0)
                continue
            for tp, messages in batches.items():
                for message in messages:
                    if message.key is not None:
                        self.view.apply(TOPICS[tp.topic], message.key, message.value)
            for tp in list(pending):
                if await self._consumer.position(tp) >= self._targets[tp]:
                    pending.discard(tp)

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


Changed = list[tuple[str, AlertData]]


class AlertOverlay:
    """The sink's hook (streams/sink.py emit_alerts): each alert with its case and suppression."""

    def __init__(
        self,
        view: AlertStateView,
        caught_up: asyncio.Event,
        insert: Callable[[str, tuple[str, ...], list[list[Any]]], Awaitable[None]],
        send_case: Callable[[bytes, bytes], Awaitable[Any]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.view = view
        self.caught_up = caught_up
        self.insert = insert
        self.send_case = send_case
        self.clock = clock
        # writes alerts again through the sink (Sink.emit_alerts), for versions a desk's action raced
        self.reemit: Callable[[Changed], Awaitable[None]] | None = None
        # alert id -> (when emitted, ns; seq of the case laid over it; the revision emitted; the
        # alert as the detector gave it)
        self.recent: OrderedDict[str, tuple[int, int, int, AlertData]] = OrderedDict()
        self._tasks: set[asyncio.Future[None]] = set()
        view.on_newer_case = self.raced

    async def __call__(self, changed: Changed) -> Changed:
        if not self.caught_up.is_set():
            try:
                await asyncio.wait_for(self.caught_up.wait(), CATCH_UP_TIMEOUT_S)
            except TimeoutError:
                log.warning(
                    "alert cases still loading after %.0f s; emitting with what arrived", CATCH_UP_TIMEOUT_S
                )
        now = self.clock()
        out: Changed = []
        audits: list[list[Any]] = []
        reopened: list[AlertCase] = []
        for event_type, alert in changed:
            before = self.view.cases.get(alert.alert_id)
            raw = alert
            alert, case = overlay_case(alert, before, time.time_ns())
            laid = case if case is not None else before
            self._remember(raw, laid.seq if laid is not None else 0, alert.revision)
            if case is not None and before is not None:
                self.view.keep(case)
                reopened.append(case)
                audits.append(audit_row(case, alert, int(now), "", SYSTEM, "reopen", before.status))
                log.info("alert reopened alert=%s reason=%s", alert.alert_id, case.reopened_reason)
            out.append(
                (event_type, overlay_suppression(alert, self.view.suppressions_of(alert.typology), now))
            )
        if audits:
            await self.insert(f"{DATABASE}.alert_actions", AUDIT_COLUMNS, audits)
            for case in reopened:
                await self.send_case(case.alert_id.encode("utf-8"), _encoder.encode(case))
        return out

    def _remember(self, raw: AlertData, seq: int, revision: int) -> None:
        at = time.time_ns()
        self.recent[raw.alert_id] = (at, seq, revision, raw)
        self.recent.move_to_end(raw.alert_id)
        horizon = at - int(RECENT_S * 1e9)
        while self.recent and next(iter(self.recent.values()))[0] < horizon:
            self.recent.popitem(last=False)

    def raced(self, case: AlertCase) -> None:
        """A newer case arrived: if this worker wrote the alert lately with an older one, and the
        action did not see that version (its revision is not past it), the version may stand over
        the action's in ClickHouse: write it again with this case, one revision past both."""
        seen = self.recent.get(case.alert_id)
        if seen is None or self.reemit is None:
            return
        _, used, emitted, raw = seen
        if used >= case.seq or case.revision > emitted:
            return
        del self.recent[case.alert_id]
        log.info("alert written again with the case of an action it raced alert=%s", case.alert_id)
        fresh = msgspec.structs.replace(raw, updated_at=_iso(self.clock()))
        task = asyncio.ensure_future(self.reemit([("updated", fresh)]))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("alert not written again error=%s", task.exception())
