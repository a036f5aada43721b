"""Windowed flow aggregates per account and per institution: pure functions over records.

A worker calls this once per Kafka message. The result is a set of partials, one per
(key, grain, window, currency): figures in different currencies are never added together
(CONTRACT.md §3), so each currency of a key and window has a partial of its own. ClickHouse adds
the partials of all messages up at read time. Partials are written under the message's id, so a
replayed message rewrites its own partials instead of adding to them: the totals stay exact
whatever the broker redelivers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from models.windows import beijing_day_start, hour_start
from schemas.messages import TxnRecord


@dataclass
class FlowPartial:
    inflow_cents: int = 0
    outflow_cents: int = 0
    n_in: int = 0
    n_out: int = 0
    counterparties: set[str] = field(default_factory=set)

    def add(self, txn: TxnRecord) -> None:
        if txn.credit:
            self.inflow_cents += txn.amount_cents
            self.n_in += 1
        else:
            self.outflow_cents += txn.amount_cents
            self.n_out += 1
        self.counterparties.add(txn.counterparty_account)

    def merge(self, other: FlowPartial) -> None:
        self.inflow_cents += other.inflow_cents
        self.outflow_cents += other.outflow_cents
        self.n_in += other.n_in
        self.n_out += other.n_out
        self.counterparties |= other.counterparties


# (key, grain, window start in epoch seconds, currency): the order of the tables' sorting keys
WindowKey = tuple[str, str, int, str]


def flow_partials(
    transactions: Iterable[TxnRecord],
    key_of: Callable[[TxnRecord], str | None],
) -> dict[WindowKey, FlowPartial]:
    """Sum flows per key, window and currency over hour and day grains; records whose key is None
    are skipped. Each record is counted once, in its hour; the day partials are the sums of their
    hours (a Beijing day is whole hours of UTC, so an hour lies in one day)."""
    hours: dict[tuple[str, int, str], FlowPartial] = {}
    for txn in transactions:
        key = key_of(txn)
        if not key:
            continue
        ts = txn.booked_at
        hour_key = (key, hour_start(ts), txn.currency)
        partial = hours.get(hour_key)
        if partial is None:
            partial = hours[hour_key] = FlowPartial()
        partial.add(txn)
    partials: dict[WindowKey, FlowPartial] = {}
    for (key, hour, currency), partial in hours.items():
        partials[(key, "hour", hour, currency)] = partial
        day_key = (key, "day", beijing_day_start(hour), currency)
        day = partials.get(day_key)
        if day is None:
            partials[day_key] = day = FlowPartial()
        day.merge(partial)
    return partials
