"""What the detectors share: event-time buckets and watermarks, dates, money and ratio
thresholds, severities (those two kept in models/detectors/figures.py and re-exported here; how
findings write figures and words: models/detectors/wording.py).

State. Every detector keeps its own plain-JSON state per account. Records are folded into
*buckets* (one per window and key): running sums, counts, first and last time and the largest
records. A bucket's figures are a function of the *set* of records, whatever their arrival order
or split across messages. Each record is folded once: the gateway refuses a record id its bank
sent before (ingest keys, kept in ClickHouse), and the worker skips a message it has folded
already (its id among the account's or institution's recent ones), so state holds no record ids
and its size follows the open days and the evidence, not the records.

Event time and lateness (DESIGN.md, "Event time across sources"). A detector's event-time
watermark ``wm`` follows the sources (the custody banks) that feed its figures: each source's
progress is the latest event time it has sent, and ``wm`` is the minimum of those progresses, as
in Flink, so a bank that pushes its day-end file hours after another bank's real-time feed holds
the watermark back instead of having its records counted late. A source is *idle*, and stops
holding the watermark back, when it has sent nothing while the other sources' event time moved
``IDLE_AFTER`` (2 days) on; it takes part again with its next record. The watermark never moves
back. An account has one source (its bank); an institution has one per bank of its accounts.
(``advance`` is the one-source case, ``advance_sources`` the general one.)

A Beijing day is *sealed* once ``wm`` has passed its end by ``ALLOWED_LATENESS``; a record of a
sealed day is *late*. Late records are never dropped silently: the worker counts them per bank
(``fundwatch_late_records_total``), and every detector still judges them, against the figures it
keeps of the day (a sealed day's figures are kept ``LATE_KEEP`` longer for that), and marks what
they change ``late: true`` in the finding's metrics. A record later still than that is judged on
what is left (its own day's figures start again from it). Results are order-independent for
records that arrive within ``ALLOWED_LATENESS`` of the end of their day; late ones change the
same figures, but their findings say they came late.

Evidence. A bucket keeps its ``TOP_N`` largest records (by amount, then event time, then record
id). The top N of a set is the same whatever order its members came in, so evidence is as
deterministic as the sums.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import msgspec

from models.detectors.figures import at_least as at_least
from models.detectors.figures import bump as bump
from models.detectors.figures import cents_of as cents_of
from models.detectors.figures import fraction_of as fraction_of
from models.detectors.figures import most_severe as most_severe
from models.detectors.figures import score_of as score_of
from models.detectors.figures import severity_by_amount as severity_by_amount
from models.detectors.frozen import is_frozen, thawed
from models.windows import DAY, beijing_day_start
from schemas.fields import BEIJING
from schemas.messages import BalanceRecord, TxnRecord

ALLOWED_LATENESS = 2 * DAY  # a day stays open this long after its Beijing midnight end
LATE_KEEP = 7 * DAY  # a sealed day's figures are kept this much longer, for late records
IDLE_AFTER = 2 * DAY  # a source silent while the others' event time moved this far is idle
TOP_N = 50  # largest records kept per bucket as evidence (record_ids of a finding)

Record = TxnRecord | BalanceRecord


# -- records and time -----------------------------------------------------------------------


def event_time(record: Record) -> int:
    return record.booked_at if isinstance(record, TxnRecord) else record.as_of


def own_records(account_id: str, records: Iterable[Record]) -> list[Record]:
    """The records of ``account_id`` (a message should hold no other, but never trust it)."""
    return [r for r in records if r.account_id == account_id]


def own_cny_records(account_id: str, records: Iterable[Record]) -> list[Record]:
    """The records of ``account_id`` in CNY. Figures in different currencies are never added
    together (CONTRACT.md §3), and the thresholds, severities and an alert's amount are in CNY:
    a detector that sums amounts judges the CNY records; the others stay in the per-currency
    flows and raw records."""
    return [r for r in records if r.account_id == account_id and r.currency == "CNY"]


def advance(wm: int | None, records: Iterable[Record], ceiling: int | None = None) -> int | None:
    """The watermark after these records: the latest event time seen, but never past
    ``ceiling`` (the latest event time that is plausible now, DetectContext.event_time_ceiling).

    One record dated years ahead (a typo, or a hostile bank) would otherwise seal every real day
    of the account at once and blind its detectors; such a record is still counted in its own
    day, it only cannot move the account's notion of "now" beyond the clock."""
    # each time capped then the latest: the latest capped once
    times = event_times(records)
    if not times:
        return wm
    ts = max(times)
    if ceiling is not None and ts > ceiling:
        ts = ceiling
    return ts if wm is None or ts > wm else wm


