"""Counterparties without keeping them: a bounded, order-independent sample of hashes per day.

Each counterparty account id is hashed (64-bit blake2b); a day keeps, per direction, the
COUNTERPARTY_SAMPLE smallest hashes of its distinct counterparties (a bottom-k sample) and
whether any was left out. The smallest k of a set do not depend on the order its members came
in, so the sample is a function of the day's records, like the sums. Below k distinct
counterparties the sample is the whole set and counts are exact; beyond it the count is the
k-minimum-values estimate (k - 1) / u_k, u_k the k-th smallest hash scaled to (0, 1], with a
relative standard error of about 1 / sqrt(k - 2) (18% for k = 32).

A hash is not anonymisation (account numbers are few enough to enumerate), but state and
features hold no account number as such, and nothing here is shown to anyone.

"New" counterparties are judged only where the samples are complete: below the smallest
"largest kept hash" of every truncated sample involved (the judged day's and its history days').
Below that bound each sample holds every hash its day had, so a hash missing from the history's
samples was truly not seen; the hashes below the bound are a uniform draw of the day's
counterparties, so their share of new ones estimates the whole day's.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from models.features.schema import COUNTERPARTY_SAMPLE
from schemas.messages import TxnRecord

_HASH_SPACE = 2**64
_PERSON = b"fw-cpty"
# Values banks put where there is no counterparty account: they name nobody, so two records
# carrying one are not "the same counterparty" and are counted as unknown instead.
_PLACEHOLDERS = frozenset({"NONE", "NULL", "N/A", "NA", "UNKNOWN", "CASH"})


class CounterpartySample(msgspec.Struct, array_like=True):
    hashes: list[int] = []  # ascending, at most COUNTERPARTY_SAMPLE
    truncated: bool = False  # the day had more distinct counterparties than the sample holds
    # The day's cents with each kept counterparty, in ``hashes`` order. A kept hash was never
    # above the sample's bound (the bound only falls), so every record of it was added: the sums
    # are as order-independent as the hashes. Empty in a state written before schema version 3.
    cents: list[int] = []

    def cents_of(self, index: int) -> int:
        return self.cents[index] if len(self.cents) == len(self.hashes) else 0


def counterparty_hash(account: str) -> int:
    digest = hashlib.blake2b(account.encode("utf-8"), digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "big")


_HASHES: dict[str, int | None] = {}  # counterparty_hash_of's memory: account value -> hash
_HASHES_MAX = 1 << 16  # forgotten whole when full: it only spares hashing again
_NOT_YET: Any = object()


def counterparty_hash_of(account: str) -> int | None:
    """The hash of the counterparty a transaction's ``counterparty_account`` names, or None when
    it names none (``known_counterparty``, channel aside: a cash transaction names none either).
    Remembered per value: most transactions of a day name a counterparty seen before."""
    hashed = _HASHES.get(account, _NOT_YET)
    if hashed is _NOT_YET:
        known = _known_account(account)
        hashed = None if known is None else counterparty_hash(known)
        if len(_HASHES) >= _HASHES_MAX:
            _HASHES.clear()
        _HASHES[account] = hashed
    return hashed


def _known_account(value: str) -> str | None:
    account = value.strip()
    if not account.strip("0-") or account.upper() in _PLACEHOLDERS:
        return None
    return account


def known_counterparty(txn: TxnRecord) -> str | None:
    """The counterparty account a transaction names, or None when it names none: cash, an empty
    value, or a placeholder (only zeros and dashes, or a word such as "UNKNOWN")."""
    if txn.channel == "CASH":
        return None
    return _known_account(txn.counterparty_account)


def merged(sample: CounterpartySample, amounts: Mapping[int, int]) -> CounterpartySample:
    """A sample of the union of ``sample``'s set and ``amounts``' hashes, each kept hash with its
    cents summed (``sample`` is left as it was, and is what comes back when nothing changes)."""
    kept = sample.hashes
    truncated = sample.truncated
    if len(kept) >= COUNTERPARTY_SAMPLE and any(h > kept[-1] for h in amounts):
        # full: a hash above its largest cannot enter, and one there truncates the union
        truncated = True
        amounts = {h: c for h, c in amounts.items() if h <= kept[-1]}
    if not amounts and truncated == sample.truncated:
        return sample
    # the kept hashes are ascending and distinct: each new one goes in where it belongs (a day's
    # step brings a few, and rebuilding the sample for them cost more than the rest of the step)
    hashes = list(kept)
    # each kept hash with sample.cents_of(n): its cents, or 0 in a sample written without them
    cents = list(sample.cents) if len(sample.cents) == len(kept) else [0] * len(kept)
    for h, c in amounts.items():
        index = bisect_left(hashes, h)
        if index < len(hashes) and hashes[index] == h:
            cents[index] += c
        else:
            hashes.insert(index, h)
            cents.insert(index, c)
    if len(hashes) > COUNTERPARTY_SAMPLE:
        del hashes[COUNTERPARTY_SAMPLE:], cents[COUNTERPARTY_SAMPLE:]
        truncated = True
    return CounterpartySample(hashes, truncated, cents)


def distinct_count(sample: CounterpartySample) -> float:
    """Distinct counterparties of the day: exact below the sample size, estimated beyond."""
    if not sample.truncated:
        return float(len(sample.hashes))
    kth_smallest = (sample.hashes[-1] + 1) / _HASH_SPACE
    return (len(sample.hashes) - 1) / kth_smallest


def comparable_bound(samples: Iterable[CounterpartySample]) -> int | None:
    """The largest hash below which every one of ``samples`` is complete; None: all are."""
    bounds = [sample.hashes[-1] for sample in samples if sample.truncated]
    return min(bounds) if bounds else None


def new_share(
    day_samples: Iterable[CounterpartySample], history_samples: Iterable[CounterpartySample]
) -> tuple[float, int]:
    """The share of the day's counterparties not among the history's, and how many of the day's
    counterparties it was judged on (0 gives a share of 0: no counterparty is no evidence)."""
    day_samples, history_samples = list(day_samples), list(history_samples)
    bound = comparable_bound([*day_samples, *history_samples])
    judged = {h for sample in day_samples for h in sample.hashes if bound is None or h <= bound}
    if not judged:
        return 0.0, 0
    known = {h for sample in history_samples for h in sample.hashes}
    return len(judged - known) / len(judged), len(judged)
