"""The state `rapid_growth` keeps per institution and Beijing day, and how a record is folded into
it: the day's inflow tally and its payers as a hash sample of at most ``PAYER_CAP``, with the
running count of new investors per sample level (models/detectors/rapid_growth.py, "Payers")."""

from __future__ import annotations

import hashlib
from bisect import insort
from typing import Any

from models.detectors.common import LATE_KEEP, TOP_N, CopyOnWrite, open_from, top_rank
from models.windows import DAY

PAYER_CAP = 2000  # payers kept per day (a hash sample beyond)
HASH_BITS = 32


# payer -> level: an investor pays on many days, and a hash costs more than a look-up
_LEVELS: dict[str, int] = {}
_LEVELS_MAX = 200_000


def level(payer: str) -> int:
    """The payer's sampling level: leading zero bits of a 32-bit hash (level >= L for 1 in 2^L)."""
    found = _LEVELS.get(payer)
    if found is None:
        digest = hashlib.blake2b(payer.encode("utf-8"), digest_size=HASH_BITS // 8).digest()
        found = HASH_BITS - int.from_bytes(digest, "big").bit_length()
        if len(_LEVELS) >= _LEVELS_MAX:
            _LEVELS.clear()
        _LEVELS[payer] = found
    return found


def empty_state() -> dict[str, Any]:
    """wm: the watermark; first: the institution's first day seen; days: per Beijing day."""
    return {"wm": None, "first": None, "days": {}}


def _new_day(st: dict[str, Any], day: int, trend: int) -> dict[str, Any]:
    # in: the inflow tally; pay: {payer: level} of the sample; lv: the day's sample level;
    # ls: the highest lv of the day and its history days; nl: {level: new investors of that level}
    window = (st["days"].get(str(day - k * DAY)) for k in range(1, trend + 1))
    return {
        "in": {"c": 0, "n": 0, "t0": None, "t1": None, "top": [], "x": {}},
        "pay": {},
        "lv": 0,
        "ls": max((e["lv"] for e in window if e is not None), default=0),
        "nl": {},
    }


class Folder:
    """One call's work on a copy-on-write state: the days it writes are its own copies."""

    def __init__(self, state: dict[str, Any] | None, trend: int) -> None:
        self.w = CopyOnWrite()
        base = state or empty_state()
        self.st = self.w.mine(dict(base))
        self.days = self.w.dict_in(self.st, "days")
        self.trend = trend
        # day -> (entry, its inflow tally, the tally's sums per account), writable, of this call
        self._inflow: dict[int, tuple[dict[str, Any], dict[str, Any], dict[str, int]]] = {}

    def day(self, day: int) -> dict[str, Any]:
        """The writable entry of a day (created when absent)."""
        key = str(day)
        if key not in self.days:
            self.days[key] = self.w.mine(_new_day(self.st, day, self.trend))
            entry = self.days[key]
            for name in ("in", "pay", "nl"):
                self.w.mine(entry[name])
            self.w.mine(entry["in"]["top"])
            self.w.mine(entry["in"]["x"])
            return entry
        return self.w.dict_in(self.days, key)

    def inflow(self, day: int, late: bool, cents: int, ts: int, record_id: str, account: str) -> None:
        """One inflow credit counted in its day's tally (common.tally, with the day's writable
        containers found once per call)."""
        found = self._inflow.get(day)
        if found is None:
            entry = self.day(day)
            bucket = self.w.dict_in(entry, "in")
            found = self._inflow[day] = (entry, bucket, self.w.dict_in(bucket, "x"))
        entry, bucket, per_account = found
        if late:
            entry["ln"] = entry.get("ln", 0) + 1
        bucket["c"] += cents
        bucket["n"] += 1
        t0, t1 = bucket["t0"], bucket["t1"]
        if t0 is None or ts < t0:
            bucket["t0"] = ts
        if t1 is None or ts > t1:
            bucket["t1"] = ts
        per_account[account] = per_account.get(account, 0) + cents
        top = bucket["top"]
        if len(top) >= TOP_N and cents < top[-1][0]:
            return  # ranks after the last kept (a larger amount ranks first)
        item = [cents, ts, record_id, account]
        if len(top) < TOP_N or top_rank(item) < top_rank(top[-1]):
            top = self.w.list_in(bucket, "top")
            insort(top, item, key=top_rank)
            del top[TOP_N:]

    def _paid_before(self, day: int, payer: str, skip: int | None = None) -> bool:
        """Whether the payer is in the sample of one of the trend days before ``day``."""
        for k in range(1, self.trend + 1):
            other = day - k * DAY
            if other == skip:
                continue
            entry = self.days.get(str(other))
            if entry is not None and payer in entry["pay"]:
                return True
        return False

    def _count_new(self, day: int, lvl: int, delta: int) -> None:
        entry = self.day(day)
        counts = self.w.dict_in(entry, "nl")
        key = str(lvl)
        value = counts.get(key, 0) + delta
        if value:
            counts[key] = value
        else:
            counts.pop(key, None)

    def see_payer(self, day: int, payer: str) -> None:
        """A payer of an inflow credit on ``day``: sample it, and keep the new-investor counts of
        the day and of the next day the payer paid on right."""
        entry = self.days[str(day)]
        lvl = level(payer)
        if lvl < entry["lv"] or payer in entry["pay"]:
            return
        pay = self.w.dict_in(entry, "pay")
        pay[payer] = lvl
        if len(pay) > PAYER_CAP:
            self._raise_level(day)
            if payer not in entry["pay"]:
                return
        if lvl >= entry["ls"] and not self._paid_before(day, payer):
            self._count_new(day, lvl, +1)
        # the next day within trend_days on which the payer paid was counted new without this day
        for k in range(1, self.trend + 1):
            later = day + k * DAY
            other = self.days.get(str(later))
            if other is None or payer not in other["pay"]:
                continue
            if lvl >= other["ls"] and not self._paid_before(later, payer, skip=day):
                self._count_new(later, lvl, -1)
            break

    def _raise_level(self, day: int) -> None:
        """Halve the day's sample until it holds at most PAYER_CAP payers; the days whose window
        holds this day now count new investors at the new level or above only."""
        entry = self.day(day)
        pay, lvl = entry["pay"], entry["lv"]
        while len(pay) > PAYER_CAP:
            lvl += 1
            pay = {p: v for p, v in pay.items() if v >= lvl}
        entry["pay"] = self.w.mine(pay)
        entry["lv"] = lvl
        for k in range(self.trend + 1):
            later = day + k * DAY
            if str(later) not in self.days or self.days[str(later)]["ls"] >= lvl:
                continue
            other = self.day(later)
            other["ls"] = lvl
            other["nl"] = self.w.mine({key: n for key, n in other["nl"].items() if int(key) >= lvl})

    def prune(self, wm: int | None) -> None:
        """Drop days no kept day's history holds (kept: open, or sealed for less than LATE_KEEP)."""
        start = open_from(wm)
        if start is None:
            return
        reach = self.trend * DAY + LATE_KEEP
        for key in [k for k in self.days if int(k) + reach < start]:
            del self.days[key]
        # states written before record ids left the state: what they held is not read any more
        for stale in ("ids", "late"):
            if stale in self.st:
                del self.st[stale]


def new_investors(entry: dict[str, Any] | None) -> int:
    """A day's new investors: the running count at the window's sample level, scaled up to all."""
    if entry is None:
        return 0
    return sum(entry["nl"].values()) << entry["ls"]