def is_sealed(ts: int, wm: int | None) -> bool:
    """Whether the Beijing day holding ``ts`` is sealed: a record of it now is late."""
    return wm is not None and beijing_day_start(ts) + DAY + ALLOWED_LATENESS <= wm


def is_expired(ts: int, wm: int | None) -> bool:
    """Whether the day holding ``ts`` is sealed for longer than ``LATE_KEEP``: its figures go."""
    return is_sealed(ts + LATE_KEEP, wm)


def source_of(ctx: Any, record: Record) -> str:
    """The bank that pushed a record: the one the worker stamped on it (institution records), else
    the bank of its account in the reference data (the gateway takes an account's records from its
    own bank only), else ""."""
    bank = getattr(record, "bank_code", "")
    if bank:
        return bank
    account = ctx.account(record.account_id)
    return str(account.get("bank_code") or "") if account else ""


def _latest_by_bank(ctx: Any, records: Iterable[Record]) -> dict[str, int]:
    """Per bank (source_of), the latest event time it sent in these records, the banks in the
    order of their first record."""
    records = records if isinstance(records, list) else list(records)
    # one account's records from its bank (an account's step): one bank, one look-up
    if records and not any(getattr(r, "bank_code", "") for r in records):
        account_id = records[0].account_id
        if all(r.account_id == account_id for r in records):
            return {source_of(ctx, records[0]): max(event_times(records))}
    # records stamped with the one bank that sent their message (an institution's step)
    banks = {getattr(r, "bank_code", "") for r in records}
    if len(banks) == 1 and "" not in banks:
        return {banks.pop(): max(event_times(records))}
    latest: dict[str, int] = {}
    bank_of: dict[str, str] = {}  # an account's records all come from its bank: one look-up each
    for record in records:
        ts = event_time(record)
        bank = getattr(record, "bank_code", "")
        if not bank:
            bank = bank_of.get(record.account_id)
            if bank is None:
                bank = bank_of[record.account_id] = source_of(ctx, record)
        if ts > latest.get(bank, ts - 1):
            latest[bank] = ts
    return latest


def event_times(records: Iterable[Record]) -> list[int]:
    """``event_time`` of each record (inlined: this runs for every record of every step)."""
    return [r.booked_at if isinstance(r, TxnRecord) else r.as_of for r in records]


def advance_sources(st: dict[str, Any], ctx: Any, records: Iterable[Record]) -> int | None:
    """The watermark after these records when several banks feed the state (see the module
    docstring): ``st["src"]`` keeps, per bank, ``[latest event time sent, the state's latest event
    time when the bank last sent]``; ``st["wm"]`` becomes the minimum progress of the banks that
    are not idle, never less than it was. Event times are capped at the context's ceiling, as in
    ``advance``."""
    # a new map of new entries: callers working copy-on-write hand in a shallow copy of the state
    src: dict[str, list[int]] = {bank: list(entry) for bank, entry in (st.get("src") or {}).items()}
    st["src"] = src
    ceiling = ctx.event_time_ceiling
    latest = _latest_by_bank(ctx, records)
    for bank, ts in latest.items():
        if ceiling is not None and ts > ceiling:
            ts = ceiling
        entry = src.get(bank)
        if entry is None:
            src[bank] = [ts, ts]
        elif ts > entry[0]:
            entry[0] = ts
    sent = latest.keys()
    if not src:
        return st.get("wm")
    top = max(entry[0] for entry in src.values())
    for bank in sent:
        src[bank][1] = top
    progress = min(entry[0] for entry in src.values() if top - entry[1] <= IDLE_AFTER)
    wm = st.get("wm")
    st["wm"] = wm = progress if wm is None or progress > wm else wm
    return wm


