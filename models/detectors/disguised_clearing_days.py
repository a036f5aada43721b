"""The state `disguised_clearing` keeps per payment institution, and how its records are folded
into it: the customer credits and payee debits not mirrored yet, indexed by side, hour, amount and
bank; the mirrored ones; and per Beijing day the tallies of mirrored credits and debits and the
customers behind them (at most ``CUSTOMER_CAP``, the smallest ids). models/detectors/
disguised_clearing.py holds the rule."""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from fractions import Fraction
from math import ceil, floor
from typing import Any

from models.detectors.common import (
    CopyOnWrite,
    open_from,
    tally,
)
from models.detectors.figures import fraction_of
from models.detectors.frozen import freeze_before, is_frozen
from models.windows import DAY, HOUR, beijing_day_start

CUSTOMER_CAP = 2000  # customers kept per day
PROBE_MAX = 64  # with a tolerance, amounts probed one by one up to this many, else the hour's scanned

CREDIT, DEBIT = "c", "d"
_OTHER = {CREDIT: DEBIT, DEBIT: CREDIT}


def _new_tally() -> dict[str, Any]:
    return {"c": 0, "n": 0, "t0": None, "t1": None, "top": [], "x": {}}


def empty_state() -> dict[str, Any]:
    # pend: {side: {hour: {cents: {bank: [[ts, record_id, counterparty, account], ...]}}}} not
    # mirrored yet; mir: the same with [ts, record_id] of the mirrored ones; days: per Beijing day
    # mc/md (tallies of mirrored credits/debits booked that day), cust ({payer: 1}, at most
    # CUSTOMER_CAP, the smallest ids), more (more customers than that), cmax (the largest kept
    # once CUSTOMER_CAP are kept, else None)
    return {"wm": None, "pend": {CREDIT: {}, DEBIT: {}}, "mir": {CREDIT: {}, DEBIT: {}}, "days": {}}


