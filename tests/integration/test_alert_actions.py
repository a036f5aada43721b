"""Desk actions and suppressions on both backends (services/gateway/alert_actions.py,
suppressions.py): what they write to ClickHouse, what they publish, what the reads show, and
what the gateway publishes again at start, with the same queries on ClickHouse 18.16 and chDB."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from schemas.actions import ALERT_ACTIONS_TOPIC, SUPPRESSIONS_TOPIC, AlertCase
from schemas.alerts import AlertData, DetectorInfo, Evidence, Explanation, decode_event
from schemas.ddl import DATABASE
from services.auth import Principal
from services.gateway.alert_actions import AlertActions
from services.gateway.alert_reads import AlertReads
from services.gateway.errors import ApiError
from services.gateway.suppressions import Suppressions
from services.storage.async_storage import AsyncStorage
from streams.alert_state import AlertStateView

pytestmark = pytest.mark.integration

ADMIN = Principal("tok-admin", "admin")
DESK = Principal("tok-desk-2201", "desk", region="2201")
OTHER_DESK = Principal("tok-desk-11", "desk", region="11")


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    async def send_all(self, messages) -> None:
        self.sent.extend(messages)

    def on(self, topic: str) -> list[tuple]:
        return [m for m in self.sent if m[0] == topic]


def _alert(alert_id: str, institution_id: str) -> AlertData:
    return AlertData(
        alert_id=alert_id, typology="large_value", severity="medium", score=0.5, institution_id=institution_id,
        region="220102", accounts=["6222000011112222"], amount="2500000.00",
        window_start="2026-11-20T00:00:00Z", window_end="2026-11-21T00:00:00Z",
        evidence=Evidence(record_ids=["r1"], metrics={}, thresholds={}),
        explanation=Explanation(zh="大额", en="large"), detector=DetectorInfo(name="large_value", version="1"),
        created_at="2026-11-20T02:00:00Z", updated_at="2026-11-20T02:00:00Z", revision=3,
    )  # fmt: skip


def _seed(storage, alert: AlertData) -> None:
    storage.insert(
        f"{DATABASE}.ref_institutions", ("institution_id", "region", "type", "doc", "version"),
        [[alert.institution_id, alert.region, "p2p_lending", "{}", time.time_ns()]],
    )  # fmt: skip
    storage.insert(
        f"{DATABASE}.alerts",
        ("alert_id", "typology", "severity", "status", "score", "institution_id", "region", "amount",
         "window_start", "window_end", "created_at", "updated_at", "doc", "version"),
        [[alert.alert_id, alert.typology, alert.severity, alert.status, alert.score, alert.institution_id,
          alert.region, alert.amount, 1_795_104_000, 1_795_190_400, 1_795_111_200, 1_795_111_200,
          msgspec.json.encode(alert).decode(), time.time_ns()]],
    )  # fmt: skip


def _rfc3339(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


def test_actions_are_written_audited_published_and_shown(storage):
    async def scenario() -> None:
        run = uuid.uuid4().hex[:8]
        alert = _alert(f"alert-{run}", f"INST-{run}")
        _seed(storage, alert)
        store, publisher = AsyncStorage(storage), FakePublisher()
        suppressions = Suppressions(store, publisher)
        actions, reads = AlertActions(store, publisher, suppressions), AlertReads(store)

        await actions.act(DESK, alert.alert_id, b'{"action": "acknowledge"}')
        await actions.act(
            DESK, alert.alert_id, b'{"action": "comment", "note": "\xe5\xb7\xb2\xe6\xa0\xb8\xe5\xae\x9e"}'
        )
        await actions.act(
            DESK, alert.alert_id, b'{"action": "dispose", "disposition": "rectify", "note": "30 days"}'
        )
        shown = await reads.get(DESK, alert.alert_id)
        assert (shown["status"], shown["disposition"], shown["revision"]) == ("disposed", "rectify", 5)
        trail = [(a["action"], a["previous_status"], a["new_status"]) for a in shown["actions"]]
        assert trail == [("acknowledge", "open", "acknowledged"), ("comment", "acknowledged", "acknowledged"),
                         ("dispose", "acknowledged", "disposed")]  # fmt: skip
        assert shown["actions"][2]["actor"] == {"token_id": "tok-desk-2201", "role": "desk"}
        assert shown["actions"][2]["disposition"] == "rectify" and shown["actions"][2]["note"] == "30 days"
        assert shown["actions"][1]["note"] == "已核实"
        # the events of the two status changes went out; the comment changed nothing to publish
        events = [decode_event(m[3]).data for m in publisher.on("fw.alerts")]
        assert [(e.status, e.revision) for e in events] == [("acknowledged", 4), ("disposed", 5)]
        cases = [msgspec.json.decode(m[3], type=AlertCase) for m in publisher.on(ALERT_ACTIONS_TOPIC)]
        assert [(c.status, c.bumps, c.revision) for c in cases] == [("acknowledged", 1, 4), ("disposed", 2, 5)]
        history = {h["event"] for h in shown["history"]}
        assert {"acknowledge", "dispose"} <= history

        for principal, body, status, field in [
            (DESK, b'{"action": "dispose", "disposition": "close"}', 409, "action"),
            (DESK, b'{"action": "dispose", "disposition": "ignore"}', 422, "disposition"),
            (DESK, b'{"action": "escalate"}', 422, "action"),
            (OTHER_DESK, b'{"action": "reopen"}', 404, None),
        ]:
            with pytest.raises(ApiError) as refused:
                await actions.act(principal, alert.alert_id, body)
            assert (refused.value.status, refused.value.field) == (status, field)

        publisher.sent.clear()
        assert await actions.republish() >= 1
        again = {
            m[2].decode(): msgspec.json.decode(m[3], type=AlertCase)
            for m in publisher.on(ALERT_ACTIONS_TOPIC)
        }
        assert (again[alert.alert_id].status, again[alert.alert_id].bumps) == ("disposed", 2)
        # a worker starting reads the same from ClickHouse before it follows the topics
        view = AlertStateView()
        view.load(storage)
        assert (view.cases[alert.alert_id].status, view.cases[alert.alert_id].disposition) == (
            "disposed",
            "rectify",
        )

    asyncio.run(scenario())


def test_suppressions_are_scoped_marked_audited_and_removed(storage):
    async def scenario() -> None:
        run = uuid.uuid4().hex[:8]
        alert = _alert(f"alert-{run}", f"INST-{run}")
        _seed(storage, alert)
        store, publisher = AsyncStorage(storage), FakePublisher()
        suppressions, reads = Suppressions(store, publisher), AlertReads(store)
        ask = {"typology": "large_value", "institution_id": alert.institution_id, "until": _rfc3339(timedelta(days=30)),
               "reason": "已知的结算业务"}  # fmt: skip

        with pytest.raises(ApiError) as refused:
            await suppressions.create(OTHER_DESK, msgspec.json.encode(ask))
        assert (refused.value.status, refused.value.field) == (403, "institution_id")
        for wrong in (timedelta(days=181), timedelta(minutes=-1)):
            with pytest.raises(ApiError) as refused:
                await suppressions.create(DESK, msgspec.json.encode({**ask, "until": _rfc3339(wrong)}))
            assert (refused.value.status, refused.value.field) == (422, "until")

        made = await suppressions.create(DESK, msgspec.json.encode(ask))
        assert made.region == "220102" and made.active and made.created_by.token_id == "tok-desk-2201"
        assert [m[2].decode() for m in publisher.on(SUPPRESSIONS_TOPIC)] == [made.id]
        assert made.id in {s.id for s in (await suppressions.list(DESK)).suppressions}
        assert made.id not in {s.id for s in (await suppressions.list(OTHER_DESK)).suppressions}
        assert made.id in {s.id for s in (await suppressions.list(ADMIN)).suppressions}

        listed = {
            a["alert_id"]: a
            for a in (await reads.list(DESK, {"institution_id": alert.institution_id}))["alerts"]
        }
        assert (listed[alert.alert_id]["suppressed"], listed[alert.alert_id]["suppression_id"]) == (
            True,
            made.id,
        )
        assert (await reads.get(ADMIN, alert.alert_id))["suppression_id"] == made.id
        publisher.sent.clear()
        assert await suppressions.republish() >= 1  # at start, for workers on a broker that kept nothing
        assert made.id in {m[2].decode() for m in publisher.on(SUPPRESSIONS_TOPIC)}

        view = AlertStateView()
        view.load(storage)
        assert made.id in {s.id for s in view.suppressions_of("large_value")}

        with pytest.raises(ApiError) as refused:
            await suppressions.delete(OTHER_DESK, made.id)
        assert refused.value.status == 404
        await suppressions.delete(DESK, made.id)
        assert publisher.on(SUPPRESSIONS_TOPIC)[-1][2:] == (made.id.encode(), None)  # a tombstone
        assert made.id not in {s.id for s in (await suppressions.list(ADMIN)).suppressions}
        assert (await reads.get(DESK, alert.alert_id))["suppressed"] is False
        events = storage.query(
            f"""SELECT event, actor_id FROM {DATABASE}.suppression_events
                WHERE suppression_id = %(id)s ORDER BY version""",
            {"id": made.id},
        )
        assert [tuple(e) for e in events] == [("created", "tok-desk-2201"), ("deleted", "tok-desk-2201")]
        view = AlertStateView()
        view.load(storage)
        assert made.id not in view.suppressions

    asyncio.run(scenario())
