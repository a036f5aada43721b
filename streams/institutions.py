"""The institution agent's work on the messages it takes together: each institution's records
(or a product review) through the product- and institution-level detectors.

Institution states live in this process's memory, not in a Faust table: a payment institution's
clearing mirrors and growth trend reach megabytes, and a changelogged table would write all of it
to Kafka on every message. They are snapshotted to ClickHouse (``institution_state``) with the
account snapshots, every few seconds and when partitions are revoked, and an institution this
process has not seen yet is loaded from there on first touch: after a restart, or when a
rebalance hands its partition over from another worker.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import msgspec

from models.detectors import DetectContext
from models.detectors.context import OverlaidReferences
from models.institution_detection import step_institution_messages
from schemas.alerts import AlertData
from schemas.ddl import DATABASE
from schemas.messages import InstitutionPart, decode_institution_message
from streams import metrics
from streams.sink import Sink

log = logging.getLogger("fundwatch.worker")


class InstitutionProcessor:
    def __init__(self, sink: Sink, context: DetectContext, max_future_s: int = 3600) -> None:
        self.sink = sink
        self.context = context
        self.max_future_s = max_future_s  # as RecordsProcessor.max_future_s
        self.states: dict[str, dict[str, Any]] = {}
        self.messages_handled = 0

    async def _state(self, institution_id: str) -> dict[str, Any] | None:
        state = self.states.get(institution_id)
        if state is None:
            rows = await self.sink.storage.query(
                f"SELECT state FROM {DATABASE}.institution_state FINAL WHERE institution_id = %(id)s",
                {"id": institution_id},
            )
            if rows:
                state = self.states[institution_id] = msgspec.json.decode(rows[0][0])
        return state

    def forget(self) -> None:
        """Drop what memory holds (after a rebalance): it is reloaded from the snapshots."""
        self.states.clear()

    async def handle_many(self, values: list[bytes]) -> None:
        """Messages taken together: each through the detectors in order, their alerts out once
        for all of them."""
        started = time.perf_counter()
        now = int(time.time())
        ceiling = now + self.max_future_s
        changed_alerts: list[tuple[str, AlertData]] = []
        # Each institution's parts over the messages taken, in order. Its plain records parts go
        # through the detectors in one step; a review (products just upserted) is a step of its
        # own, with those products overlaid on the reference view.
        steps: dict[str, list[tuple[str, InstitutionPart]]] = {}
        for value in values:
            message = decode_institution_message(value)
            for part in message.parts:
                steps.setdefault(part.institution_id, []).append((message.msg_id, part))
        for institution_id, parts in steps.items():
            state = await self._state(institution_id)
            for run in _runs(parts):
                context = dataclasses.replace(self.context, event_time_ceiling=ceiling)
                products = run[0][1].products
                if products:
                    context = dataclasses.replace(
                        context, references=OverlaidReferences(self.context.references, products)
                    )
                # self.states holds the new state from here on: the old one is consumed, not copied
                new_state, changed = step_institution_messages(
                    context,
                    state,
                    institution_id,
                    [(msg_id, part.records) for msg_id, part in run],
                    now,
                    consume=True,
                )
                if new_state is not state:
                    state = self.states[institution_id] = new_state
                    self.sink.remember("institution", institution_id, new_state)
                changed_alerts.extend(changed)
        await self.sink.emit_alerts(changed_alerts)
        self.messages_handled += len(values)
        metrics.INSTITUTION_MESSAGES_HANDLED.inc(len(values))
        metrics.INSTITUTION_PROCESSING_SECONDS.observe(time.perf_counter() - started)


def _runs(parts: list[tuple[str, InstitutionPart]]) -> list[list[tuple[str, InstitutionPart]]]:
    """Consecutive plain parts together; each review part alone."""
    runs: list[list[tuple[str, InstitutionPart]]] = []
    for msg_id, part in parts:
        if part.products or not runs or runs[-1][-1][1].products:
            runs.append([(msg_id, part)])
        else:
            runs[-1].append((msg_id, part))
    return runs