class Folder:
    """One call's work on a copy-on-write state: the parts it writes are its own copies."""

    def __init__(self, state: dict[str, Any] | None, cfg: dict[str, Any]) -> None:
        self.w = CopyOnWrite()
        self.st = self.w.mine(dict(state or empty_state()))
        self.lag = max(0, int(cfg["max_lag_seconds"]))
        self.tol = max(Fraction(0), fraction_of(cfg["amount_tolerance"]))
        self.exact = self.tol == 0
        self.crowded: set[str] = set()  # days that took customers in this call
        self.late_days: set[str] = set()  # days with a late record in this call
        self._sides: dict[tuple[str, str], dict[str, Any]] = {}  # (table, side) -> its hours, writable

    # -- the index ------------------------------------------------------------------------

    def known(self, side: str, hour_key: str, cents_key: str, bank: str, key: list[Any]) -> bool:
        """Whether a record is in the index already (a replay): its index keys and its
        [ts, record id] as the caller made them."""
        for table in ("pend", "mir"):
            amounts = self._hour(table, side, hour_key)
            by_bank = amounts.get(cents_key) if amounts else None
            entries = by_bank.get(bank) if by_bank else None
            if entries:
                i = bisect_left(entries, key)
                if i < len(entries) and entries[i][0] == key[0] and entries[i][1] == key[1]:
                    return True
        return False

    def fold(
        self,
        side: str,
        ts: int,
        cents: int,
        bank: str,
        record_id: str,
        counterparty: str,
        account: str,
        late: bool,
    ) -> None:
        """A customer credit or payee debit (``late``: its day sealed): mirrored and tallied when a
        record of the other side mirrors it, else pending; nothing when it is ``known``."""
        hour_key, cents_key = str(ts - ts % HOUR), str(cents)  # made once for the look-ups below
        key = [ts, record_id]
        if self.known(side, hour_key, cents_key, bank, key):
            return
        if late:
            self.late(ts)
        if self.mirror(side, ts, cents, bank):
            self._insert_at("mir", side, hour_key, cents_key, bank, key)
            self.tally(side, ts, cents, record_id, counterparty, account)
        else:
            self._insert_at("pend", side, hour_key, cents_key, bank, [ts, record_id, counterparty, account])

    def _insert(self, table: str, side: str, ts: int, cents: int, bank: str, entry: list[Any]) -> None:
        self._insert_at(table, side, str(ts - ts % HOUR), str(cents), bank, entry)

    def _hour(self, table: str, side: str, hour_key: str) -> dict[str, Any] | None:
        """One hour of the index (None when it holds nothing); a frozen one is thawed into the
        writable state first, so what the caller reads is what it may then change."""
        node = self.st[table][side].get(hour_key)
        if is_frozen(node):  # CopyOnWrite thaws it as it copies it
            node = self.w.dict_in(self.w.path(self.st, table, side), hour_key)
        return node

    def _insert_at(
        self, table: str, side: str, hour_key: str, cents_key: str, bank: str, entry: list[Any]
    ) -> None:
        hours = self._sides.get((table, side))
        if hours is None:  # writable from here on, and never replaced within the call
            hours = self._sides[(table, side)] = self.w.path(self.st, table, side)
        w = self.w
        node = w.dict_in(w.dict_in(hours, hour_key), cents_key)
        insort(w.list_in(node, bank), entry)

    def _amounts(self, side: str, cents: int, shard: dict[str, Any]) -> list[str]:
        """The amounts in an hour of the other side that ``cents`` on ``side`` can mirror."""
        if self.exact:
            key = str(cents)
            return [key] if key in shard else []
        tol = self.tol
        if side == CREDIT:  # debits d with |d - c| <= tol * c
            lo, hi = ceil(cents * (1 - tol)), floor(cents * (1 + tol))
        else:  # credits c with |d - c| <= tol * c: d / (1 + tol) <= c <= d / (1 - tol)
            lo = ceil(cents / (1 + tol))
            hi = floor(cents / (1 - tol)) if tol < 1 else None
        if hi is not None and hi - lo + 1 <= min(PROBE_MAX, len(shard)):
            return [key for key in map(str, range(lo, hi + 1)) if key in shard]
        return sorted((k for k in shard if lo <= int(k) and (hi is None or int(k) <= hi)), key=int)

    def mirror(self, side: str, ts: int, cents: int, bank: str) -> bool:
        """Whether a record on ``side`` is mirrored by one already in the index; the records of the
        other side it mirrors that were not mirrored yet are moved to mirrored and tallied."""
        other = _OTHER[side]
        lo_t, hi_t = ts - self.lag, ts + self.lag
        low, high = [lo_t], [hi_t + 1]
        found = False
        exact, cents_key = self.exact, str(cents)
        for hour in range(lo_t - lo_t % HOUR, hi_t + 1, HOUR):
            hour_key = str(hour)
            shard = None if found else self._hour("mir", other, hour_key)
            if shard:  # any mirrored one will do: nothing to move there
                keys = (
                    ((cents_key,) if cents_key in shard else ())
                    if exact
                    else self._amounts(side, cents, shard)
                )
                for key in keys:
                    by_bank = shard[key]
                    if any(
                        b != bank and bisect_left(e, low) < bisect_left(e, high) for b, e in by_bank.items()
                    ):
                        found = True
                        break
            shard = self._hour("pend", other, hour_key)
            if not shard:
                continue
            keys = (
                ((cents_key,) if cents_key in shard else ()) if exact else self._amounts(side, cents, shard)
            )
            for key in keys:
                by_bank = shard[key]
                for other_bank in sorted(by_bank):
                    if other_bank == bank:
                        continue
                    entries = by_bank[other_bank]
                    i, j = bisect_left(entries, low), bisect_left(entries, high)
                    if i < j:
                        found = True
                        # reads above go on in the caller's containers: a move replaces only the
                        # containers on its own path, and each (hour, amount, bank) is seen once
                        self._promote(other, hour, key, other_bank, i, j)
        return found

    def _promote(self, side: str, hour: int, key: str, bank: str, i: int, j: int) -> None:
        """Move pending entries [i, j) of one list to mirrored, and tally them on their days."""
        hour_node = self.w.path(self.st, "pend", side, str(hour))
        amount_node = self.w.dict_in(hour_node, key)
        entries = self.w.list_in(amount_node, bank)
        moved = entries[i:j]
        del entries[i:j]
        if not entries:
            del amount_node[bank]
            if not amount_node:
                del hour_node[key]
                if not hour_node:
                    del self.w.dict_in(self.st["pend"], side)[str(hour)]
        cents = int(key)
        for ts, record_id, counterparty, account in moved:
            self._insert("mir", side, ts, cents, bank, [ts, record_id])
            self.tally(side, ts, cents, record_id, counterparty, account)

    # -- the days -------------------------------------------------------------------------

    def tally(self, side: str, ts: int, cents: int, record_id: str, counterparty: str, account: str) -> None:
        days = self.w.dict_in(self.st, "days")
        key = str(beijing_day_start(ts))
        if key not in days:
            days[key] = self.w.mine(
                {"mc": _new_tally(), "md": _new_tally(), "cust": {}, "more": False, "cmax": None}
            )
        day = self.w.dict_in(days, key)
        tally(self.w, self.w.dict_in(day, "m" + side), cents, ts, record_id, account)
        if side == CREDIT and counterparty:
            self._customer(key, day, counterparty)

    def _customer(self, key: str, day: dict[str, Any], payer: str) -> None:
        if payer in day["cust"]:
            return
        if day["cmax"] is not None and payer > day["cmax"]:
            day["more"] = True  # beyond the CUSTOMER_CAP smallest: counted as "more"
            return
        self.w.dict_in(day, "cust")[payer] = 1
        self.crowded.add(key)

    def late(self, ts: int) -> None:
        """A late record: its day marked as judged with late records."""
        self.late_days.add(str(beijing_day_start(ts)))

    def finish(self) -> None:
        """Keep the CUSTOMER_CAP smallest customer ids of the days that took customers in; mark
        the days late records were tallied on."""
        for key in self.late_days:
            if key in self.st["days"]:
                day = self.w.dict_in(self.w.dict_in(self.st, "days"), key)
                day["ln"] = day.get("ln", 0) + 1
        for key in self.crowded:
            day = self.st["days"][key]
            customers = day["cust"]
            if len(customers) > CUSTOMER_CAP:
                keep = heapq.nsmallest(CUSTOMER_CAP, customers)
                day["cust"] = self.w.mine(dict.fromkeys(keep, 1))
                day["more"] = True
                day["cmax"] = keep[-1]
            elif len(customers) == CUSTOMER_CAP:
                day["cmax"] = max(customers)

    def prune(self, wm: int | None) -> None:
        """Drop hours and days that no record still accepted could mirror (``wm``: the
        watermark held back to the institution's slowest bank, common.hold_watermark)."""
        start = open_from(wm)
        if start is None:
            return
        for table in ("pend", "mir"):
            for side in (CREDIT, DEBIT):
                hours = self.st[table][side]
                # an hour goes no later than an earlier one: while the earliest stays, all do
                if not hours or int(min(hours, key=int)) + HOUR - 1 + self.lag >= start:
                    continue
                stale = [h for h in hours if int(h) + HOUR - 1 + self.lag < start]
                if stale:
                    hours = self.w.path(self.st, table, side)
                    for h in stale:
                        del hours[h]
        stale = [d for d in self.st["days"] if int(d) + DAY - 1 + self.lag < start]
        if stale:
            days = self.w.dict_in(self.st, "days")
            for d in stale:
                del days[d]
        if "late" in self.st:  # late ids of states written before they left the state
            del self.st["late"]

    def freeze(self) -> None:
        """Freeze the unmatched legs of the hours no record on time can mirror any more (models/
        detectors/frozen.py): what a lagging bank's legs are held for, unchanged until it sends."""
        start = open_from(self.st["wm"])
        if start is None:
            return
        until = start - self.lag - HOUR + 1  # an hour before this ends more than lag before start
        for side in (CREDIT, DEBIT):
            hours = self.st["pend"][side]
            if any(not is_frozen(node) and int(hour) < until for hour, node in hours.items()):
                freeze_before(self.w.path(self.st, "pend", side), until)