def hold_watermark(st: dict[str, Any], ctx: Any, institution_id: str) -> int | None:
    """The event time up to which an institution's state may forget what could still be paired
    with another bank's records: the watermark, held back to the slowest bank of the
    institution's registered accounts (one that has sent nothing yet counts as not started), and
    never more than ``LATE_KEEP`` behind it. A bank that pushes its month after another's then
    finds the other side of the last ``LATE_KEEP`` still there; banks in step change nothing."""
    wm = st.get("wm")
    if wm is None:
        return None
    src = st.get("src") or {}
    floor = wm - LATE_KEEP
    slowest = wm
    for bank in ctx.references.banks_of(institution_id):
        entry = src.get(bank)
        slowest = min(slowest, entry[0] if entry is not None else floor)
    return max(floor, slowest)


def beijing_date(ts: int) -> str:
    return _day_date(beijing_day_start(ts))


@lru_cache(maxsize=4096)  # findings name a handful of open days, again and again
def _day_date(day: int) -> str:
    return datetime.fromtimestamp(day, BEIJING).strftime("%Y-%m-%d")


def beijing_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def beijing_iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, BEIJING).isoformat()


class Owned(dict):
    """A detector state that a sequence of steps over several messages owns already (a copy made
    at its start, see own_states): clone() hands it on as it is, so folding one account's messages
    of a take copies its state once, not once per message."""


def clone(state: dict[str, Any] | None) -> dict[str, Any]:
    """A deep copy through JSON: the caller's state is never mutated, and a state that would not
    serialise fails here rather than in the state store. An Owned state is the caller's own
    working copy and is returned as it is."""
    if not state:
        return {}
    if type(state) is Owned:
        return state
    return msgspec.json.decode(msgspec.json.encode(state))


def own_states(states: dict[str, Any] | None, consume: bool = False) -> dict[str, Owned]:
    """Working copies of detector states for a sequence of steps (see Owned). With ``consume``
    the caller gives the states up (it never reads them again): they are worked on in place, with
    no copy at all."""
    return {
        name: Owned(state if consume else clone(state)) for name, state in (states or {}).items() if state
    }


def disown(states: dict[str, Any]) -> dict[str, Any]:
    """Plain dicts again, for the state store, once the sequence is done."""
    return {name: dict(state) for name, state in states.items()}


# -- buckets --------------------------------------------------------------------------------


def new_bucket() -> dict[str, Any]:
    # c: cents, n: records, t0/t1: first/last event time, top: [[cents, ts, record_id, tag], ...]
    # largest first, x: cents per tag; once a late record came: ln, how many came late
    return {"c": 0, "n": 0, "t0": None, "t1": None, "top": [], "x": {}}


def bucket_in(buckets: dict[str, Any], key: str | int) -> dict[str, Any]:
    key = str(key)
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = new_bucket()
    return bucket


def top_rank(entry: list[Any]) -> tuple[int, int, str]:
    return (-entry[0], entry[1], entry[2])


def add(
    bucket: dict[str, Any],
    record_id: str,
    ts: int,
    cents: int,
    tag: str | None = None,
    top: bool = True,
    late: bool = False,
) -> None:
    """Count one record in a bucket; a ``late`` one (its day sealed) is counted as such too.

    Each record reaches a detector once: the gateway refuses a record id its bank sent before,
    and the worker skips a message it has folded (models/account_state.already_applied), so a
    bucket keeps no record ids of its own."""
    if late:
        bucket["ln"] = bucket.get("ln", 0) + 1
    bucket["c"] += cents
    bucket["n"] += 1
    widen(bucket, ts, ts)
    if tag is not None:
        per_tag = bucket["x"]
        per_tag[tag] = per_tag.get(tag, 0) + cents
    if top:
        entries = bucket["top"]
        # kept sorted, so a full list's last entry is the one a larger record displaces; most
        # records of a busy account are not larger (and a smaller amount never ranks before it)
        if len(entries) >= TOP_N and cents < entries[-1][0]:
            return
        entry = [cents, ts, record_id, tag]
        if len(entries) < TOP_N or top_rank(entry) < top_rank(entries[-1]):
            insort(entries, entry, key=top_rank)
            del entries[TOP_N:]


