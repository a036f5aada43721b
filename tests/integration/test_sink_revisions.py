"""An alert's revisions only grow, across a worker's restart too (streams/sink.py): a worker that
resumed from snapshots a few seconds old must not write a revision number it wrote before."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from models.alerting import alert_data
from models.findings import Finding
from services.storage.async_storage import AsyncStorage
from streams.sink import Sink

pytestmark = pytest.mark.integration


class Topic:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append(value)


def _alert(account: str, amount_cents: int, previous=None):
    finding = Finding(
        typology="large_value", key=f"{account}:2026-11-25:transfer_out", institution_id="INS-1",
        severity="low", score=0.5, accounts=(account,), amount_cents=amount_cents,
        window_start=1_764_000_000, window_end=1_764_086_400, record_ids=("r1",), metrics={},
        thresholds={}, explanation_zh="大额", explanation_en="large", rule="三(三)",
        detector_version="large_value/1",
    )  # fmt: skip
    return alert_data(finding, "220102", 1_764_086_400, previous)


def test_a_restarted_worker_writes_past_every_revision_written_before(storage):
    account = f"ACC-{uuid.uuid4().hex[:10]}"
    first = Sink(AsyncStorage(storage), Topic())
    one = _alert(account, 300_000_000)
    two = _alert(account, 310_000_000, one)
    asyncio.run(first.emit_alerts([("created", one), ("updated", two)]))

    # the same worker after a kill: its memory (from an older snapshot) counts from revision 1 again
    restarted = Sink(AsyncStorage(storage), Topic())
    assert restarted.load_revisions() >= 1
    again = _alert(account, 320_000_000)
    assert again.revision == 1
    asyncio.run(restarted.emit_alerts([("created", again)]))
    rows = storage.query(
        "SELECT visitParamExtractUInt(doc, 'revision'), amount FROM fundwatch.alerts FINAL WHERE alert_id = %(id)s",
        {"id": again.alert_id},
    )
    assert [(int(r), float(a)) for r, a in rows] == [(3, 3_200_000.0)]
