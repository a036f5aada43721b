"""The notification policy's memory on both backends (services/webhooks/messages.py): what each
subscription was sent comes back from the delivery log, and what was held back from the alerts'
current state, after a restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from schemas.alerts import AlertData, DetectorInfo, Evidence, Explanation
from services.storage.async_storage import AsyncStorage
from services.webhooks.messages import MessageMaker
from services.webhooks.notify import INTERVAL_END, NEW, Notifier
from services.webhooks.store import DeliveryStore
from streams.sink import Sink

pytestmark = pytest.mark.integration

INTERVAL = 300.0


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat().replace("+00:00", "Z")


class Topic:
    async def send(self, key, value) -> None:
        pass


class Lane:
    def __init__(self, sid: str, filter_doc: dict, created_at: float = 0.0) -> None:
        self.subscription = {"id": sid, "filter": filter_doc}
        self.created_at = created_at


def test_a_restarted_dispatcher_remembers_what_it_sent_and_sends_what_it_held(storage):
    region = f"9{uuid.uuid4().int % 10**5:05d}"  # these alerts only: the tables are shared
    now = time.time()

    def alert(alert_id: str, revision: int, amount: str, typology: str = "misappropriation") -> AlertData:
        return AlertData(
            alert_id=alert_id, typology=typology, severity="high", score=0.7, institution_id="I9", region=region,
            accounts=["6222000011112222"], amount=amount, window_start="2026-11-20T00:00:00Z",
            window_end="2026-11-21T00:00:00Z", evidence=Evidence(record_ids=["r1"], metrics={}, thresholds={}),
            explanation=Explanation(zh="挪用", en="misappropriation"),
            detector=DetectorInfo(name=typology, version="1"), created_at=_iso(now - 30),
            updated_at=_iso(now - 30 + revision), revision=revision,
        )  # fmt: skip

    busy, unread, report = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("busy", "unread", "report"))
    lanes = {
        "all": Lane("all", {"region": region}),  # unfiltered but for the region
        "reports": Lane("reports", {"region": region, "typologies": ["large_value"]}),
    }

    async def scenario() -> None:
        wrapped = AsyncStorage(storage)
        try:
            sink = Sink(wrapped, Topic())
            before = MessageMaker(wrapped, DeliveryStore(wrapped), Notifier(INTERVAL))
            first = alert(busy, 1, "100000.00")
            await sink.emit_alerts([("created", first)])
            made = await before.offer([(first, now - 29)], lanes, now - 29)
            assert [(d.subscription_id, d.revision, d.reason) for d in made] == [("all", 1, NEW)]
            # figures ticks within the interval: held, and the dispatcher stops before it ends
            for revision in (2, 3):
                tick = alert(busy, revision, f"{100000 + revision}.00")
                await sink.emit_alerts([("updated", tick)])
                assert await before.offer([(tick, now - 28)], lanes, now - 28) == []
            assert before.notifier.held() == 1
            # written, never read off the topic (a memory-only broker lost it with the process)
            await sink.emit_alerts([("created", alert(unread, 1, "5000.00"))])
            await sink.emit_alerts([("created", alert(report, 1, "2500000.00", typology="large_value"))])

            deliveries = DeliveryStore(wrapped)
            heard = await deliveries.heard([busy, unread])
            assert list(heard) == [busy]
            assert (heard[busy]["all"].revision, heard[busy]["all"].status) == (1, "open")
            assert heard[busy]["all"].at == pytest.approx(now - 29, abs=0.01)

            # made a moment after those alerts (within the clock grace): they were not its to hear
            lanes["late"] = Lane("late", {"region": region}, created_at=now - 5)
            after = MessageMaker(wrapped, deliveries, Notifier(INTERVAL))
            made = await after.reconcile(lanes, now)
            got = sorted((d.alert_id, d.subscription_id, d.revision, d.reason) for d in made)
            assert got == sorted([(unread, "all", 1, NEW), (report, "reports", 1, NEW)])
            assert after.notifier.held() == 1  # the busy alert's revision 3, due at its interval's end
            assert await after.flush(lanes, now - 29 + INTERVAL - 1) == []
            (final,) = await after.flush(lanes, now - 29 + INTERVAL)
            assert (final.alert_id, final.subscription_id, final.revision, final.reason) == (
                busy,
                "all",
                3,
                INTERVAL_END,
            )
            assert msgspec.json.decode(final.body)["data"]["amount"] == "100003.00"
            del lanes["late"]  # (the topic path grants it the clock grace: not what is tested here)
            # the topic, read again from the last commit, brings nothing new
            replay = [(alert(busy, r, f"{100000 + r}.00"), now - 28) for r in (1, 2, 3)]
            assert await after.offer(replay, lanes, now - 29 + INTERVAL + 1) == []
            assert (await deliveries.heard([busy]))[busy]["all"].revision == 3
            assert await deliveries.last_written() is not None
        finally:
            wrapped._executor.shutdown(wait=True)  # the backend belongs to the session fixture

    asyncio.run(scenario())
