"""When a subscriber hears of an alert (CONTRACT.md §5): the notification policy as plain state
and functions, no I/O, so every rule is tested directly.

Alerts are state, notifications are a policy (DESIGN.md). The worker writes every revision of an
alert to ClickHouse and to the alerts topic; for each (subscription, alert) the dispatcher makes
a message of a revision only when:

- the subscription takes the alert for the first time (``new``): its creation, or the first
  revision that passes the subscription's filter (say its severity rose to ``min_severity``);
- its status differs from the one the subscription was last sent (``status``): a desk
  acknowledged, assigned, disposed or reopened it;
- its severity differs from the one last sent (``severity``);
- its figures alone changed and the last message about it to that subscription was made
  ``interval`` seconds ago or more (``figures``). A figures update within the interval is held
  back; a newer revision replaces it, and the newest goes out when the interval ends
  (``interval_end``): the last revision is always sent, never dropped. This is Alertmanager's
  ``group_interval`` per alert: at most one figures-only message per alert and interval;
- its window closes (``window_closed``): once the alert's ``window_end`` plus the detectors'
  allowed lateness (models/detectors/common.ALLOWED_LATENESS, 2 days of event time) lies behind
  the newest event time the dispatcher has seen, a figures update held back goes out at once
  instead of at the interval's end, so the subscriber has the final figures as soon as no record
  can change them. The event time is the newest ``window_start`` of the alerts read (a window
  starts no later than its records), never ahead of the clock. An alert whose window closed
  before its held update was made follows the interval rule: a late change is not a final one.

A revision no newer than the one last sent (a replay) or the one held is ignored. A revision
that no longer passes the filter (its severity fell below ``min_severity``) drops a held one:
the newest state is not that subscriber's to hear, and an older one would mislead.

What the subscriptions were sent (``Heard``) is kept per alert while the alert is busy and
forgotten once it has been quiet a while with nothing held; the caller loads it again from the
delivery log when the alert comes back (services/webhooks/messages.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from models.detectors.common import ALLOWED_LATENESS
from schemas.alerts import AlertData
from schemas.fields import epoch_seconds

NOTIFY_INTERVAL_S = 300.0  # FUNDWATCH_NOTIFY_INTERVAL_S, like Alertmanager's group_interval

# Why a message was made (the delivery log shows it).
NEW, STATUS, SEVERITY, FIGURES, INTERVAL_END, WINDOW_CLOSED = (
    "new", "status", "severity", "figures", "interval_end", "window_closed",
)  # fmt: skip
HOLD, SKIP = "hold", "skip"

# An alert with nothing held and no revision for this long is forgotten (its memory comes back
# from the delivery log if it changes again): busy alerts stay, the memory stays bounded. One
# whose window has closed goes after one interval.
FORGET_AFTER_S = 3600.0


@dataclass(slots=True)
class Heard:
    """The newest message made for one (subscription, alert)."""

    revision: int
    severity: str
    status: str
    at: float  # wall clock, when the message was made


@dataclass(slots=True)
class Notice:
    """A message to make: this revision of the alert, to this subscription, for this reason."""

    subscription_id: str
    alert: AlertData
    reason: str


@dataclass(slots=True)
class _Held:
    alert: AlertData
    due: float
    seq: int  # names this hold in the queues, so an entry left by an earlier one is told apart


@dataclass(slots=True)
class _Notes:
    """What one alert's subscribers were sent and what is held back for them."""

    closes_at: float  # window_end + allowed lateness, event time
    touched: float
    heard: dict[str, Heard] = field(default_factory=dict)
    held: dict[str, _Held] = field(default_factory=dict)


def decide(heard: Heard | None, alert: AlertData, now: float, interval: float) -> str:
    """What a subscription that was last sent ``heard`` gets of ``alert`` now: a reason to send
    it at once, ``HOLD`` (a figures update within the interval) or ``SKIP`` (nothing new)."""
    if heard is None:
        return NEW
    if alert.revision <= heard.revision:
        return SKIP
    if alert.status != heard.status:
        return STATUS
    if alert.severity != heard.severity:
        return SEVERITY
    if now >= heard.at + interval:
        return FIGURES
    return HOLD


def closes_at(alert: AlertData) -> float:
    """When (event time) no record can change the alert's window any more."""
    return float(epoch_seconds(alert.window_end) + ALLOWED_LATENESS)


