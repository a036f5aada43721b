"""The institution agent's work on one message: each institution's records (or a product
review) through the product- and institution-level detectors, one state write per institution."""

from __future__ import annotations

import time
from typing import Any

from models.detectors import DetectContext
from models.detectors.context import OverlaidReferences
from models.institution_detection import step_institution
from schemas.alerts import AlertData
from schemas.messages import decode_institution_message
from streams import metrics
from streams.sink import Sink


class InstitutionProcessor:
    def __init__(self, sink: Sink, context: DetectContext, institution_state: Any) -> None:
        self.sink = sink
        self.context = context
        self.institution_state = institution_state
        self.seed: dict[str, dict[str, Any]] = {}
        self.messages_handled = 0

    def load_seed(self) -> int:
        self.seed = self.sink.load_snapshots("institution")
        return len(self.seed)

    async def handle(self, value: bytes) -> None:
        started = time.perf_counter()
        message = decode_institution_message(value)
        now = int(time.time())
        changed_alerts: list[tuple[str, AlertData]] = []
        for part in message.parts:
            key = part.institution_id.encode("utf-8")
            state = self.institution_state.get(key)
            if state is None:
                state = self.seed.pop(part.institution_id, None)
            context = self.context
            if part.products:
                context = DetectContext(
                    references=OverlaidReferences(self.context.references, part.products),
                    thresholds=self.context.thresholds,
                )
            new_state, changed = step_institution(
                context, state, part.institution_id, message.msg_id, part.records, now
            )
            if new_state is not state:
                self.institution_state[key] = new_state
                self.sink.remember("institution", part.institution_id, new_state)
            changed_alerts.extend(changed)
        await self.sink.emit_alerts(changed_alerts)
        await self.sink.maybe_flush()
        self.messages_handled += 1
        metrics.INSTITUTION_MESSAGES_HANDLED.inc()
        metrics.INSTITUTION_PROCESSING_SECONDS.observe(time.perf_counter() - started)
