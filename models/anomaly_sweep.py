"""The event-time sweep of one records partition: which silent accounts have an open day that
their bank's event time has passed, so that the `anomaly` detector judges it.

The detector judges an account's Beijing day once the account books a record on a later day
(models/detectors/anomaly.py). A quiet account used once to pass money on books nothing after,
so its day would never be judged. Its bank's other accounts keep booking: the latest booking
time the partition has seen from that bank (capped by the context's event_time_ceiling, as the
detectors' watermarks are) says how far the bank's day has gone. Once it is past the end of an
account's open day by GRACE, the account is stepped through ``anomaly.close`` with no record,
which judges the day exactly as a record of that account at the bank's time would have.

Per bank and not per partition: a bank that pushes its day-end file hours after another's
real-time feed must not have its accounts' days closed by the faster bank's time. Per partition
and not per worker: a partition's messages alone decide its sweeps, so reprocessing a partition
after a crash or a rebalance sweeps at the same points.

Nothing here is durable. After a restart or a rebalance the index is rebuilt from the states the
worker holds for the partition (``rebuild``: each state's open day is read back), and the bank
times start again from the next records: no open day is forgotten, its sweep only waits for its
bank's next records. Pure apart from the index's own memory: no I/O, no clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

from models.account_detection import sweep_account
from models.detectors import DetectContext, anomaly
from models.detectors.common import event_time
from schemas.alerts import AlertData

GRACE = 3600  # a bank's records of a day may still arrive this long after its end, out of order


class SweepIndex:
    """Per records partition: each bank's event time and the accounts with an open day."""

    def __init__(self) -> None:
        self.bank_time: dict[str, int] = {}
        # account -> (bank, when its open day may be closed); the heaps may hold stale entries,
        # checked against this map when they come up
        self._due: dict[str, tuple[str, int]] = {}
        self._heaps: dict[str, list[tuple[int, str]]] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._due

    def observe(self, bank: str, records: Iterable[Any], ceiling: int | None) -> None:
        """The bank's event time after these records of it (never moving back)."""
        latest = max((event_time(r) for r in records), default=None)
        if latest is None or not bank:
            return
        if ceiling is not None and latest > ceiling:
            latest = ceiling  # one record dated years ahead must not close every open day
        if latest > self.bank_time.get(bank, latest - 1):
            self.bank_time[bank] = latest

    def track(self, account_id: str, bank: str, anomaly_state: dict[str, Any] | None) -> None:
        """The account's open day, as its `anomaly` state now says (none: forgotten)."""
        end = anomaly.open_day_end(anomaly_state)
        if end is None or not bank:
            self._due.pop(account_id, None)
            return
        due = (bank, end + GRACE)
        if self._due.get(account_id) != due:
            self._due[account_id] = due
            heapq.heappush(self._heaps.setdefault(bank, []), (due[1], account_id))

    def due(self) -> list[tuple[str, str, int]]:
        """(account, its bank, the bank's event time) for every account whose open day its bank's time has
        passed by GRACE, in account order; they leave the index (``track`` them again after the
        sweep, in case a day is still open)."""
        out = []
        for bank, heap in self._heaps.items():
            now = self.bank_time.get(bank)
            while heap and now is not None and heap[0][0] <= now:
                when, account_id = heapq.heappop(heap)
                if self._due.get(account_id) == (bank, when):
                    del self._due[account_id]
                    out.append((account_id, bank, now))
        return sorted(out)

    def rebuild(self, states: Iterable[tuple[str, str, dict[str, Any] | None]]) -> None:
        """Track every (account, bank, `anomaly` state) given: after a restart or a rebalance."""
        for account_id, bank, anomaly_state in states:
            self.track(account_id, bank, anomaly_state)


def anomaly_state_of(account_state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `anomaly` detector's state inside an account's state (worker or pipeline)."""
    return ((account_state or {}).get("detectors") or {}).get(anomaly.NAME)


def sweep_due(
    ctx: DetectContext, index: SweepIndex, state_of: Callable[[str], dict[str, Any] | None], at: int
) -> list[tuple[str, dict[str, Any], list[tuple[str, AlertData]]]]:
    """(account, its new state, the alerts that changed) for every account the index says is due,
    each stepped through ``sweep_account`` from the state ``state_of`` gives; each is tracked
    again with its new state."""
    out = []
    for account_id, bank, until in index.due():
        state, changed = sweep_account(ctx, state_of(account_id), account_id, until, at)
        index.track(account_id, bank, anomaly_state_of(state))
        out.append((account_id, state, changed))
    return out