def widen(bucket: dict[str, Any], first: int, last: int) -> None:
    """Widen a bucket's first and last event times (``t0``, ``t1``) to hold ``first``..``last``."""
    t0 = bucket["t0"]
    if t0 is None:
        bucket["t0"], bucket["t1"] = first, last
        return
    if first < t0:
        bucket["t0"] = first
    if last > bucket["t1"]:
        bucket["t1"] = last


def is_late(bucket: dict[str, Any]) -> bool:
    """Whether a late record counts in the bucket."""
    return bucket.get("ln", 0) > 0


def top_entries(buckets: Iterable[dict[str, Any]], n: int = TOP_N) -> list[list[Any]]:
    """The n largest records of several buckets, then in event-time order."""
    buckets = list(buckets)
    if len(buckets) == 1:  # a bucket's own list is in top_rank order already
        entries = buckets[0]["top"][:n]
    else:
        entries = sorted((e for b in buckets for e in b["top"]), key=top_rank)[:n]
    return sorted(entries, key=itemgetter(1, 2))


def record_ids(buckets: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(entry[2] for entry in top_entries(buckets))


# -- copy-on-write state for detectors whose state is large (institution level) -------------


def open_from(wm: int | None) -> int | None:
    """The earliest event time whose Beijing day is not sealed (common.is_sealed(ts, wm) is
    ts < open_from(wm))."""
    if wm is None:
        return None
    return beijing_day_start(wm - DAY - ALLOWED_LATENESS) + DAY


class CopyOnWrite:
    """Copy-on-write over the caller's state: a container reached from it is copied (shallowly) the
    first time this call writes into it, so the caller's state never changes and a call costs what
    it touches, not the size of the state."""

    def __init__(self) -> None:
        self._mine: dict[int, Any] = {}  # id -> the container (kept alive, so ids are not reused)

    def mine(self, obj: Any) -> Any:
        self._mine[id(obj)] = obj
        return obj

    def dict_in(self, parent: dict[str, Any], key: str) -> dict[str, Any]:
        child = parent.get(key)
        if child is None:
            child = parent[key] = self.mine({})
        elif id(child) not in self._mine:  # a frozen part is copied by thawing it
            child = parent[key] = self.mine(thawed(child) if is_frozen(child) else dict(child))
        return child

    def list_in(self, parent: dict[str, Any], key: str) -> list[Any]:
        child = parent.get(key)
        if child is None:
            child = parent[key] = self.mine([])
        elif id(child) not in self._mine:
            child = parent[key] = self.mine(list(child))
        return child

    def path(self, root: dict[str, Any], *keys: str) -> dict[str, Any]:
        node = root
        for key in keys:
            node = self.dict_in(node, key)
        return node


def tally(w: CopyOnWrite, bucket: dict[str, Any], cents: int, ts: int, record_id: str, tag: str) -> None:
    """Count one record in a writable tally (new_bucket's layout without ids): sums, times, the
    TOP_N largest kept sorted (so the tally is the same whatever the arrival order)."""
    bucket["c"] += cents
    bucket["n"] += 1
    widen(bucket, ts, ts)
    per_tag = w.dict_in(bucket, "x")
    per_tag[tag] = per_tag.get(tag, 0) + cents
    entry = [cents, ts, record_id, tag]
    top = bucket["top"]
    if len(top) < TOP_N or top_rank(entry) < top_rank(top[-1]):
        top = w.list_in(bucket, "top")
        insort(top, entry, key=top_rank)
        del top[TOP_N:]
