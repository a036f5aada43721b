"""The notification policy (services/webhooks/notify.py, CONTRACT.md §5): which revisions of an
alert a subscriber hears of, and when."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from types import SimpleNamespace

import msgspec
import pytest

from models.detectors.common import ALLOWED_LATENESS
from schemas.alerts import AlertData, DetectorInfo, Evidence, Explanation
from schemas.fields import epoch_seconds
from services.webhooks.messages import MessageMaker
from services.webhooks.notify import (
    FIGURES,
    HOLD,
    INTERVAL_END,
    NEW,
    SEVERITY,
    SKIP,
    STATUS,
    WINDOW_CLOSED,
    Heard,
    Notifier,
    decide,
)
from services.webhooks.policy import matches

INTERVAL = 300.0
T0 = 1_800_000_000.0  # wall clock; far after the alerts' event time, so windows close by event time only
DAY_START = "2026-11-20T00:00:00Z"
DAY_END = "2026-11-21T00:00:00Z"


def alert(revision: int = 1, **changes) -> AlertData:
    base = AlertData(
        alert_id="a-1",
        typology="misappropriation",
        severity="high",
        score=0.7,
        institution_id="I1",
        region="220102",
        accounts=["6222000011112222"],
        amount="1000000.00",
        window_start=DAY_START,
        window_end=DAY_END,
        evidence=Evidence(record_ids=["r1"], metrics={}, thresholds={}),
        explanation=Explanation(zh="挪用", en="misappropriation"),
        detector=DetectorInfo(name="misappropriation", version="1"),
        revision=revision,
    )
    return msgspec.structs.replace(base, **changes)


def tick(revision: int, **changes) -> AlertData:
    """A figures-only update: one more record in the day's total."""
    return alert(revision, amount=f"{1_000_000 + revision * 1000}.00", **changes)


def sent(notices) -> list[tuple[str, int, str]]:
    return [(n.subscription_id, n.alert.revision, n.reason) for n in notices]


# --- the decision for one subscription --------------------------------------------------------


def test_decide_reads_what_was_last_sent():
    heard = Heard(revision=3, severity="high", status="open", at=T0)
    assert decide(None, alert(7), T0, INTERVAL) == NEW
    assert decide(heard, alert(3), T0 + 1, INTERVAL) == SKIP
    assert decide(heard, alert(2), T0 + 1000, INTERVAL) == SKIP  # a replay, however late
    assert decide(heard, alert(4, status="acknowledged"), T0 + 1, INTERVAL) == STATUS
    assert decide(heard, alert(4, severity="critical"), T0 + 1, INTERVAL) == SEVERITY
    assert decide(heard, tick(4), T0 + 1, INTERVAL) == HOLD
    assert decide(heard, tick(4), T0 + INTERVAL, INTERVAL) == FIGURES


# --- one subscription through an alert's life --------------------------------------------------


def test_a_new_alert_is_sent_at_once():
    notifier = Notifier(INTERVAL)
    assert sent(notifier.offer(alert(1), ["s1", "s2"], T0)) == [("s1", 1, NEW), ("s2", 1, NEW)]


def test_figures_ticks_within_the_interval_are_held_then_sent_once_with_the_newest_revision():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    for revision in range(2, 40):  # a busy day: 38 updates in about a minute
        assert notifier.offer(tick(revision), ["s1"], T0 + revision) == []
    assert notifier.held() == 1
    assert notifier.due(T0 + INTERVAL - 1) == []
    assert sent(notifier.due(T0 + INTERVAL)) == [("s1", 39, INTERVAL_END)]
    assert notifier.held() == 0 and notifier.due(T0 + 10 * INTERVAL) == []
    # the next tick counts its interval from that message
    assert notifier.offer(tick(40), ["s1"], T0 + INTERVAL + 5) == []
    assert sent(notifier.due(T0 + 2 * INTERVAL)) == [("s1", 40, INTERVAL_END)]


