"""What an account's and an institution's step share: a set of detectors run over several
messages in order, each judged on its own, and the regions their findings are filed under."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from models.detectors import DetectContext
from models.detectors.common import Owned, disown, own_states
from models.findings import Finding


def judge_messages(
    detectors: Mapping[str, ModuleType],
    ctx: DetectContext,
    states: dict[str, Any] | None,
    key: str,
    messages: list[tuple[str, list[Any]]],
    consume: bool = False,
) -> tuple[dict[str, Any], list[Finding]]:
    """Every detector's state after ``messages`` (each folded and judged on its own, in order),
    and all their findings in order. With several messages the states are copied once for all
    of them (models/detectors/common.Owned); with ``consume`` the caller gives ``states`` up and
    they are worked on in place."""
    owned = consume or len(messages) > 1
    current = own_states(states, consume) if owned else (states or {})
    findings: list[Finding] = []
    for msg_id, records in messages:
        new_states: dict[str, Any] = {}
        for name, detector in detectors.items():
            state, found = detector.detect(ctx, current.get(name), key, msg_id, records)
            if state:
                new_states[name] = Owned(state) if owned and type(state) is not Owned else state
            findings.extend(found)
        current = new_states
    return (disown(current) if owned else current), findings


def regions_of(ctx: DetectContext, findings: list[Finding]) -> dict[str, str]:
    """The region of each institution the findings are filed under."""
    region_of: dict[str, str] = {}
    for finding in findings:
        if finding.institution_id not in region_of:
            institution = ctx.references.institution(finding.institution_id) or {}
            region_of[finding.institution_id] = str(institution.get("region") or "")
    return region_of
