"""An alert's history keeps what a desk reads (models/alert_history.py): the creation, actions,
and updates that changed severity, status or the amount's band; the alert itself, on the alerts
topic and in ``alerts``, carries every revision."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
import pytest

from models.alert_history import amount_band, keeps, mark
from schemas.alerts import AlertData, DetectorInfo, Evidence, Explanation
from services.auth import Principal
from services.gateway.alert_reads import AlertReads
from streams.sink import Sink


def alert(revision: int, amount: str, severity: str = "low", status: str = "open") -> AlertData:
    return AlertData(
        alert_id="lv-1",
        typology="large_value",
        severity=severity,
        score=0.3,
        institution_id="I1",
        region="220102",
        accounts=["6217000011112201"],
        amount=amount,
        window_start="2026-11-20T00:00:00Z",
        window_end="2026-11-21T00:00:00Z",
        evidence=Evidence(record_ids=["r1"], metrics={}, thresholds={}),
        explanation=Explanation(zh="大额交易", en="large value"),
        detector=DetectorInfo(name="large_value", version="1"),
        status=status,
        created_at="2026-11-20T02:00:00Z",
        updated_at=datetime.fromtimestamp(1_795_140_000 + revision * 7, UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        revision=revision,
    )


@pytest.mark.parametrize(
    ("amount", "band"),
    [
        ("0.00", -1), ("0.99", -1), ("1.00", 0), ("1.99", 0), ("2.00", 1), ("4.99", 1), ("5.00", 2),
        ("9.99", 2), ("10.00", 3), ("49999.99", 13), ("50000.00", 14), ("199999.99", 15),
        ("200000.00", 16), ("500000.00", 17), ("1999999.99", 18), ("2000000.00", 19),
        ("2900000.00", 19), ("5000000.00", 20), ("-2500000.00", 19), ("n/a", -1), ("", -1),
    ],
)  # fmt: skip
def test_amount_bands_follow_the_1_2_5_series_and_the_rules_lines_sit_on_it(amount, band):
    assert amount_band(amount) == band


def test_only_updates_that_change_nothing_a_desk_reads_are_left_out():
    base = mark("low", "open", "2500000.00")
    assert keeps("created", None, base)
    assert keeps("updated", None, base)  # nothing known of the last kept one: kept
    assert not keeps("updated", base, mark("low", "open", "2900000.00"))
    assert keeps("updated", base, mark("medium", "open", "2900000.00"))
    assert keeps("updated", base, mark("low", "acknowledged", "2500000.00"))
    assert keeps("updated", base, mark("low", "open", "5000000.00"))
    assert keeps("acknowledged", base, base)  # an action is always kept
    assert keeps("commented", base, base)


# --- the worker writes --------------------------------------------------------------------------


class Storage:
    def __init__(self) -> None:
        self.rows: dict[str, list[list]] = {}

    async def insert(self, table, columns, rows) -> None:
        self.rows.setdefault(table.rsplit(".", 1)[1], []).extend(list(r) for r in rows)


class Topic:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, key, value) -> None:
        self.sent.append(value)


def test_the_worker_writes_every_revision_as_state_and_to_the_topic_and_history_only_when_it_counts():
    storage, topic = Storage(), Topic()
    sink = Sink(storage, topic)
    # a busy account's day: 40 records over the line, one revision each, and the total grows
    revisions = [("created", alert(1, "2500000.00"))]
    revisions += [("updated", alert(r, f"{2_500_000 + r * 10_000}.00")) for r in range(2, 41)]
    revisions += [("updated", alert(41, "5100000.00"))]  # crosses 5,000,000
    revisions += [("updated", alert(42, "21000000.00", severity="medium"))]  # far above the line

    async def emit() -> None:
        for change in revisions:  # one take each
            await sink.emit_alerts([change])

    asyncio.run(emit())
    assert [row[-1] for row in storage.rows["alerts"]] == sorted(row[-1] for row in storage.rows["alerts"])
    assert len(storage.rows["alerts"]) == len(topic.sent) == 42
    kept = [msgspec.json.decode(row[9])["revision"] for row in storage.rows["alert_events"]]
    assert kept == [1, 41, 42]


# --- the desk reads -----------------------------------------------------------------------------


class EventRows:
    """Answers AlertReads.get's queries: the alert, its events in order; no suppression, no
    action trail (its own table, not what is tested here)."""

    def __init__(self, current: AlertData, events: list[tuple[str, str, AlertData | dict]]) -> None:
        self.current = current
        self.events = events

    async def query(self, sql, params=None):
        if ".suppressions" in sql or ".alert_actions" in sql:
            return []
        if ".alert_events" not in sql:
            assert ".alerts FINAL" in sql, sql
            return [(msgspec.json.encode(self.current).decode(), self.current.region)]
        rows = []
        for event_type, actor, doc in self.events:
            data = msgspec.to_builtins(doc)
            at = datetime.fromisoformat(data.get("updated_at") or "2026-11-20T03:00:00+00:00").astimezone(UTC)
            status = data.get("status", "acknowledged")
            severity = data.get("severity", "low")
            rows.append((at, event_type, actor, status, severity, msgspec.json.encode(data).decode()))
        return rows


def test_a_history_written_before_the_rule_reads_as_if_written_with_it():
    ticks = [alert(r, f"{2_500_000 + r * 1_000}.00") for r in range(2, 86)]  # 84 updates, one band
    action = {
        "status": "acknowledged",
        "severity": "low",
        "revision": 86,
        "updated_at": "2026-11-20T03:00:00Z",
    }
    events = [("created", "detector:large_value", alert(1, "2500000.00"))]
    events += [("updated", "detector:large_value", a) for a in ticks]
    events += [("acknowledged", "desk:2201", action)]  # an action's record names no amount
    events += [("updated", "detector:large_value", alert(87, "2590000.00", status="acknowledged"))]
    events += [("updated", "detector:large_value", alert(88, "5000000.00", status="acknowledged"))]
    reads = AlertReads(EventRows(alert(88, "5000000.00", status="acknowledged"), events))
    got = asyncio.run(reads.get(Principal(token_id="admin", role="admin"), "lv-1"))
    assert [(h["event"], h["revision"], h["status"], h.get("amount")) for h in got["history"]] == [
        ("created", 1, "open", "2500000.00"),
        ("acknowledged", 86, "acknowledged", None),
        ("updated", 88, "acknowledged", "5000000.00"),
    ]
    assert got["amount"] == "5000000.00" and got["revision"] == 88  # the figures are current