def test_a_figures_tick_after_a_quiet_interval_goes_at_once():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    assert sent(notifier.offer(tick(2), ["s1"], T0 + INTERVAL + 1)) == [("s1", 2, FIGURES)]


def test_a_severity_change_is_sent_at_once_and_takes_the_held_update_with_it():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    notifier.offer(tick(2), ["s1"], T0 + 10)
    assert sent(notifier.offer(tick(3, severity="critical"), ["s1"], T0 + 20)) == [("s1", 3, SEVERITY)]
    assert notifier.held() == 0
    assert notifier.due(T0 + INTERVAL) == []  # the held revision 2 is not sent after its successor
    # a tick after it waits for the interval counted from the severity message
    assert notifier.offer(tick(4, severity="critical"), ["s1"], T0 + 30) == []
    assert notifier.due(T0 + 20 + INTERVAL - 1) == []
    assert sent(notifier.due(T0 + 20 + INTERVAL)) == [("s1", 4, INTERVAL_END)]


@pytest.mark.parametrize("status", ["acknowledged", "assigned", "disposed"])
def test_a_status_change_is_sent_at_once(status):
    # an action is written as a new revision with its status (CONTRACT.md §2 alert actions)
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    assert sent(notifier.offer(alert(2, status=status), ["s1"], T0 + 1)) == [("s1", 2, STATUS)]
    assert sent(notifier.offer(alert(3, status="open"), ["s1"], T0 + 2)) == [("s1", 3, STATUS)]


def test_replays_are_silent():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    notifier.offer(tick(5), ["s1"], T0 + 1)
    for revision in (1, 3, 5):
        assert notifier.offer(tick(revision), ["s1"], T0 + 2) == []
    assert sent(notifier.due(T0 + INTERVAL)) == [("s1", 5, INTERVAL_END)]


def test_each_subscription_has_its_own_interval():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    # s2 takes the alert only from revision 2 on (its severity filter, say): new to it
    assert sent(notifier.offer(tick(2), ["s1", "s2"], T0 + 100)) == [("s2", 2, NEW)]
    notifier.offer(tick(3), ["s1", "s2"], T0 + 200)
    assert sent(notifier.due(T0 + INTERVAL)) == [("s1", 3, INTERVAL_END)]
    assert sent(notifier.due(T0 + 100 + INTERVAL)) == [("s2", 3, INTERVAL_END)]


def test_a_revision_that_no_longer_passes_the_filter_drops_the_held_one():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    notifier.offer(tick(2), ["s1"], T0 + 1)
    assert notifier.offer(tick(3, severity="low"), [], T0 + 2) == []  # below its min_severity
    assert notifier.held() == 0 and notifier.due(T0 + INTERVAL) == []


def test_a_deleted_subscription_is_forgotten():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    notifier.offer(tick(2), ["s1"], T0 + 1)
    notifier.forget_subscription("s1")
    assert notifier.held() == 0 and notifier.due(T0 + INTERVAL) == []


# --- the window closes -------------------------------------------------------------------------


def later_alert(alert_id: str, days: int) -> AlertData:
    """Another alert, ``days`` after the first one's day: it moves the event time on."""
    start = datetime.fromtimestamp(epoch_seconds(DAY_START) + days * 86400, UTC)
    text = start.isoformat().replace("+00:00", "Z")
    return alert(1, alert_id=alert_id, window_start=text, window_end=text)


def test_when_the_window_closes_the_held_update_goes_at_once():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    notifier.offer(tick(2), ["s1"], T0 + 1)
    # event time reaches the day's end plus the allowed lateness: 1 day + 2 days after its start
    assert epoch_seconds(DAY_END) + ALLOWED_LATENESS == epoch_seconds(DAY_START) + 3 * 86400
    notifier.see(later_alert("b-1", 2), T0 + 2)
    assert notifier.due(T0 + 2) == []  # not yet: one more day of lateness
    notifier.see(later_alert("b-2", 3), T0 + 3)
    assert sent(notifier.due(T0 + 3)) == [("s1", 2, WINDOW_CLOSED)]
    # once closed, a late change is not a final one: it waits for its interval
    assert notifier.offer(tick(3), ["s1"], T0 + 4) == []
    assert notifier.due(T0 + 5) == []
    assert sent(notifier.due(T0 + 3 + INTERVAL)) == [("s1", 3, INTERVAL_END)]


