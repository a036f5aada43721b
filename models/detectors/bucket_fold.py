"""Several records counted in one bucket at once: what ``common.add`` does record by record, with
the sums, count and times updated once per bucket, and only the records that can still enter the
bucket's evidence (its ``TOP_N`` largest) going through the sorted insert.

A detector folding a busy account's message groups its records by bucket first (keeping the
order in which buckets are first met, so a new state's keys come in the same order as with
``add``) and calls ``add_all`` once per bucket. The bucket is the same as after ``add`` of each
record in turn: sums and counts are sums, the first and last times a minimum and maximum, the
evidence the top N of the same set in the same order.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from models.detectors.common import TOP_N, top_rank, widen
from schemas.messages import TxnRecord

_INSERT_AT_MOST = 4  # more new candidates than this: one sort is cheaper than their inserts


def add_all(
    bucket: dict[str, Any],
    records: Sequence[TxnRecord],
    tags: Sequence[str] | None = None,
    top: bool = True,
    late: bool = False,
) -> None:
    """``common.add(bucket, r.record_id, r.booked_at, r.amount_cents, tag, top, late)`` for each
    record in order, ``tag`` the record's entry in ``tags`` (None for every record without
    ``tags``)."""
    if not records:
        return
    if late:
        bucket["ln"] = bucket.get("ln", 0) + len(records)
    amounts = [r.amount_cents for r in records]
    times = [r.booked_at for r in records]
    bucket["c"] += sum(amounts)
    bucket["n"] += len(records)
    widen(bucket, min(times), max(times))
    if tags is not None:
        per_tag = bucket["x"]
        for tag, cents in zip(tags, amounts, strict=True):
            per_tag[tag] = per_tag.get(tag, 0) + cents
    if top:
        _keep_largest(bucket["top"], records, amounts, tags)


def _keep_largest(
    entries: list[list[Any]], records: Sequence[TxnRecord], amounts: list[int], tags: Sequence[str] | None
) -> None:
    # the list is kept sorted, so once full its last entry is the one a larger record displaces;
    # a smaller amount never ranks before it, and most records of a busy account are smaller
    full = len(entries) >= TOP_N
    floor = entries[-1][0] if full else None
    new = [
        [cents, records[index].booked_at, records[index].record_id, None if tags is None else tags[index]]
        for index, cents in enumerate(amounts)
        if floor is None or cents >= floor
    ]
    if not new:
        return
    if len(new) > _INSERT_AT_MOST:
        # one stable sort of the old entries followed by the new ones in order keeps the same
        # TOP_N as inserting them one by one (ties, identical entries, keep the earlier first)
        entries.extend(new)
        sort_by_rank(entries)
        del entries[TOP_N:]
        return
    for entry in new:
        rank = (-entry[0], entry[1], entry[2])  # top_rank(entry)
        if len(entries) < TOP_N:
            # insort(entries, entry, key=top_rank) without ranking the entry again
            entries.insert(bisect_right(entries, rank, key=top_rank), entry)
        elif rank < top_rank(entries[-1]):
            entries.insert(bisect_right(entries, rank, key=top_rank), entry)
            del entries[TOP_N:]


_BY_TIME_AND_ID = itemgetter(1, 2)
_BY_CENTS = itemgetter(0)


def sort_by_rank(entries: list[list[Any]]) -> None:
    """``entries.sort(key=top_rank)``, as two sorts with keys that run no Python code: by time and
    record id, then by amount, largest first (both stable, so entries of equal rank keep their
    order)."""
    entries.sort(key=_BY_TIME_AND_ID)
    entries.sort(key=_BY_CENTS, reverse=True)