class Notifier:
    """The policy's memory: per alert, per subscription, what was sent and what is held."""

    def __init__(self, interval: float = NOTIFY_INTERVAL_S) -> None:
        self.interval = interval
        self.mark = 0.0  # the newest event time seen (a window_start), never ahead of the clock
        self._alerts: dict[str, _Notes] = {}
        # (due, seq, alert_id, subscription_id) of held updates, and (closes_at, ...) of the
        # windows they wait in; an entry whose hold went meanwhile is skipped when it comes up
        self._due: list[tuple[float, int, str, str]] = []
        self._closing: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._held = 0  # held updates in all, kept as they come and go (read often, for metrics)

    # --- memory -------------------------------------------------------------------------------

    def knows(self, alert_id: str) -> bool:
        return alert_id in self._alerts

    def load(self, alert: AlertData, heard: dict[str, Heard], now: float) -> None:
        """What the subscriptions were sent of ``alert``, as the delivery log has it."""
        notes = self._alerts.get(alert.alert_id)
        if notes is None:
            self._alerts[alert.alert_id] = _Notes(closes_at(alert), now, dict(heard))
            return
        for sid, seen in heard.items():  # whichever is newer: the log's or this process's
            mine = notes.heard.get(sid)
            if mine is None or seen.revision > mine.revision:
                notes.heard[sid] = seen

    def heard(self, alert_id: str, subscription_id: str) -> Heard | None:
        notes = self._alerts.get(alert_id)
        return notes.heard.get(subscription_id) if notes else None

    def held(self) -> int:
        return self._held

    def forget_subscription(self, subscription_id: str) -> None:
        for notes in self._alerts.values():
            notes.heard.pop(subscription_id, None)
            self._unhold(notes, subscription_id)

    def prune(self, now: float) -> int:
        """Forget alerts quiet long enough with nothing held; how many went."""
        gone = [
            alert_id
            for alert_id, notes in self._alerts.items()
            if not notes.held
            and notes.touched
            <= now - (self.interval if notes.closes_at <= self.mark else max(FORGET_AFTER_S, self.interval))
        ]
        for alert_id in gone:
            del self._alerts[alert_id]
        return len(gone)

    # --- the policy ---------------------------------------------------------------------------

    def see(self, alert: AlertData, now: float) -> None:
        """Event time moves on with the alerts read: the newest window start, not past the clock."""
        self.advance(float(epoch_seconds(alert.window_start)), now)

    def advance(self, event_time: float, now: float) -> None:
        self.mark = max(self.mark, min(event_time, now))

    def offer(self, alert: AlertData, takers: Iterable[str], now: float) -> list[Notice]:
        """A revision of ``alert`` that the subscriptions ``takers`` take (their filter passes):
        the messages to make now. Held updates of subscriptions that do not take it are dropped.

        The caller moves event time on (``see``) after offering a batch of revisions, so that
        whether a held update was made before its window closed does not depend on the order of
        the alerts in the batch."""
        takers = set(takers)
        notes = self._alerts.get(alert.alert_id)
        if notes is None:
            if not takers:
                return []  # nobody to tell and nothing to remember
            notes = self._alerts[alert.alert_id] = _Notes(closes_at(alert), now)
        notes.touched = now
        notes.closes_at = closes_at(alert)
        for sid in [sid for sid in notes.held if sid not in takers]:
            self._unhold(notes, sid)
        notices = []
        for sid in sorted(takers):
            held = notes.held.get(sid)
            if held is not None and alert.revision <= held.alert.revision:
                continue
            heard = notes.heard.get(sid)
            verdict = decide(heard, alert, now, self.interval)
            if verdict == SKIP:
                continue
            if verdict != HOLD:
                notices.append(self._sent(notes, sid, alert, verdict, now))
                continue
            assert heard is not None  # only a subscription sent something can be held back
            if held is not None:
                held.alert = alert  # the newest waits in its place, due when the first was
                continue
            self._seq += 1
            due = heard.at + self.interval
            notes.held[sid] = _Held(alert, due, self._seq)
            self._held += 1
            heapq.heappush(self._due, (due, self._seq, alert.alert_id, sid))
            if notes.closes_at > self.mark:  # closed already: a late change waits its interval
                heapq.heappush(self._closing, (notes.closes_at, self._seq, alert.alert_id, sid))
        return notices

    def due(self, now: float) -> list[Notice]:
        """Held updates whose window has closed or whose interval has ended by now."""
        notices = []
        while self._closing and self._closing[0][0] <= self.mark:
            _, seq, alert_id, sid = heapq.heappop(self._closing)
            notices.extend(self._release(alert_id, sid, seq, WINDOW_CLOSED, now))
        while self._due and self._due[0][0] <= now:
            _, seq, alert_id, sid = heapq.heappop(self._due)
            notices.extend(self._release(alert_id, sid, seq, INTERVAL_END, now))
        return notices

    def _release(self, alert_id: str, sid: str, seq: int, reason: str, now: float) -> list[Notice]:
        notes = self._alerts.get(alert_id)
        held = notes.held.get(sid) if notes is not None else None
        if held is None or held.seq != seq:
            return []  # sent or dropped meanwhile (and perhaps held again since)
        return [self._sent(notes, sid, held.alert, reason, now)]

    def _sent(self, notes: _Notes, sid: str, alert: AlertData, reason: str, now: float) -> Notice:
        notes.heard[sid] = Heard(alert.revision, alert.severity, alert.status, now)
        self._unhold(notes, sid)
        return Notice(sid, alert, reason)

    def _unhold(self, notes: _Notes, sid: str) -> None:
        if notes.held.pop(sid, None) is not None:
            self._held -= 1