def test_event_time_never_runs_ahead_of_the_clock():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    notifier.offer(tick(2), ["s1"], T0 + 1)
    wall = float(epoch_seconds(DAY_START))  # a clock that reads the alert's own day
    notifier.see(later_alert("far", 400), wall)  # a product window a year ahead, say
    assert notifier.mark == wall
    assert notifier.due(wall) == []


# --- memory: bounded, and rebuilt after a restart ----------------------------------------------


def test_a_restart_keeps_the_memory():
    """What a dispatcher sent before it stopped comes back from the delivery log (DeliveryStore.
    heard gives it as Heard): a tick is held, not sent as new, and the interval runs on."""
    before = Notifier(INTERVAL)
    (first,) = before.offer(alert(1), ["s1"], T0)
    before.offer(tick(2), ["s1"], T0 + 10)  # held when the dispatcher stops: not in the log
    logged = {"s1": Heard(first.alert.revision, first.alert.severity, first.alert.status, T0)}

    after = Notifier(INTERVAL)
    assert not after.knows("a-1")
    after.load(tick(3), logged, T0 + 60)
    # at start the newest state (alerts FINAL) is offered again: held until the interval's end
    assert after.offer(tick(3), ["s1"], T0 + 60) == []
    assert after.offer(alert(1), ["s1"], T0 + 61) == []  # a replay of the creation stays silent
    assert sent(after.due(T0 + INTERVAL)) == [("s1", 3, INTERVAL_END)]
    # a dispatcher down longer than the interval sends the update at once
    late = Notifier(INTERVAL)
    late.load(tick(3), logged, T0 + 900)
    assert sent(late.offer(tick(3), ["s1"], T0 + 900)) == [("s1", 3, FIGURES)]


def test_loading_keeps_the_newer_of_the_log_and_the_memory():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    notifier.offer(alert(2, status="acknowledged"), ["s1"], T0 + 1)
    notifier.load(alert(2), {"s1": Heard(1, "high", "open", T0), "s2": Heard(1, "high", "open", T0)}, T0 + 2)
    assert notifier.heard("a-1", "s1").revision == 2
    assert notifier.heard("a-1", "s2").revision == 1


def test_quiet_alerts_with_nothing_held_are_forgotten():
    notifier = Notifier(INTERVAL)
    notifier.offer(alert(1), ["s1"], T0)
    notifier.offer(alert(1, alert_id="a-2"), ["s1"], T0)
    notifier.offer(tick(2, alert_id="a-2"), ["s1"], T0 + 1)  # held: kept however quiet
    notifier.prune(T0 + 3600 * 2)
    assert not notifier.knows("a-1") and notifier.knows("a-2")


def test_an_alert_nobody_takes_leaves_nothing_behind():
    notifier = Notifier(INTERVAL)
    assert notifier.offer(alert(1), [], T0) == [] and not notifier.knows("a-1")


def test_an_interval_of_zero_sends_every_revision():
    notifier = Notifier(0.0)
    notifier.offer(alert(1), ["s1"], T0)
    assert sent(notifier.offer(tick(2), ["s1"], T0)) == [("s1", 2, FIGURES)]


# --- who takes large-value reports -----------------------------------------------------------


class _Lane:
    def __init__(self, filter_doc: dict, created_at: float = 0.0, disabled: bool = False) -> None:
        self.subscription = {"filter": filter_doc, **({"disabled_at": "x"} if disabled else {})}
        self.created_at = created_at


