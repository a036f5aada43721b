"""Each partition's messages to the detectors in offset order, or not at all.

The detectors judge a record by the event time the account or institution has reached (a record
whose day is sealed is folded as late), so they must see a partition's messages in the order the
gateway published them. Faust does not always hand them on so: around a rebalance its stream can
drop a message fetched under the older consumer generation and then hand on the ones fetched after
it (streams/transport.py). The dropped one is not acknowledged, so the commit waits at it, and
``streams.lag.StallGuard`` fetches the partition again after a while; meanwhile the messages after
it were folded, and the dropped one, folded at last, was judged late. A worker killed with -9 and
restarted was seen to do this: a ``large_value`` day marked late that an undisturbed run does not
mark.

So each agent admits a message only at the offset it expects on that partition: the one after the
last it admitted, or the consumer's committed offset if that is further (a partition that came
back from another worker). The acknowledged topics have no holes in their offsets (no compaction,
no transactions), so a message beyond that offset means one before it was never handed on. It and
the rest of that partition's messages are not processed: they are acknowledged without effect,
the commit still waits at the missing one, and the partition is fetched again from it at once,
so every message comes again, in order. Messages at or before the expected offset are a fetch
again: admitted, and recognised by their ids where they were folded already.

A missing message that does not come within ``HOLE_WAIT_S`` (the log no longer holds it: a
retention that outran a worker down that long) is given up on, loudly, and the messages after it
are taken as they come.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from streams.metrics import MESSAGES_OUT_OF_ORDER

log = logging.getLogger("fundwatch.worker")

HOLE_WAIT_S = 60.0


class OrderGuard:
    def __init__(
        self,
        name: str,
        committed: Callable[[Any], int | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name  # the agent's, for the log and the metric
        self._committed = committed  # the consumer's committed offset of a partition: the next to read
        self._clock = clock
        self._next: dict[Any, int] = {}  # partition -> the offset after the last admitted
        # partition -> (the offset it waits for, fetched again; since when)
        self._holes: dict[Any, tuple[int, float]] = {}

    def admit(self, events: list[Any]) -> tuple[list[Any], dict[Any, int]]:
        """The events of a take to process, in order, and the partitions to fetch again from the
        offset given (each hole once: until its message comes, nothing more is asked)."""
        admitted: list[Any] = []
        refetch: dict[Any, int] = {}
        for event in events:
            tp, offset = event.message.tp, event.message.offset
            expected = self._expected(tp)
            if expected is not None and offset > expected and not self._given_up(tp, offset):
                if tp not in self._holes or self._holes[tp][0] != expected:
                    self._holes[tp] = (expected, self._clock())
                    refetch[tp] = expected
                    MESSAGES_OUT_OF_ORDER.labels(self.name).inc()
                    log.warning(
                        "message handed on past one never handed on; fetching the partition again "
                        "agent=%s topic=%s partition=%d offset=%d expected=%d",
                        self.name, tp.topic, tp.partition, offset, expected,
                    )  # fmt: skip
                continue
            if tp in self._holes and self._holes[tp][0] <= offset:
                del self._holes[tp]
            self._next[tp] = max(offset + 1, self._next.get(tp, 0))
            admitted.append(event)
        return admitted, refetch

    def _given_up(self, tp: Any, offset: int) -> bool:
        hole = self._holes.get(tp)
        if hole is None or self._clock() - hole[1] < HOLE_WAIT_S:
            return False
        log.error(
            "a missing message did not come again; taking the partition on from where it is "
            "agent=%s topic=%s partition=%d missing=%d offset=%d waited_s=%.0f",
            self.name, tp.topic, tp.partition, hole[0], offset, self._clock() - hole[1],
        )  # fmt: skip
        return True

    def _expected(self, tp: Any) -> int | None:
        committed = self._committed(tp)
        last = self._next.get(tp)
        if last is None:
            return committed
        return last if committed is None else max(last, committed)
