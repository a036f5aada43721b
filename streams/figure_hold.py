"""Alert updates that change only figures, held for a moment and written once.

A busy custody or reserve account's large-value day changes with nearly every take: at 10,000
records/s a worker wrote about 4,300 alert revisions in six seconds, two thirds of them updates
that moved neither the alert's severity nor its amount band (models/alert_history.py), to the
alerts table and to the alerts topic, and the dispatcher read every one to tell a subscriber of at
most one per FUNDWATCH_NOTIFY_INTERVAL_S. Such an update is now held, replaced by the alert's next
one, and written at the next commit or once it has waited HOLD_MAX_S, whichever comes first. Any
other revision (a new alert, a severity or amount band changed) is written at once, in place of a
held one of the same alert.

A held revision must be written before the states that made it reach the changelog, as a take's
alerts must be (streams/take_gate.py): a worker killed in between would come back with the states,
skip the redelivered messages, and the revision would never be written. So a commit releases the
held revisions before it writes any state, and while it is under way (``releasing``) nothing is
held: a take that ends before the states are written has all its revisions out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from models.alert_history import UPDATED, amount_band
from schemas.alerts import AlertData

# How long an update may be held when no commit comes (FUNDWATCH_COMMIT_INTERVAL_S may be a
# minute): the desks' alerts table is at most about this far behind the detectors' figures.
HOLD_MAX_S = 1.0
# Alerts whose newest written severity and amount band are remembered; one not found here has its
# next update written at once.
MARKS_KEPT = 50_000

Changed = list[tuple[str, AlertData]]


class FigureHold:
    def __init__(self, clock: Callable[[], float], marks_kept: int = MARKS_KEPT) -> None:
        self.clock = clock
        self.marks_kept = marks_kept
        # alert id -> the newest update held, in the order first held
        self.held: dict[str, tuple[str, AlertData]] = {}
        self.held_since: float | None = None
        # alert id -> (severity, amount band) of the newest revision written
        self._marks: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self.releasing = 0  # commits writing their states: nothing is held meanwhile

    def to_write(self, changed: Changed, hold: bool = True) -> Changed:
        """The revisions to write now, held ones first (they are older). With ``hold``, and no
        commit under way, an update of figures alone is held instead."""
        if not hold or self.releasing:
            newer = {alert.alert_id for _, alert in changed}
            return self.release(newer) + list(changed)
        now: Changed = []
        for event_type, alert in changed:
            if event_type == UPDATED and self._marks.get(alert.alert_id) == _mark(alert):
                if not self.held:
                    self.held_since = self.clock()
                self.held[alert.alert_id] = (event_type, alert)
            else:
                self.held.pop(alert.alert_id, None)
                now.append((event_type, alert))
        return now

    def release(self, superseded: Iterable[str] = ()) -> Changed:
        """Every held revision, the held emptied; none of the alerts in ``superseded`` (a newer
        revision of theirs is on its way)."""
        if not self.held:
            return []
        held, self.held, self.held_since = self.held, {}, None
        for alert_id in superseded:
            held.pop(alert_id, None)
        return list(held.values())

    def due(self) -> bool:
        """Whether the oldest held revision has waited HOLD_MAX_S."""
        return self.held_since is not None and self.clock() - self.held_since >= HOLD_MAX_S

    def written(self, alerts: Iterable[AlertData]) -> None:
        """Revisions written: the marks their alerts' next updates are compared with."""
        for alert in alerts:
            self._marks[alert.alert_id] = _mark(alert)
            self._marks.move_to_end(alert.alert_id)
        while len(self._marks) > self.marks_kept:
            self._marks.popitem(last=False)


def _mark(alert: AlertData) -> tuple[str, int]:
    return alert.severity, amount_band(alert.amount)