def test_large_value_reports_go_only_to_subscriptions_that_name_them():
    report = alert(1, typology="large_value", severity="low")
    assert not matches({}, report)
    assert not matches({"region": "22", "min_severity": "low"}, report)
    assert not matches({"typologies": ["misappropriation"]}, report)
    assert matches({"typologies": ["large_value"]}, report)
    assert matches({"typologies": ["misappropriation", "large_value"], "region": "22"}, report)
    assert matches({}, alert(1))  # every other typology still reaches an unfiltered subscription
    lanes = {
        "everything": _Lane({}),
        "desk": _Lane({"region": "2201"}),
        "reports": _Lane({"typologies": ["large_value"]}),
        "later": _Lane({"typologies": ["large_value"]}, created_at=T0 + 3600),
        "off": _Lane({"typologies": ["large_value"]}, disabled=True),
    }
    assert MessageMaker.takers(report, T0, lanes) == ["reports"]
    assert MessageMaker.takers(alert(1), T0, lanes) == ["everything", "desk"]


def test_a_suppressed_revision_goes_to_nobody():
    held_back = SimpleNamespace(
        typology="misappropriation", severity="high", region="220102", suppressed=True
    )
    assert MessageMaker.takers(held_back, T0, {"everything": _Lane({})}) == []


# --- the batches read off the topic ------------------------------------------------------------


class FakeDeliveries:
    """What MessageMaker asks of DeliveryStore: the log's memory, known ids, saving."""

    def __init__(self) -> None:
        self.saved = []

    async def heard(self, alert_ids):
        return {}

    async def known(self, webhook_ids):
        return {d.webhook_id for d in self.saved} & set(webhook_ids)

    async def save(self, deliveries, first=False):
        self.saved.extend(deliveries)


@pytest.mark.parametrize("closing_first", [False, True])
def test_a_batch_that_holds_an_update_and_closes_its_window_sends_it_whatever_the_order(closing_first):
    lanes = {"s1": _Lane({})}
    maker = MessageMaker(None, FakeDeliveries(), Notifier(INTERVAL))

    async def scenario():
        await maker.offer([(alert(1), T0)], lanes, T0)
        batch = [(tick(2), T0 + 1), (tick(3), T0 + 1), (later_alert("b-1", 3), T0 + 1)]
        if closing_first:
            batch.reverse()
        return await maker.offer(batch, lanes, T0 + 1)

    made = asyncio.run(scenario())
    assert sorted((d.alert_id, d.revision, d.reason) for d in made) == [
        ("a-1", 3, WINDOW_CLOSED),
        ("b-1", 1, NEW),
    ]
    assert [d.reason for d in maker.deliveries.saved] == [NEW, *(d.reason for d in made)]
    assert {d.alert_status for d in maker.deliveries.saved} == {"open"}


@pytest.mark.parametrize("seed", range(20))
def test_whatever_comes_the_newest_revision_always_reaches_every_subscriber_and_at_most_once_per_interval(
    seed,
):
    rng = random.Random(seed)
    notifier = Notifier(INTERVAL)
    now, newest = T0, {}
    figures_sent: dict[tuple[str, str], list[float]] = {}
    for _ in range(300):
        now += rng.uniform(0, 40)
        alert_id = rng.choice(["a-1", "a-2", "a-3"])
        revision = newest.get(alert_id, 0) + 1
        severity = rng.choice(["high"] * 8 + ["critical"])
        status = rng.choice(["open"] * 9 + ["acknowledged"])
        newest[alert_id] = revision
        notices = notifier.offer(
            tick(revision, alert_id=alert_id, severity=severity, status=status), ["s1", "s2"], now
        )
        notices += notifier.due(now)
        for notice in notices:
            if notice.reason in (FIGURES, INTERVAL_END):
                figures_sent.setdefault((notice.subscription_id, notice.alert.alert_id), []).append(now)
        assert notifier.held() == sum(len(n.held) for n in notifier._alerts.values())
    notifier.due(now + INTERVAL)
    assert notifier.held() == 0
    for alert_id, revision in newest.items():
        for sid in ("s1", "s2"):
            assert notifier.heard(alert_id, sid).revision == revision
    for times in figures_sent.values():
        assert all(b - a >= INTERVAL - 1e-6 for a, b in zip(times, times[1:], strict=False))
