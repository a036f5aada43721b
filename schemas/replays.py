"""Saved replays (`fundwatch replay --save`) as ClickHouse keeps them and as the API serves them
(`GET /v1/replays`, `GET /v1/replays/{replay_id}`).

A replay compares the alerts of two runs over the same stored records: the baseline (what is live)
and a candidate (another thresholds file, another anomaly model artefact, or both). What each run
judged with is a ``ReplaySide``. The counts are kept per (typology, institution, region) and the
alerts gained, lost and regraded one per row, so that a desk's view of a replay is made of its own
region's rows alone: its totals, its groupings and its alerts.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.api import AlertRegion, Limit

ReplayKind = Literal["gained", "lost", "regraded"]


class ModelRef(msgspec.Struct, frozen=True, kw_only=True):
    """An `anomaly` model artefact (services/anomaly_store.py): its id and content digest."""

    artefact_id: str
    digest: str


class ReplaySide(msgspec.Struct, frozen=True, kw_only=True):
    """What one run of a replay judged with."""

    thresholds: str  # the thresholds' version, as alerts carry it
    thresholds_file: str | None = None  # the file's name; None: the configured one
    model: ModelRef | None = None  # None: no anomaly model, so no `anomaly` alert


class SavedReplay(msgspec.Struct, frozen=True, kw_only=True):
    """The document of a row of ``fundwatch.replays``: what the replay was, not what it found."""

    since: str  # RFC 3339, UTC; the period is [since, until) of the records' event time
    until: str
    baseline: ReplaySide
    candidate: ReplaySide
    records: int  # read from the whole store, every region's
    messages: int
    elapsed_s: float


# --- the API ------------------------------------------------------------------------------------


class ReplayListQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/replays: the newest first; a desk's region is its own."""

    region: AlertRegion | None = None  # a region prefix
    limit: Limit = 100


class ReplayQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/replays/{replay_id}: ``limit`` alerts at most of each list (gained, lost,
    regraded), the largest amounts first; the counts always cover them all."""

    region: AlertRegion | None = None
    limit: Limit = 1000


class ReplayTotals(msgspec.Struct, frozen=True, kw_only=True):
    baseline_alerts: int
    candidate_alerts: int
    gained: int
    lost: int
    regraded: int  # raised by both runs, with another severity


class ReplaySummary(msgspec.Struct, frozen=True, kw_only=True):
    replay_id: str
    saved_at: str
    since: str
    until: str
    baseline: ReplaySide
    candidate: ReplaySide
    # how much the replay read, every region's: shown to admins only (None for a desk)
    records: int | None = None
    messages: int | None = None
    totals: ReplayTotals  # within the caller's region


class ReplayList(msgspec.Struct):
    replays: list[ReplaySummary]


class ReplayGroup(msgspec.Struct, frozen=True, kw_only=True):
    """A typology's, institution's or region's alerts under each run."""

    name: str
    baseline: int
    candidate: int
    gained: int
    lost: int
    regraded: int


class ReplayAlert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert one run raised and the other did not, or graded differently: as the run that
    raised it has it (the candidate's for a regraded one). Never an account number."""

    kind: ReplayKind
    alert_id: str
    typology: str
    institution_id: str
    region: str
    severity: str
    baseline_severity: str | None = None  # for a regraded alert
    amount: str
    window_start: str
    window_end: str


class ReplayDetail(msgspec.Struct, frozen=True, kw_only=True):
    replay: ReplaySummary
    region: str  # the region prefix shown ("" for every region)
    by_typology: list[ReplayGroup]
    by_institution: list[ReplayGroup]
    by_region: list[ReplayGroup]
    gained: list[ReplayAlert]
    lost: list[ReplayAlert]
    regraded: list[ReplayAlert]
    truncated: bool  # a list holds more alerts than ``limit``: the totals count them all
