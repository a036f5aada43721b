"""The `anomaly` detector's evidence per open day: its first and last booking time and its
EVIDENCE_N largest transactions, the alert's records. A function of the set of records, as the
rest of the detector's state (models/detectors/anomaly.py). A sealed day's evidence is frozen
(models/detectors/frozen.py): only a late record reads or changes it again."""

from __future__ import annotations

from bisect import insort
from typing import Any

from models.detectors.common import open_from, top_rank
from models.detectors.frozen import freeze_before, thawed
from schemas.messages import TxnRecord

EVIDENCE_N = 10  # largest transactions kept per open day as the alert's records


# -- evidence --------------------------------------------------------------------------------


def with_evidence(evidence: dict[str, Any], groups: dict[int, list[TxnRecord]]) -> dict[str, Any]:
    """A new evidence map with the counted records (by day, ``day_groups``) in: per day its first
    and last booking time and its EVIDENCE_N largest transactions ([cents, booked_at, record_id,
    "in"/"out"], largest first)."""
    out = dict(evidence)
    for day_start, txns in groups.items():
        key = str(day_start)
        day = thawed(out.get(key))
        times = [txn.booked_at for txn in txns]
        t0, t1 = min(times), max(times)
        if day is None:
            top: list[list[Any]] = []
        else:  # the caller's: copied, not changed
            top = list(day["top"])
            t0, t1 = min(day["t0"], t0), max(day["t1"], t1)
        out[key] = {"t0": t0, "t1": t1, "top": _top_with(top, txns)}
    return out


def _top_with(top: list[list[Any]], txns: list[TxnRecord]) -> list[list[Any]]:
    """``top`` (changed in place) with the EVIDENCE_N largest of ``top`` and ``txns``."""
    for txn in txns:
        cents = txn.amount_cents
        if len(top) >= EVIDENCE_N and cents < top[-1][0]:
            continue  # most records of a busy day are not among its largest
        entry = [cents, txn.booked_at, txn.record_id, "in" if txn.credit else "out"]
        if len(top) < EVIDENCE_N or top_rank(entry) < top_rank(top[-1]):
            insort(top, entry, key=top_rank)
            del top[EVIDENCE_N:]
    return top


def day_evidence(evidence: dict[str, Any], day: int) -> dict[str, Any] | None:
    """The evidence kept of one day (None when there is none)."""
    return thawed(evidence.get(str(day)))


def freeze_sealed(evidence: dict[str, Any], wm: int | None) -> None:
    """Freeze, in place, the evidence of the days the watermark ``wm`` sealed (``evidence`` is the
    caller's own map, as ``with_evidence`` makes it)."""
    freeze_before(evidence, open_from(wm))
