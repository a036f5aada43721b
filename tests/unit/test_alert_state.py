"""streams/alert_state.py: the cases and suppressions a worker follows, and the overlay the sink
puts on each alert before writing it."""

from __future__ import annotations

import asyncio
import time

import msgspec

from schemas.actions import AUDIT_COLUMNS, Actor, AlertCase, Suppression
from streams.alert_state import AlertOverlay, AlertStateView
from tests.unit.test_alert_case import alert

NOW = 1_795_200_000.0


def _case(**fields) -> bytes:
    return msgspec.json.encode(AlertCase(alert_id="A1", **fields))


def _suppression(sid: str, **changes) -> Suppression:
    base = Suppression(
        id=sid, typology="large_value", region="22", until="2026-12-31T00:00:00Z", reason="r",
        created_at="2026-11-01T00:00:00Z", created_by=Actor("t", "desk"), institution_id="I1",
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def test_the_newest_case_wins_whatever_order_it_arrives_in() -> None:
    view = AlertStateView()
    view.apply("cases", b"A1", _case(status="disposed", seq=20))
    view.apply("cases", b"A1", _case(status="acknowledged", seq=10))  # older: a republish, a late echo
    assert view.cases["A1"].status == "disposed"
    view.apply("cases", b"A1", b"not json")  # skipped, not fatal
    assert view.cases["A1"].status == "disposed"


def test_suppressions_come_and_go_with_their_tombstones() -> None:
    view = AlertStateView()
    view.apply("suppressions", b"S1", msgspec.json.encode(_suppression("S1")))
    view.apply("suppressions", b"S2", msgspec.json.encode(_suppression("S2", typology="fund_pool")))
    assert [s.id for s in view.suppressions_of("large_value")] == ["S1"]
    view.apply("suppressions", b"S1", None)
    assert view.suppressions_of("large_value") == []


class Recorder:
    def __init__(self) -> None:
        self.inserted: list[tuple[str, list]] = []
        self.sent: list[tuple[bytes, bytes]] = []

    async def insert(self, table: str, columns: tuple[str, ...], rows: list[list]) -> None:
        assert columns == AUDIT_COLUMNS
        self.inserted.append((table, rows))

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


def _overlay(view: AlertStateView, recorder: Recorder) -> AlertOverlay:
    ready = asyncio.Event()
    ready.set()
    return AlertOverlay(view, ready, recorder.insert, recorder.send, clock=lambda: NOW)


def test_a_figures_update_keeps_the_desks_status_and_counts_its_revisions() -> None:
    view, recorder = AlertStateView(), Recorder()
    view.apply("cases", b"A1", _case(status="acknowledged", severity="medium", bumps=1, seq=5))
    [(event, emitted)] = asyncio.run(_overlay(view, recorder)([("updated", alert(revision=2))]))
    assert (event, emitted.status, emitted.revision) == ("updated", "acknowledged", 3)
    assert recorder.inserted == [] and recorder.sent == []


def test_a_disposed_alert_that_worsens_reopens_audited_as_the_system() -> None:
    view, recorder = AlertStateView(), Recorder()
    view.apply(
        "cases", b"A1", _case(status="disposed", disposition="rectify", severity="medium", bumps=2, seq=5)
    )
    overlay = _overlay(view, recorder)
    [(_, emitted)] = asyncio.run(overlay([("updated", alert(revision=2, severity="high"))]))
    assert (emitted.status, emitted.disposition, emitted.revision) == ("open", None, 4)
    assert emitted.reopened_reason == "severity rose from medium to high after disposal"
    [(table, [row])] = recorder.inserted
    row = dict(zip(AUDIT_COLUMNS, row, strict=True))
    assert table.endswith(".alert_actions")
    assert (row["actor_role"], row["actor_id"], row["action"], row["previous_status"], row["new_status"]) == (
        "system", "", "reopen", "disposed", "open")  # fmt: skip
    assert row["reason"] == emitted.reopened_reason
    [(key, value)] = recorder.sent
    assert key == b"A1" and msgspec.json.decode(value, type=AlertCase).status == "open"
    # kept at once: the next update, before the echo comes back, reopens nothing more
    [(_, later)] = asyncio.run(overlay([("updated", alert(revision=3, severity="critical"))]))
    assert later.status == "open" and len(recorder.inserted) == 1


def test_a_suppressed_alert_is_marked_for_the_dispatcher() -> None:
    view, recorder = AlertStateView(), Recorder()
    view.apply("suppressions", b"S1", msgspec.json.encode(_suppression("S1")))
    [(_, emitted)] = asyncio.run(_overlay(view, recorder)([("created", alert())]))
    assert (emitted.suppressed, emitted.suppression_id) == (True, "S1")
    data = msgspec.json.decode(msgspec.json.encode(emitted))
    assert data["suppressed"] is True  # the field the dispatcher reads: data.suppressed
    view.apply("suppressions", b"S1", None)
    [(_, emitted)] = asyncio.run(_overlay(view, recorder)([("updated", alert())]))
    assert emitted.suppressed is False


def test_an_overlay_waits_a_bounded_time_for_the_topics_at_start(monkeypatch) -> None:
    import streams.alert_state as module

    monkeypatch.setattr(module, "CATCH_UP_TIMEOUT_S", 0.05)
    overlay = AlertOverlay(AlertStateView(), asyncio.Event(), Recorder().insert, Recorder().send)
    [(_, emitted)] = asyncio.run(overlay([("created", alert())]))
    assert emitted.status == "open"


def test_an_update_that_raced_a_desks_action_is_written_again_with_its_case() -> None:
    # the gateway read the alert, this worker wrote an update with the case from before, and then
    # the action's case arrived: the update is written again, one revision on, with the new case
    async def scenario() -> list:
        view, recorder, again = AlertStateView(), Recorder(), []
        view.apply("cases", b"A1", _case(status="acknowledged", severity="low", bumps=1, seq=5))
        overlay = _overlay(view, recorder)

        async def reemit(changed) -> None:
            again.extend(await overlay(changed))

        overlay.reemit = reemit
        [(_, stale)] = await overlay([("updated", alert(revision=2, severity="low"))])
        assert (stale.status, stale.revision) == ("acknowledged", 3)
        # the action read revision 2 and wrote 3: it did not see this worker's 3
        disposed = _case(
            status="disposed", disposition="close", severity="low", bumps=2, revision=3, seq=time.time_ns()
        )
        view.apply("cases", b"A1", disposed)
        view.apply("cases", b"A1", disposed)  # the same again (a republish): nothing more
        await asyncio.sleep(0.01)
        return again

    [(event, fixed)] = asyncio.run(scenario())
    assert (event, fixed.status, fixed.disposition, fixed.revision) == ("updated", "disposed", "close", 4)


def test_an_action_that_saw_the_last_update_writes_nothing_again() -> None:
    async def scenario() -> list:
        view, again = AlertStateView(), []
        overlay = _overlay(view, Recorder())

        async def reemit(changed) -> None:
            again.extend(changed)

        overlay.reemit = reemit
        await overlay([("updated", alert())])
        # revision 1 was emitted; the action read it and wrote 2
        acknowledged = _case(
            status="acknowledged", severity="medium", bumps=1, revision=2, seq=time.time_ns()
        )
        view.apply("cases", b"A1", acknowledged)
        await asyncio.sleep(0.01)
        return again

    assert asyncio.run(scenario()) == []
