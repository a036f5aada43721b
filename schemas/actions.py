"""What desks do with alerts (CONTRACT.md §2 `POST /v1/alerts/{id}/actions`, `/v1/suppressions`):
the request bodies, the case state every worker follows, the audit trail's entries, and the
suppressions. The same types validate requests and describe them in the OpenAPI document.

An action request is a union tagged by ``action``, each member with exactly its own fields: an
assignment names its ``assignee``, a disposal its ``disposition`` (DOMAIN.md 四(三) 分类处置), so
an unknown action, an unknown disposition or a field of another action is refused naming it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.api import Typology
from schemas.fields import Id, Time, time_breaks_rule

# Compacted topics keyed by alert id and by suppression id: every worker reads them from the start
# and overlays what they hold on every alert it emits (streams/alert_state.py).
ALERT_ACTIONS_TOPIC = "fw.alert-actions"
SUPPRESSIONS_TOPIC = "fw.suppressions"

Disposition = Literal["continue_supervision", "rectify", "close", "refer_judicial", "false_positive"]
Note = Annotated[str, msgspec.Meta(max_length=2000, description="free text of at most 2000 characters")]
Said = Annotated[
    str, msgspec.Meta(min_length=1, max_length=2000, description="free text of 1 to 2000 characters")
]
Assignee = Id  # who takes the alert on: a person's or a team's identifier


class Acknowledge(msgspec.Struct, tag_field="action", tag="acknowledge", forbid_unknown_fields=True):
    """The desk has seen the alert (open → acknowledged)."""

    note: Note | None = None


class Assign(msgspec.Struct, tag_field="action", tag="assign", forbid_unknown_fields=True):
    """Someone takes the alert on (open, acknowledged or assigned → assigned)."""

    assignee: Assignee
    note: Note | None = None


class Dispose(msgspec.Struct, tag_field="action", tag="dispose", forbid_unknown_fields=True):
    """The finding is classified and handled (DOMAIN.md 四(三)); a disposed alert is reopened
    before it is disposed again."""

    disposition: Disposition
    note: Note | None = None


class Reopen(msgspec.Struct, tag_field="action", tag="reopen", forbid_unknown_fields=True):
    """Back to open; the disposition and the assignee are cleared."""

    note: Note | None = None


class Comment(msgspec.Struct, tag_field="action", tag="comment", forbid_unknown_fields=True):
    """A note on the alert's trail; its status does not change."""

    note: Said


ActionRequest = Acknowledge | Assign | Dispose | Reopen | Comment


class AlertCase(msgspec.Struct):
    """An alert's case as the actions left it: the value of ``fw.alert-actions`` (key: the alert
    id), which every worker overlays on the alerts it emits so that a figures update keeps it."""

    alert_id: str
    status: str
    disposition: str | None = None
    assignee: str | None = None
    # the alert's severity when the case last changed: a disposed alert that rises past it reopens
    severity: str = ""
    # alert versions the actions wrote, each a revision: the worker adds them to its own count, so
    # the revisions of one alert keep growing whoever writes them
    bumps: int = 0
    # the alert's revision when the case last changed: a worker that wrote a version at or past it
    # with an older case raced the action (streams/alert_state.py) and writes that version again
    revision: int = 0
    reopened_reason: str | None = None
    seq: int = 0  # nanoseconds since the epoch of the change: the newest wins where writers meet


class Actor(msgspec.Struct):
    token_id: str  # the token's id, never the token; "" for the system
    role: str  # admin, desk, or system


class AlertAction(msgspec.Struct, omit_defaults=True):
    """One entry of an alert's audit trail, as `GET /v1/alerts/{id}` shows it in ``actions``."""

    at: str
    actor: Actor
    action: str
    previous_status: str
    new_status: str
    disposition: str | None = None
    assignee: str | None = None
    note: str | None = None
    reason: str | None = None  # why the system reopened the alert


# The audit table (schemas/ddl.py migration 7), in this order.
AUDIT_COLUMNS = (
    "alert_id", "at", "actor_id", "actor_role", "action", "previous_status", "new_status", "disposition",
    "assignee", "note", "reason", "institution_id", "region", "case_state", "version",
)  # fmt: skip


# --- suppressions --------------------------------------------------------------------------------

MAX_SUPPRESSION_DAYS = 180


class SuppressionRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Alerts of ``typology`` on one institution, or on one ``key`` (an alert id, or an account the
    alert names), are stored and listed but not delivered until ``until`` (at most 180 days ahead)."""

    typology: Typology
    until: Time
    reason: Said
    institution_id: Id | None = None
    key: Id | None = None

    def __post_init__(self) -> None:
        if (self.institution_id is None) == (self.key is None):
            raise ValueError("`institution_id`: give an institution_id or a key, one of the two")
        wrong = time_breaks_rule(self.until)
        if wrong is not None:
            raise ValueError(f"`until`: must be {wrong}")


class Suppression(msgspec.Struct, omit_defaults=True):
    """A suppression as stored, followed by workers on ``fw.suppressions`` and listed."""

    id: str
    typology: str
    region: str  # the region prefix it is confined to: a desk's own, "" for an admin's
    until: str  # RFC 3339, UTC
    reason: str
    created_at: str
    created_by: Actor
    institution_id: str | None = None
    key: str | None = None


class SuppressionView(msgspec.Struct, omit_defaults=True):
    id: str
    typology: str
    region: str
    until: str
    reason: str
    created_at: str
    created_by: Actor
    active: bool  # false once ``until`` has passed
    institution_id: str | None = None
    key: str | None = None


class SuppressionList(msgspec.Struct):
    suppressions: list[SuppressionView]
