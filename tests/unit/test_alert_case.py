"""models/alert_case.py: the status machine of desk actions, the overlay workers put on the alerts
they emit (status kept over figures updates, reopening when the severity rises after disposal,
revisions that keep growing), and which suppression holds an alert back."""

from __future__ import annotations

import msgspec
import pytest

from models.alert_case import (
    ALLOWED_FROM,
    Refused,
    apply_action,
    audit_row,
    case_of,
    overlay_case,
    overlay_suppression,
    suppression_for,
)
from schemas.actions import (
    AUDIT_COLUMNS,
    Acknowledge,
    ActionRequest,
    Actor,
    AlertCase,
    Assign,
    Comment,
    Dispose,
    Reopen,
    Suppression,
    SuppressionRequest,
)
from schemas.alerts import AlertData, DetectorInfo, Evidence, Explanation
from schemas.validation import ValidationFailure, decode

STATUSES = ("open", "acknowledged", "assigned", "disposed")
NOW = 1_795_200_000


def alert(**changes) -> AlertData:
    base = AlertData(
        alert_id="A1", typology="large_value", severity="medium", score=0.5, institution_id="I1",
        region="220102", accounts=["6222000011112222"], amount="2500000.00",
        window_start="2026-11-20T00:00:00Z", window_end="2026-11-21T00:00:00Z",
        evidence=Evidence(record_ids=["r1"], metrics={}, thresholds={}),
        explanation=Explanation(zh="大额", en="large"), detector=DetectorInfo(name="large_value", version="1"),
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def case(status: str = "open", **changes) -> AlertCase:
    return msgspec.structs.replace(AlertCase(alert_id="A1", status=status, severity="medium"), **changes)


REQUESTS: dict[str, ActionRequest] = {
    "acknowledge": Acknowledge(),
    "assign": Assign(assignee="desk-officer-7"),
    "dispose": Dispose(disposition="rectify", note="整改期限30日"),
    "reopen": Reopen(),
    "comment": Comment(note="已电话核实"),
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", list(REQUESTS))
def test_each_action_applies_from_its_statuses_only(action: str, status: str) -> None:
    before = case(status, bumps=2)
    if status not in ALLOWED_FROM[action]:
        with pytest.raises(Refused, match=action):
            apply_action(before, REQUESTS[action], "medium", 10)
        return
    after, writes = apply_action(before, REQUESTS[action], "medium", 10)
    if action == "comment":
        assert (after, writes) == (before, False)  # a note changes no status and writes no version
        return
    expected = {"acknowledge": "acknowledged", "assign": "assigned", "dispose": "disposed", "reopen": "open"}
    assert writes and after.status == expected[action]
    assert after.bumps == 3 and after.seq == 10 and after.revision == before.revision + 1


def test_the_walk_of_a_case_and_its_fields() -> None:
    walked, _ = apply_action(case(), Acknowledge(), "medium", 1)
    walked, _ = apply_action(walked, Assign(assignee="officer-1"), "medium", 2)
    assert walked.assignee == "officer-1"
    walked, _ = apply_action(walked, Assign(assignee="officer-2"), "medium", 3)  # reassigned
    walked, _ = apply_action(walked, Dispose(disposition="rectify"), "high", 4)
    assert (walked.status, walked.disposition, walked.assignee, walked.severity) == (
        "disposed", "rectify", "officer-2", "high")  # fmt: skip
    with pytest.raises(Refused, match="reopen it first"):
        apply_action(walked, Dispose(disposition="close"), "high", 5)  # disposing twice
    walked, _ = apply_action(walked, Reopen(), "high", 6)
    assert (walked.status, walked.disposition, walked.assignee, walked.bumps) == ("open", None, None, 5)


def test_the_case_of_an_alert_takes_its_status_from_the_alert_and_its_count_from_the_last_case() -> None:
    now = case_of(alert(status="acknowledged", severity="high", revision=7), case("open", bumps=4, seq=9))
    assert (now.status, now.severity, now.bumps, now.seq, now.revision) == ("acknowledged", "high", 4, 9, 7)
    assert case_of(alert(), None).bumps == 0


def test_a_figures_update_keeps_the_case_and_its_revisions_keep_growing() -> None:
    # the worker counts 3 versions of its own; actions wrote 2 more (acknowledge, dispose)
    disposed = case("disposed", disposition="rectify", assignee="officer-1", bumps=2, severity="medium")
    emitted, reopened = overlay_case(alert(revision=3), disposed, 99)
    assert reopened is None
    assert (emitted.status, emitted.disposition, emitted.assignee, emitted.revision) == (
        "disposed", "rectify", "officer-1", 5)  # fmt: skip
    emitted, _ = overlay_case(
        alert(revision=4, severity="low"), disposed, 99
    )  # better figures: still disposed
    assert (emitted.status, emitted.revision) == ("disposed", 6)


def test_a_disposed_alert_whose_severity_rises_reopens_and_says_why() -> None:
    disposed = case("disposed", disposition="close", bumps=1, severity="medium")
    emitted, reopened = overlay_case(alert(revision=2, severity="high"), disposed, 77)
    assert reopened is not None
    assert (emitted.status, emitted.disposition, emitted.revision) == ("open", None, 3)
    assert emitted.reopened_reason == "severity rose from medium to high after disposal"
    assert (reopened.status, reopened.severity, reopened.seq, reopened.bumps, reopened.revision) == (
        "open", "high", 77, 1, 3)  # fmt: skip
    # the next update of the reopened alert keeps it open, with its reason, and reopens nothing more
    again, more = overlay_case(alert(revision=3, severity="critical"), reopened, 78)
    assert (again.status, again.reopened_reason, more) == ("open", reopened.reopened_reason, None)


@pytest.mark.parametrize("status", ["open", "acknowledged", "assigned"])
def test_only_a_disposed_alert_reopens_itself(status: str) -> None:
    emitted, reopened = overlay_case(alert(severity="critical"), case(status, severity="low"), 1)
    assert reopened is None and emitted.status == status


def test_an_alert_without_a_case_is_emitted_as_it_is() -> None:
    assert overlay_case(alert(), None, 1) == (alert(), None)


def suppression(**changes) -> Suppression:
    base = Suppression(
        id="S1", typology="large_value", region="", until="2026-12-31T00:00:00Z", reason="已知业务",
        created_at="2026-11-01T00:00:00Z", created_by=Actor(token_id="t1", role="admin"), institution_id="I1",
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def _held(*suppressions: Suppression, now: float = NOW, **alert_changes) -> str | None:
    a = alert(**alert_changes)
    found = suppression_for(suppressions, a.typology, a.institution_id, a.region, a.alert_id, a.accounts, now)
    return found.id if found else None


def test_a_suppression_holds_its_typology_and_institution_until_it_expires() -> None:
    assert _held(suppression()) == "S1"
    assert _held(suppression(), typology="fund_pool") is None
    assert _held(suppression(), institution_id="I2") is None
    assert _held(suppression(until="2026-11-01T00:00:00Z")) is None  # expired: applies no more


def test_a_suppression_by_key_holds_the_alert_of_that_id_or_account() -> None:
    assert _held(suppression(institution_id=None, key="A1")) == "S1"
    assert _held(suppression(institution_id=None, key="6222000011112222")) == "S1"
    assert _held(suppression(institution_id=None, key="other")) is None


def test_a_desks_suppression_holds_only_in_its_region() -> None:
    assert _held(suppression(region="2201")) == "S1"
    assert _held(suppression(region="2201"), region="110105") is None


def test_the_longest_suppression_is_named_when_several_hold() -> None:
    later = suppression(id="S2", until="2027-01-31T00:00:00Z")
    assert _held(suppression(), later) == "S2"


def test_the_overlay_marks_and_unmarks_an_alert() -> None:
    marked = overlay_suppression(alert(), [suppression()], NOW)
    assert (marked.suppressed, marked.suppression_id) == (True, "S1")
    cleared = overlay_suppression(marked, [], NOW)
    assert (cleared.suppressed, cleared.suppression_id) == (False, None)
    assert overlay_suppression(alert(), [], NOW) == alert()


def test_an_audit_row_names_the_actor_and_never_more_than_the_action_gave() -> None:
    disposed, _ = apply_action(
        case("assigned", assignee="officer-1"), Dispose(disposition="rectify"), "medium", 42
    )
    row = dict(zip(AUDIT_COLUMNS, audit_row(disposed, alert(), NOW, "tok-id", "desk", "dispose", "assigned",
                                            "限期整改"), strict=True))  # fmt: skip
    assert (row["actor_id"], row["actor_role"], row["previous_status"], row["new_status"]) == (
        "tok-id", "desk", "assigned", "disposed")  # fmt: skip
    assert (row["disposition"], row["assignee"], row["note"], row["version"]) == (
        "rectify",
        "",
        "限期整改",
        42,
    )
    assert msgspec.json.decode(row["case_state"], type=AlertCase) == disposed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"action": "escalate"}', "action"),
        (b'{"note": "x"}', "action"),
        (b'{"action": "dispose", "disposition": "ignore"}', "disposition"),
        (b'{"action": "dispose"}', "disposition"),
        (b'{"action": "assign"}', "assignee"),
        (b'{"action": "acknowledge", "disposition": "close"}', "disposition"),
        (b'{"action": "comment"}', "note"),
    ],
)
def test_action_requests_that_break_their_rule_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ValidationFailure) as failure:
        decode(body, ActionRequest)
    assert failure.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"typology": "large_value", "until": "2026-12-01T00:00:00Z", "reason": "r"}, "institution_id"),
        (
            {
                "typology": "large_value",
                "until": "2026-12-01T00:00:00Z",
                "reason": "r",
                "institution_id": "I",
                "key": "k",
            },
            "institution_id",
        ),  # fmt: skip
        ({"typology": "fraud", "until": "2026-12-01T00:00:00Z", "reason": "r", "key": "k"}, "typology"),
        ({"typology": "large_value", "until": "2026-02-30T00:00:00Z", "reason": "r", "key": "k"}, "until"),
        ({"typology": "large_value", "until": "2026-12-01", "reason": "r", "key": "k"}, "until"),
        ({"typology": "large_value", "until": "2026-12-01T00:00:00Z", "reason": "", "key": "k"}, "reason"),
    ],
)
def test_suppression_requests_that_break_their_rule_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationFailure) as failure:
        decode(msgspec.json.encode(body), SuppressionRequest)
    assert failure.value.field == field
