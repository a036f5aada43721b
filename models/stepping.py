"""What an account's and an institution's step share: a set of detectors run over several
messages in order, each judged on its own, the regions their findings are filed under, and the
key's own event-time clock, which tells the worker which records came late.

The clock (``clock_step``) is kept in the account's or institution's state: per bank, as the
detectors keep theirs (models/detectors/common.advance_sources), over every record the key
receives. A record of a Beijing day the clock had sealed before its message came is *late*; the
detectors still judge it (and say so in their findings), and the count per bank goes to the
observers registered with ``observe_late`` (the worker's ``fundwatch_late_records_total``), so
late data is never dropped unseen. Observers are the one side effect here: they only count."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from models.detectors import DetectContext, Detector
from models.detectors.common import (
    Owned,
    advance_sources,
    event_time,
    event_times,
    open_from,
    own_states,
    source_of,
)
from models.findings import Finding

# (bank code, scope "account" or "institution", late records)
LateObserver = Callable[[str, str, int], None]
_LATE_OBSERVERS: list[LateObserver] = []


def observe_late(observer: LateObserver) -> None:
    """Call ``observer`` with every count of late records a step finds."""
    if observer not in _LATE_OBSERVERS:
        _LATE_OBSERVERS.append(observer)


def ignore_late(observer: LateObserver) -> None:
    """Stop calling ``observer``."""
    if observer in _LATE_OBSERVERS:
        _LATE_OBSERVERS.remove(observer)


def clock_step(
    ctx: DetectContext, clock: dict[str, Any] | None, messages: Iterable[tuple[str, list[Any]]], scope: str
) -> dict[str, Any]:
    """The key's clock after ``messages`` (a new dict: the caller's is not changed); the records
    each message held of days the clock had sealed before it are reported as late, per bank."""
    clock = {"wm": clock.get("wm"), "src": clock.get("src") or {}} if clock else {"wm": None, "src": {}}
    late: Counter[str] | None = None  # made for the first late record: most steps have none
    for _, records in messages:
        wm = clock["wm"]
        if wm is not None:
            # is_sealed(ts, wm) for every record, as one comparison: ts < open_from(wm)
            start = open_from(wm)
            # most messages hold no late record: one pass finds that, a second counts them
            if records and min(event_times(records)) < start:
                for record in records:
                    if event_time(record) < start:
                        if late is None:
                            late = Counter()
                        late[source_of(ctx, record) or "unknown"] += 1
        advance_sources(clock, ctx, records)
    if not late or not _LATE_OBSERVERS:
        return clock
    for bank, count in sorted(late.items()):
        for observer in _LATE_OBSERVERS:
            observer(bank, scope, count)
    return clock


def judge_messages(
    detectors: Mapping[str, Detector],
    ctx: DetectContext,
    states: dict[str, Any] | None,
    key: str,
    messages: list[tuple[str, list[Any]]],
    consume: bool = False,
    view_of: Callable[[str, list[Any]], Any] | None = None,
) -> tuple[dict[str, Any], list[Finding]]:
    """Every detector's state after ``messages`` (each folded and judged on its own, in order),
    and all their findings in order. With several messages the states are copied once for all
    of them (models/detectors/common.Owned); with ``consume`` the caller gives ``states`` up and
    they are worked on in place. With ``view_of`` (the institution's step) one view is made of
    each message (its id and records), and each detector judges that view (``detect_view``), so
    that what they all read of it is read once."""
    owned = consume or len(messages) > 1
    current = own_states(states, consume) if owned else (states or {})
    findings: list[Finding] = []
    last = len(messages) - 1
    for index, (msg_id, records) in enumerate(messages):
        # the states after the last message are handed back, not worked on: only an Owned one
        # needs a plain copy then, and a detector's new plain state needs no Owned one first
        wrap = owned and index < last
        new_states: dict[str, Any] = {}
        view = None if view_of is None else view_of(msg_id, records)
        for name, detector in detectors.items():
            if view is None:
                state, found = detector.detect(ctx, current.get(name), key, msg_id, records)
            else:
                # an institution detector's (protocol.InstitutionDetector): only its step has views
                state, found = detector.detect_view(ctx, current.get(name), key, view)
            if state:
                new_states[name] = Owned(state) if wrap and type(state) is not Owned else state
            if found:
                findings.extend(found)
        current = new_states
    if not owned:
        return current, findings
    # common.disown, for the Owned states alone: a detector's new plain state is its own already
    return {name: dict(state) if type(state) is Owned else state for name, state in current.items()}, findings


def regions_of(ctx: DetectContext, findings: list[Finding]) -> dict[str, str]:
    """The region of each institution the findings are filed under."""
    region_of: dict[str, str] = {}
    for finding in findings:
        if finding.institution_id not in region_of:
            institution = ctx.references.institution(finding.institution_id) or {}
            region_of[finding.institution_id] = str(institution.get("region") or "")
    return region_of
