"""Which revisions of an alert its history keeps (``alert_events``, GET /v1/alerts/{id}).

The alert itself (``alerts``, its current state) always carries the newest figures; the history
is what a desk reads to see how the case went, so it keeps a revision only when something a desk
acts on changed: the severity, the status, or the band of the amount. Every event that is not a
detector's update (a creation, an action such as "acknowledged" or "disposed", a comment) is
kept as it is. A figure tick (one more record in the day's total) is not kept: a busy account's
day was 84 near-identical rows in 104 seconds.

Amount bands are the 1-2-5 series: ..., 100,000, 200,000, 500,000, 1,000,000, 2,000,000, ... An
amount is in the band of the largest line at or below it, so an update is kept when the amount
crosses a line, about every doubling. The reporting and severity lines of the rules sit on the
series (cash CNY 50,000, cross-border 200,000, natural-person transfers 500,000, other transfers
2,000,000), so crossing one of them always shows. Amounts below 1 (none, or no money figure)
share one band.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

UPDATED = "updated"  # the event type of a detector's update (models/alerting.fold_findings)
_STEPS = (5, 2, 1)


def amount_band(amount: str) -> int:
    """The amount's place on the 1-2-5 series: 3 x the decade + 0, 1 or 2 for 1, 2 or 5 (so
    1 -> 0, 2 -> 1, 5 -> 2, 10 -> 3, 2,000,000 -> 19); -1 below 1 or unreadable."""
    try:
        value = abs(Decimal(amount))
    except (InvalidOperation, TypeError, ValueError):
        return -1
    if not value.is_finite() or value < 1:
        return -1
    digits = len(str(int(value))) - 1  # the decade, read exactly from the integral part
    lead = int(value) // 10**digits
    step = next(i for i, line in enumerate(_STEPS) if lead >= line)
    return 3 * digits + (2 - step)


def mark(severity: str, status: str, amount: str) -> tuple[str, str, int]:
    """What a desk reads of a revision, for comparing two of them."""
    return severity, status, amount_band(amount)


def keeps(event_type: str, previous: tuple[str, str, int] | None, current: tuple[str, str, int]) -> bool:
    """Whether the history keeps this event, ``previous`` being the mark of the last one kept
    (None: nothing kept yet, or not known here)."""
    return event_type != UPDATED or previous is None or previous != current
