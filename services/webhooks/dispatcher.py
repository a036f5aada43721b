"""The webhook dispatcher (CONTRACT.md §5): reads the alerts topic, makes the messages the
notification policy asks for (services/webhooks/notify.py: a new alert, a change of severity or
status at once, figures at most once per interval, the last held one at the interval's end or
when the window closes; services/webhooks/messages.py keeps its memory in ClickHouse), and
delivers each, signed, until it is delivered or dead.

Durability: a message is written to ClickHouse before the alerts-topic offset that made it is
committed, and every attempt's outcome is written after it (within ``SAVE_INTERVAL_S``). A
dispatcher that is killed and started again loads the pending messages, rebuilds the policy's
held updates from the alerts' current state, and reads the topic from the last commit; messages
it made already are recognised by their id and not made twice. An attempt cut off by the kill is
made again: delivery is at least once, and receivers dedupe on ``webhook-id``.

Isolation: each subscription has its own lane (a queue ordered by due time, at most
``concurrency`` requests in flight), so a slow or dead subscriber delays only its own messages.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import mode
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError

from schemas.alerts import CLOUDEVENTS_CONTENT_TYPE, AlertData, decode_event
from schemas.messages import ALERTS_TOPIC
from services.storage.async_storage import AsyncStorage
from services.webhooks import metrics
from services.webhooks.guarded_resolver import GuardedResolver
from services.webhooks.lane import Lane
from services.webhooks.messages import MessageMaker
from services.webhooks.notify import NOTIFY_INTERVAL_S, Notifier
from services.webhooks.policy import (
    DELIVERED,
    GONE,
    RetryPolicy,
    judge,
    parse_retry_after,
    signing_keys,
)
from services.webhooks.signing import webhook_headers
from services.webhooks.ssrf import Resolver, UrlRefused, resolve_and_check
from services.webhooks.store import (
    DEAD,
    PENDING,
    Attempt,
    Delivery,
    DeliveryStore,
    SubscriptionStore,
    iso,
)
from streams.lag import LagGauge
from streams.transport import FETCH_MAX_WAIT_MS

log = logging.getLogger("fundwatch.dispatcher")

GROUP_ID = "fundwatch-dispatcher"
SAVE_INTERVAL_S = 0.2
REFRESH_INTERVAL_S = 1.0
NOTIFY_CHECK_S = 0.5  # how often held updates are looked at: they go out this late at most
USER_AGENT = "FundWatch-Webhooks/1"


@dataclass(frozen=True)
class DispatchConfig:
    retry: RetryPolicy
    allow_private: bool = False
    timeout_s: float = 10.0
    concurrency: int = 4  # requests in flight per subscription
    notify_interval_s: float = NOTIFY_INTERVAL_S  # at most one figures-only update per alert and this


class Dispatcher(mode.Service):
    def __init__(
        self,
        storage: AsyncStorage,
        bootstrap: str,
        config: DispatchConfig,
        group_id: str = GROUP_ID,
        resolver: Resolver | None = None,
        rng: random.Random | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bootstrap = bootstrap
        self.config = config
        self.group_id = group_id
        self._lag = LagGauge(group_id)
        self.resolver = resolver
        self.rng = rng or random.Random()
        self.subscriptions = SubscriptionStore(storage)
        self.deliveries = DeliveryStore(storage)
        self.notifier = Notifier(config.notify_interval_s)
        self.maker = MessageMaker(storage, self.deliveries, self.notifier)
        self.lanes: dict[str, Lane] = {}
        self._unsaved: dict[str, Delivery] = {}
        # Subscriptions this process disabled on a 410, until ClickHouse shows it: a refresh that
        # read the document just before the write must not bring the subscription back.
        self._disabled_here: dict[str, dict[str, str]] = {}
        self._refreshed_at = 0.0
        self._refresh_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._session: aiohttp.ClientSession | None = None
        self.ready = asyncio.Event()
        self.alerts_consumed = 0

    # --- start and stop -------------------------------------------------------------------

    async def on_start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.config.allow_private, self.resolver),
            use_dns_cache=False,  # every new connection is resolved and judged again
            limit=0,
            limit_per_host=self.config.concurrency * 4,
        )
        self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT})
        await self.refresh()
        pending = await self.deliveries.pending()
        resumed = 0
        for delivery in pending:
            resumed += self._queue(delivery, time.time())
        # before the topic is read: what the policy held back when the dispatcher stopped, and
        # what a memory-only broker lost, from the alerts' current state
        recomputed = await self.maker.reconcile(self.lanes, time.time())
        for delivery in recomputed:
            self._queue(delivery, time.time())
        metrics.MESSAGES_CREATED.inc(len(recomputed))
        await self._save()
        metrics.PENDING.set(self.pending_count())
        log.info(
            "dispatcher ready subscriptions=%d pending_resumed=%d made_at_start=%d held=%d",
            len(self.lanes), resumed, len(recomputed), self.notifier.held(),
        )  # fmt: skip

    async def on_started(self) -> None:
        self.add_future(self._consume())
        self.add_future(self._save_loop())
        self.add_future(self._refresh_loop())
        self.add_future(self._notify_loop())

    async def on_stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        for lane in self.lanes.values():
            lane.stop()  # cut-off attempts stay pending in ClickHouse and are made again
        await self._save()
        if self._session is not None:
            await self._session.close()

    def pending_count(self) -> int:
        return sum(len(lane) for lane in self.lanes.values())

    # --- subscriptions --------------------------------------------------------------------

    async def refresh(self) -> None:
        """Bring lanes in line with the subscriptions in ClickHouse: new ones get a lane, rotated
        or disabled ones their new document, deleted ones lose their pending messages."""
        async with self._refresh_lock:
            started = time.time()
            docs = {doc["id"]: doc for doc in await self.subscriptions.live()}
            for sid, doc in docs.items():
                marks = self._disabled_here.get(sid)
                if marks is not None:
                    if doc.get("disabled_at"):
                        del self._disabled_here[sid]
                    else:
                        doc = docs[sid] = {**doc, **marks}
                lane = self.lanes.get(sid)
                if lane is None:
                    self.lanes[sid] = Lane(self, doc)
                else:
                    lane.subscription = doc
                if doc.get("disabled_at"):
                    self._kill_lane(self.lanes[sid], "subscription_gone")
            for sid in [sid for sid in self.lanes if sid not in docs]:
                now = time.time()
                for delivery in self.lanes.pop(sid).stop():
                    self._kill(delivery, "subscription_deleted", now)
                self.notifier.forget_subscription(sid)
            self._refreshed_at = started
            active = sum(1 for d in docs.values() if not d.get("disabled_at"))
            metrics.SUBSCRIPTIONS.labels("active").set(active)
            metrics.SUBSCRIPTIONS.labels("disabled").set(len(docs) - active)

    async def _refresh_loop(self) -> None:
        while not self.should_stop:
            await asyncio.sleep(REFRESH_INTERVAL_S)
            try:
                await self.refresh()
            except Exception:  # storage away: keep the lanes as they are and try again
                log.exception("subscription refresh failed")

    def _queue(self, delivery: Delivery, now: float) -> bool:
        """Hand a message to its subscription's lane; dead-letter it if the subscription went or
        was disabled meanwhile (a 410 may come in while a batch of messages is being stored)."""
        lane = self.lanes.get(delivery.subscription_id)
        if lane is None:
            self._kill(delivery, "subscription_deleted", now)
            return False
        if lane.subscription.get("disabled_at"):
            self._kill(delivery, "subscription_gone", now)
            return False
        lane.push(delivery)
        return True

    def _kill_lane(self, lane: Lane, reason: str) -> None:
        now = time.time()
        for _, _, delivery in lane.due:
            self._kill(delivery, reason, now)
        lane.due.clear()

    def _kill(self, delivery: Delivery, reason: str, now: float) -> None:
        delivery.state = DEAD
        delivery.dead_reason = reason
        delivery.next_attempt_at = now
        metrics.DEAD_LETTERS.labels(reason).inc()
        self._unsaved[delivery.webhook_id] = delivery

    # --- intake ---------------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            ALERTS_TOPIC,
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            rebalance_timeout_ms=6_000,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,  # an alert waits no longer than this for its fetch
        )
        await consumer.start()
        self._consumer = consumer
        self.ready.set()
        while not self.should_stop:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
            except KafkaError as error:
                log.error("alerts topic read failed error=%s", error)
                await asyncio.sleep(1.0)
                continue
            records = [record for part in batches.values() for record in part]
            if records:
                await self.take(records)
                await consumer.commit()
            await self._lag.update(consumer)

    async def take(self, records: list[ConsumerRecord]) -> int:
        """Make and store the messages the policy asks for of a batch of alert events; then
        queue them."""
        stamps = [record.timestamp / 1000.0 if record.timestamp and record.timestamp > 0 else time.time()
                  for record in records]  # fmt: skip
        # An alert newer than the last look at the subscriptions may be for one made since.
        if max(stamps) >= self._refreshed_at:
            await self.refresh()
        alerts: list[tuple[AlertData, float]] = []
        for record, stamp in zip(records, stamps, strict=True):
            self.alerts_consumed += 1
            metrics.ALERTS_CONSUMED.inc()
            try:
                alert = decode_event(record.value).data
            except Exception as error:  # not ours to crash on: say which offset, skip it
                log.error(
                    "unreadable alert event partition=%d offset=%d error=%s",
                    record.partition,
                    record.offset,
                    error,
                )
                continue
            alerts.append((alert, stamp))
        now = time.time()
        fresh = await self.maker.offer(alerts, self.lanes, now)
        for delivery in fresh:
            self._queue(delivery, now)
        metrics.MESSAGES_CREATED.inc(len(fresh))
        metrics.PENDING.set(self.pending_count())
        return len(fresh)

    async def _notify_loop(self) -> None:
        """Held figures updates go out when their interval ends or their window closes."""
        while not self.should_stop:
            await asyncio.sleep(NOTIFY_CHECK_S)
            try:
                now = time.time()
                fresh = await self.maker.flush(self.lanes, now)
            except Exception:  # not ours to stop on (storage outages are waited out inside)
                log.exception("sending held alert updates failed")
                continue
            for delivery in fresh:
                self._queue(delivery, now)
            if fresh:
                metrics.MESSAGES_CREATED.inc(len(fresh))
                metrics.PENDING.set(self.pending_count())

    # --- delivery -------------------------------------------------------------------------

    async def attempt(self, lane: Lane, delivery: Delivery) -> None:
        """One POST of one message, and what follows from its answer."""
        assert self._session is not None
        sub = lane.subscription
        body = delivery.body.encode("utf-8")
        started_at = time.time()
        headers = {
            **webhook_headers(signing_keys(sub, started_at), delivery.webhook_id, int(started_at), body),
            "Content-Type": CLOUDEVENTS_CONTENT_TYPE,
        }
        status: int | None = None
        failure: str | None = None
        error: str | None = None
        retry_after: float | None = None
        clock = time.perf_counter()
        metrics.ATTEMPTS.inc()
        try:
            # Judged at every attempt, not only when subscribed: a name can move to a private address.
            await resolve_and_check(sub["url"], self.config.allow_private, self.resolver)
            async with self._session.post(
                sub["url"],
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
            ) as response:
                status = response.status
                if status in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                await response.content.readany()  # a little of the answer; the rest is not ours
        except UrlRefused as refused:
            failure, error = "refused_url", str(refused)
        except TimeoutError:
            failure, error = "timeout", f"no answer within {self.config.timeout_s:g} s"
        except aiohttp.ClientError as problem:
            failure, error = "connection", f"{type(problem).__name__}: {problem}"[:300]
        except OSError as problem:
            failure, error = "connection", f"{type(problem).__name__}: {problem}"[:300]
        elapsed = time.perf_counter() - clock
        metrics.REQUEST_SECONDS.observe(elapsed)
        now = time.time()
        delivery.attempts.append(
            Attempt(at=started_at, duration_ms=round(elapsed * 1000), status=status, error=error)
        )
        outcome, reason = judge(status, failure)
        if outcome == DELIVERED:
            metrics.SUCCESSES.inc()
            metrics.DELIVERY_SECONDS.observe(now - delivery.created_at)
            delivery.state = "delivered"
            delivery.delivered_at = now
            self._unsaved[delivery.webhook_id] = delivery
        else:
            metrics.FAILURES.labels(reason or "connection").inc()
            log.info(
                "webhook attempt failed subscription=%s webhook_id=%s attempt=%d status=%s reason=%s",
                lane.id,
                delivery.webhook_id,
                len(delivery.attempts),
                status,
                reason,
            )
            if outcome == GONE:
                self._kill(delivery, "subscription_gone", now)
                await self._disable(lane, now)
            elif lane.subscription.get("disabled_at"):
                self._kill(delivery, "subscription_gone", now)
            elif self.lanes.get(lane.id) is not lane:
                self._kill(delivery, "subscription_deleted", now)
            else:
                failures = sum(1 for a in delivery.attempts if a.status is None or not 200 <= a.status < 300)
                due = self.config.retry.next_attempt(
                    delivery.created_at, failures, now, self.rng, retry_after
                )
                if due is None:
                    self._kill(delivery, "retries_exhausted", now)
                    log.warning(
                        "webhook message dead-lettered subscription=%s webhook_id=%s attempts=%d",
                        lane.id,
                        delivery.webhook_id,
                        len(delivery.attempts),
                    )
                else:
                    delivery.next_attempt_at = due
                    self._unsaved[delivery.webhook_id] = delivery
                    lane.push(delivery)
        metrics.PENDING.set(self.pending_count())

    async def _disable(self, lane: Lane, now: float) -> None:
        """410 Gone: the subscriber asks for nothing more. The subscription stays, disabled, so
        its owner sees why deliveries stopped."""
        self._kill_lane(lane, "subscription_gone")
        if lane.subscription.get("disabled_at"):
            return  # another attempt in flight met the 410 first
        marks = {"disabled_at": iso(now), "disabled_reason": "the subscriber answered 410 Gone"}
        lane.subscription = {**lane.subscription, **marks}
        self._disabled_here[lane.id] = marks
        # From storage, not the lane's copy: a rotation or a delete since the last refresh must
        # not be undone by writing an older document back.
        found = await self.subscriptions.get(lane.id)
        if found is None:
            self._disabled_here.pop(lane.id, None)
            return
        owner, current = found
        await self.subscriptions.save(owner, {**current, **marks})
        log.warning("subscription disabled on 410 subscription=%s", lane.id)

    # --- saving ---------------------------------------------------------------------------

    async def _save(self) -> None:
        unsaved, self._unsaved = self._unsaved, {}
        if unsaved:
            try:
                await self.deliveries.save(list(unsaved.values()))
            except Exception:
                # Keep them for the next round; newer changes to the same message win.
                self._unsaved = {**unsaved, **self._unsaved}
                raise

    async def _save_loop(self) -> None:
        while not self.should_stop:
            await asyncio.sleep(SAVE_INTERVAL_S)
            try:
                await self._save()
            except Exception:
                log.exception("saving webhook message states failed; retrying")


__all__ = ["GROUP_ID", "DispatchConfig", "Dispatcher", "PENDING"]
