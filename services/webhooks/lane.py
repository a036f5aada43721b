"""One subscription's lane (services/webhooks/dispatcher.py): its messages in a queue ordered by
due time, delivered by a task of its own with at most ``concurrency`` requests in flight, so a
slow or dead subscriber delays only its own messages."""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import TYPE_CHECKING, Any

from schemas.fields import parse_time
from services.webhooks.store import Delivery

if TYPE_CHECKING:
    from services.webhooks.dispatcher import Dispatcher


class Lane:
    """One subscription's messages, delivered by its own task."""

    def __init__(self, dispatcher: Dispatcher, subscription: dict[str, Any]) -> None:
        self.dispatcher = dispatcher
        self.subscription = subscription  # also sets the created time below
        self.due: list[tuple[float, int, Delivery]] = []
        self.in_flight: dict[str, tuple[asyncio.Task, Delivery]] = {}
        self._wake = asyncio.Event()
        self._seq = 0
        self.task = asyncio.create_task(self._run(), name=f"webhook-lane-{subscription['id']}")

    @property
    def subscription(self) -> dict[str, Any]:
        return self._subscription

    @subscription.setter
    def subscription(self, doc: dict[str, Any]) -> None:
        self._subscription = doc
        # read for every alert against every lane: parsed once per document, not per alert
        self.created_at = parse_time(doc["created_at"]).timestamp()

    @property
    def id(self) -> str:
        return str(self.subscription["id"])

    def __len__(self) -> int:
        return len(self.due) + len(self.in_flight)

    def push(self, delivery: Delivery) -> None:
        self._seq += 1
        heapq.heappush(self.due, (delivery.next_attempt_at, self._seq, delivery))
        self._wake.set()

    async def _run(self) -> None:
        limit = self.dispatcher.config.concurrency
        while True:
            now = time.time()
            while self.due and self.due[0][0] <= now and len(self.in_flight) < limit:
                _, _, delivery = heapq.heappop(self.due)
                task = asyncio.create_task(self.dispatcher.attempt(self, delivery))
                self.in_flight[delivery.webhook_id] = (task, delivery)
                task.add_done_callback(lambda _t, wid=delivery.webhook_id: self._done(wid))
            wait = None
            if self.due and len(self.in_flight) < limit:
                wait = max(0.0, self.due[0][0] - time.time())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    def _done(self, webhook_id: str) -> None:
        self.in_flight.pop(webhook_id, None)
        self._wake.set()

    def stop(self) -> list[Delivery]:
        """Stop the lane and its requests in flight; every message it held."""
        self.task.cancel()
        held = [d for _, _, d in self.due] + [d for _, d in self.in_flight.values()]
        for task, _ in self.in_flight.values():
            task.cancel()
        self.due.clear()
        self.in_flight.clear()
        return held
