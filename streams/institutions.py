"""The institution agent's work on the messages it takes together: each institution's records
(or a product review) through the product- and institution-level detectors.

Institution states are as durable as account states: they live in the Faust table
``institution-state``, written to its changelog once per institution per commit, as the
consumer starts a commit and before it commits any offset (streams/app.py CommitHook), so what a
committed offset implies is in the changelog. They are also snapshotted to ClickHouse
(``institution_state``) with the account snapshots; an institution the table does not hold (the
memory-only embedded broker restarted) is loaded from there on first touch.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from models.detectors import DetectContext
from models.detectors.context import OverlaidReferences
from models.institution_detection import step_institution_messages
from schemas.alerts import AlertData
from schemas.ddl import DATABASE
from schemas.messages import InstitutionPart, decode_institution_message, partition_for
from streams import metrics
from streams.batches import Document, send_each, state_document
from streams.forwards import FORWARDED
from streams.records import readable
from streams.sink import Sink
from streams.take_gate import TakeGate

log = logging.getLogger("fundwatch.worker")


class InstitutionProcessor:
    def __init__(
        self,
        sink: Sink,
        context: DetectContext,
        table: Any,
        partitions: int,
        max_future_s: int = 3600,
    ) -> None:
        self.sink = sink
        self.context = context
        self.table = table  # the Faust table ``institution-state``
        self.partitions = partitions
        self.max_future_s = max_future_s  # as RecordsProcessor.max_future_s
        self.messages_handled = 0
        # states changed since the last write_states(), the newest per institution
        self._unwritten: dict[str, dict[str, Any]] = {}
        # a take's states go to the changelog only once its alerts are out (streams/take_gate.py)
        self.gate = TakeGate(self.write_states)
        # as RecordsProcessor.write_changelog
        self.write_changelog: Callable[[list[Document]], None] = functools.partial(send_each, table)

    async def _state(self, institution_id: str) -> dict[str, Any] | None:
        key = institution_id.encode("utf-8")
        state = self.table.get(key)
        if state is None:
            rows = await self.sink.storage.query(
                f"SELECT state FROM {DATABASE}.institution_state FINAL WHERE institution_id = %(id)s",
                {"id": institution_id},
            )
            if rows:
                state = self.table.data[key] = msgspec.json.decode(rows[0][0])
        return state

    def _keep_state(self, institution_id: str, state: dict[str, Any]) -> None:
        self.table.data[institution_id.encode("utf-8")] = state
        self._unwritten[institution_id] = state
        self.sink.remember("institution", institution_id, state)

    def write_states(self) -> int:
        """The states changed since the last call to the table's changelog (as
        RecordsProcessor.write_states, and called with it), each on the changelog partition of
        its institution's partition of the institution topic."""
        unwritten, self._unwritten = self._unwritten, {}
        self.write_changelog(
            [
                state_document(partition_for(key, self.partitions), key, state)
                for key, state in unwritten.items()
            ]
        )
        return len(unwritten)

    async def handle_many(self, values: list[bytes]) -> None:
        """Messages taken together: each through the detectors in order, their alerts out once
        for all of them."""
        started = time.perf_counter()
        # Each institution's parts over the messages taken, in order. Its plain records parts go
        # through the detectors in one step; a review (products just upserted) is a step of its
        # own, with those products overlaid on the reference view.
        steps: dict[str, list[tuple[str, InstitutionPart]]] = {}
        # the records messages whose parts were taken, each with which of its parts: marked
        # once each, in the order met (a take's forward carries several records messages' parts,
        # streams/forwards.py)
        handled: dict[tuple[str, str], None] = {}
        for message in readable(values, decode_institution_message, "institution-records"):
            for part in message.parts:
                part_id = part.msg_id or message.msg_id
                steps.setdefault(part.institution_id, []).append((part_id, part))
                if part_id.endswith(FORWARDED):
                    stage = f"i{partition_for(part.institution_id, self.partitions)}"
                    handled[(part_id[: -len(FORWARDED)], stage)] = None
        with self.gate:
            await self._step_and_emit(steps)
        for msg_id, stage in handled:
            self.sink.mark_done(msg_id, stage)
        self.messages_handled += len(values)
        metrics.INSTITUTION_MESSAGES_HANDLED.inc(len(values))
        metrics.INSTITUTION_PROCESSING_SECONDS.observe(time.perf_counter() - started)
        metrics.LAST_TAKE_DONE.set(time.time())

    async def _step_and_emit(self, steps: dict[str, list[tuple[str, InstitutionPart]]]) -> None:
        """Each institution's parts through the detectors, the new states kept and the alerts
        that changed out."""
        now = int(time.time())
        ceiling = now + self.max_future_s
        changed_alerts: list[tuple[str, AlertData]] = []
        for institution_id, parts in steps.items():
            state = await self._state(institution_id)
            for run in _runs(parts):
                context = dataclasses.replace(self.context, event_time_ceiling=ceiling)
                products = run[0][1].products
                if products:
                    context = dataclasses.replace(
                        context, references=OverlaidReferences(self.context.references, products)
                    )
                # the table holds the new state from here on: the old one is consumed, not copied
                new_state, changed = step_institution_messages(
                    context,
                    state,
                    institution_id,
                    [(msg_id, part.records) for msg_id, part in run],
                    now,
                    consume=True,
                )
                if new_state is not state:
                    state = new_state
                    self._keep_state(institution_id, new_state)
                changed_alerts.extend(changed)
        await self.sink.emit_alerts(changed_alerts)


def _runs(parts: list[tuple[str, InstitutionPart]]) -> list[list[tuple[str, InstitutionPart]]]:
    """Consecutive plain parts together; each review part alone."""
    runs: list[list[tuple[str, InstitutionPart]]] = []
    for msg_id, part in parts:
        if part.products or not runs or runs[-1][-1][1].products:
            runs.append([(msg_id, part)])
        else:
            runs[-1].append((msg_id, part))
    return runs
