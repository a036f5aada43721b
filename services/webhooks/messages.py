"""From alert revisions to stored webhook messages: the notification policy (notify.py) applied
to the subscriptions' lanes, with its memory kept in ClickHouse.

What each subscription was sent is the delivery log itself (``deliveries``: every message names
its alert, revision, severity and the alert's status, and when it was made), so the memory needs
no table of its own: an alert the policy does not hold in memory is looked up there when a
revision of it comes (DeliveryStore.heard), and a restarted dispatcher knows what it sent before.

Held-back figures updates are not stored: they are recomputed. A held update is by definition a
revision newer than the one its subscriber was sent, and ``alerts`` FINAL holds every alert's
newest revision (the worker writes it there before it puts it on the topic). So at start the
dispatcher reads the alerts updated since a little before it last worked (the interval, plus
CLOCK_GRACE_S for clocks that differ, before the earlier of its last write to ``deliveries`` and
the newest alert update, and never more than RECONCILE_MAX_S back) and offers each to the policy
as if it came off the topic: one already sent is skipped, a figures update is held until its
interval (counted from the message made before the restart) ends, a creation or a status change
the topic lost with a memory-only broker is sent at once; an alert a subscription never heard of
counts only if it was updated after the subscription was made (the topic may have brought it just
before, within the clock grace, and it was not theirs then). A message and its memory go to
ClickHouse before the topic offset that made them is committed, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.alerts import AlertData, encode_event, to_event
from schemas.ddl import DATABASE
from services.storage.base import StorageError
from services.webhooks import metrics
from services.webhooks.notify import Notice, Notifier
from services.webhooks.policy import matches, webhook_id
from services.webhooks.store import Delivery, DeliveryStore

log = logging.getLogger("fundwatch.dispatcher")

# A subscription receives the alerts raised from its creation on. Clocks of the worker that
# stamped an alert and of the gateway that stamped the subscription may differ this much.
CLOCK_GRACE_S = 60.0
RECONCILE_MAX_S = 86400.0  # beyond a day away, the topic (a real Kafka) is the only catch-up
PRUNE_EVERY_S = 30.0
_CHUNK = 500  # alert documents per query at start

_alert_decoder = msgspec.json.Decoder(AlertData)


def _epoch(value: datetime) -> float:
    return value.replace(tzinfo=UTC).timestamp() if value.tzinfo is None else value.timestamp()


class MessageMaker:
    """Decides, with the policy, which revisions become messages, and stores them; one at a time
    (the topic's batches, the held updates coming due, the start-up reconciliation)."""

    def __init__(self, storage: Any, deliveries: DeliveryStore, notifier: Notifier) -> None:
        self.storage = storage
        self.deliveries = deliveries
        self.notifier = notifier
        self._lock = asyncio.Lock()
        self._pruned_at = 0.0

    @staticmethod
    def takers(alert: Any, stamp: float, lanes: Mapping[str, Any]) -> list[str]:
        """The subscriptions that take this revision: live, made before it, their filter passed.
        None takes a revision a suppression holds back (``suppressed``, CONTRACT.md §2): it is
        stored and listed, not delivered, and an update held for it is dropped."""
        if getattr(alert, "suppressed", False):
            return []
        return [
            sid
            for sid, lane in lanes.items()
            if not lane.subscription.get("disabled_at")
            and stamp >= lane.created_at - CLOCK_GRACE_S
            and matches(lane.subscription.get("filter") or {}, alert)
        ]

    async def offer(
        self,
        alerts: Iterable[tuple[AlertData, float]],
        lanes: Mapping[str, Any],
        now: float,
        from_table: bool = False,
    ) -> list[Delivery]:
        """Revisions read off the topic (or, ``from_table``, from ``alerts`` at start), with their
        stamps: the messages made of them, stored."""
        newest: dict[str, tuple[AlertData, float]] = {}
        for alert, stamp in alerts:
            # of one alert's revisions in a batch only the newest counts: it carries every change
            seen = newest.get(alert.alert_id)
            if seen is None or alert.revision > seen[0].revision:
                newest[alert.alert_id] = (alert, stamp)
        async with self._lock:
            offered = [(alert, self.takers(alert, stamp, lanes)) for alert, stamp in newest.values()]
            await self._recall([alert for alert, takers in offered if takers], now, every=from_table)
            if from_table:
                # The table holds alerts the topic brought before a subscription existed, within
                # the clock grace of its creation: one the subscription never heard of must be
                # newer than the subscription itself.
                offered = [
                    (alert, [sid for sid in takers
                             if self.notifier.heard(alert.alert_id, sid) or stamp >= lanes[sid].created_at])
                    for (alert, takers), (_, stamp) in zip(offered, newest.values(), strict=True)
                ]  # fmt: skip
            notices = []
            for alert, takers in offered:
                notices.extend(self.notifier.offer(alert, takers, now))
            for alert, _ in offered:
                self.notifier.see(alert, now)
            notices.extend(self.notifier.due(now))  # windows these alerts closed
            metrics.HELD.set(self.notifier.held())
            return await self._store(notices, lanes, now)

    async def flush(self, lanes: Mapping[str, Any], now: float) -> list[Delivery]:
        """Held updates come due: their interval ended, or their window closed."""
        async with self._lock:
            made = await self._store(self.notifier.due(now), lanes, now)
            if now - self._pruned_at >= PRUNE_EVERY_S:
                self._pruned_at = now
                self.notifier.prune(now)
            metrics.HELD.set(self.notifier.held())
            return made

    async def reconcile(self, lanes: Mapping[str, Any], now: float) -> list[Delivery]:
        """At start: the alerts updated lately, offered again from ``alerts`` FINAL (held updates
        recomputed, revisions a memory-only broker lost sent); the messages made of them."""
        rows = await self.storage.query(f"SELECT max(updated_at), max(window_start) FROM {DATABASE}.alerts")
        if not rows or not lanes:
            return []
        newest, event_time = _epoch(rows[0][0]), _epoch(rows[0][1])
        if newest <= 0:
            return []  # no alert yet
        written = await self.deliveries.last_written()
        anchor = newest if written is None else min(newest, written)
        since = max(anchor - self.notifier.interval - CLOCK_GRACE_S, newest - RECONCILE_MAX_S)
        recent = await self.storage.query(
            f"""SELECT alert_id, any(typology), argMax(severity, version), any(region), max(updated_at)
                FROM {DATABASE}.alerts WHERE updated_at >= %(since)s GROUP BY alert_id""",
            {"since": datetime.fromtimestamp(since, UTC)},
        )
        wanted = []
        for alert_id, typology, severity, region, updated_at in recent:
            routed = _Row(typology, severity, region)
            if self.takers(routed, _epoch(updated_at), lanes):
                wanted.append((alert_id, _epoch(updated_at)))
        stamps = dict(wanted)
        alerts: list[tuple[AlertData, float]] = []
        for start in range(0, len(wanted), _CHUNK):
            ids = tuple(alert_id for alert_id, _ in wanted[start : start + _CHUNK])
            docs = await self.storage.query(
                f"SELECT doc FROM {DATABASE}.alerts FINAL WHERE alert_id IN %(ids)s", {"ids": ids}
            )
            alerts.extend(
                (alert, stamps[alert.alert_id]) for alert in map(_alert_decoder.decode, (d for (d,) in docs))
            )
        # offered together, then event time moves to the newest the table knows: an update held
        # when its window closed while the dispatcher was away goes out now
        made = await self.offer(alerts, lanes, now, from_table=True)
        async with self._lock:
            self.notifier.advance(event_time, now)
            made += await self._store(self.notifier.due(now), lanes, now)
        log.info(
            "notification memory rebuilt alerts_read=%d alerts_offered=%d messages=%d held=%d",
            len(recent), len(wanted), len(made), self.notifier.held(),
        )  # fmt: skip
        return made

    async def _recall(self, alerts: list[AlertData], now: float, every: bool = False) -> None:
        """Load from the delivery log what was sent of alerts the memory does not hold. Off the
        topic a first revision is taken as never sent (a replay of one is caught by its message
        id); at start, ``every``, it is looked up too, so its interval counts from its message."""
        missing = [a for a in alerts if (every or a.revision > 1) and not self.notifier.knows(a.alert_id)]
        if not missing:
            return
        heard = await self.deliveries.heard([a.alert_id for a in missing])
        for alert in missing:
            self.notifier.load(alert, heard.get(alert.alert_id, {}), now)

    async def _store(self, notices: list[Notice], lanes: Mapping[str, Any], now: float) -> list[Delivery]:
        made: list[Delivery] = []
        bodies: dict[tuple[str, int], str] = {}
        for notice in notices:
            lane = lanes.get(notice.subscription_id)
            if lane is None or lane.subscription.get("disabled_at"):
                continue  # went while the update was held
            alert = notice.alert
            key = (alert.alert_id, alert.revision)
            if key not in bodies:  # masked once, for everyone outside (DOMAIN.md, Personal data)
                bodies[key] = encode_event(to_event(alert, masked=True)).decode("utf-8")
            made.append(
                Delivery(
                    webhook_id=webhook_id(notice.subscription_id, alert.alert_id, alert.revision),
                    subscription_id=notice.subscription_id,
                    alert_id=alert.alert_id,
                    revision=alert.revision,
                    typology=alert.typology,
                    severity=alert.severity,
                    created_at=now,
                    next_attempt_at=now,
                    body=bodies[key],
                    alert_status=alert.status,
                    reason=notice.reason,
                )
            )
            metrics.NOTICES.labels(notice.reason).inc()
        if not made:
            return []
        delay = 0.5
        while True:
            # The policy counts these as sent already: ClickHouse being away must hold the
            # dispatcher back (the topic offset stays uncommitted), not lose them.
            try:
                # made before the restart of a dispatcher that re-read the topic: not made twice
                known = await self.deliveries.known([d.webhook_id for d in made])
                fresh = [d for d in made if d.webhook_id not in known]
                await self.deliveries.save(fresh, first=True)
                return fresh
            except StorageError as error:
                log.error("storing webhook messages failed messages=%d retry_in_s=%.1f error=%s",
                          len(fresh), delay, error)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


class _Row(msgspec.Struct, frozen=True):
    """What a filter reads of an alert, from the alerts table's columns."""

    typology: str
    severity: str
    region: str
