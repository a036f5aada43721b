"""The replay itself: stored records of a period through the detectors under two configurations,
in one read.

Both runs are the worker's steps in-process (services/simulator/pipeline.py), as ``fundwatch eval
--engine direct`` runs them: product reviews of every institution first (what the reference
upserts sent), then every message in the order the workers took it. Each slice read from
ClickHouse goes through the baseline and the candidate before the next is read, so the records
are read once and never held whole. Nothing is written anywhere: the alerts live in memory and
end in the report.

A run is a thresholds configuration and an ``anomaly`` model artefact (or none), put in its
DetectContext as the worker puts the artefact it serves: so a candidate may be another thresholds
file, another model version, or both.

Known limits: the reference data is read as it stands now, not as it stood during the period;
both runs start with empty detector states at ``since``, so a window reaching back before it
(a fund pool's days, a growth trend, the anomaly features' own history) sees only the period's
part. The desks' daily budget of anomaly alerts (streams/anomaly_budget.py), applied where a
worker publishes, is not applied: a replay counts what the detectors raise, as `fundwatch eval`
does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from models.detectors import DetectContext, StaticReferences
from models.thresholds import Thresholds
from schemas.replays import ModelRef
from services.progress import StatusLine
from services.replay.compare import AlertView, Comparison, compare, latest_revisions
from services.replay.source import (
    ReadOnly,
    check_tables,
    load_references,
    plan_slices,
    read_messages,
    records_per_second,
)
from services.simulator.pipeline import InProcessPipeline
from services.storage.base import Storage

if TYPE_CHECKING:
    from models.anomaly_serving import AnomalyModels

log = logging.getLogger("fundwatch.replay")

CHUNK_RECORDS = 50_000


class ReplayReport(msgspec.Struct, kw_only=True):
    since: str  # RFC 3339, UTC; the period is [since, until) of the records' event time
    until: str
    storage: str  # the backend's kind, never its address or credentials
    baseline_thresholds: str  # versions, as alerts carry them
    candidate_thresholds: str
    candidate_file: str | None
    baseline_file: str | None = None  # None: FUNDWATCH_THRESHOLDS_FILE or models/thresholds.toml
    baseline_model: ModelRef | None = None  # the anomaly artefact each run judged with, if any
    candidate_model: ModelRef | None = None
    records: int
    messages: int
    elapsed_s: float
    comparison: Comparison


def _ref(model: AnomalyModels | None) -> ModelRef | None:
    return None if model is None else ModelRef(artefact_id=model.artefact_id, digest=model.digest)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Configuration:
    """What one run judges with: thresholds, and an anomaly model or none."""

    thresholds: Thresholds
    model: AnomalyModels | None = None


class _Run:
    """One configuration's pipeline and the newest revision of each alert it raised."""

    def __init__(self, references: StaticReferences, configuration: Configuration) -> None:
        ctx = DetectContext(references, configuration.thresholds, anomaly_model=configuration.model)
        self.pipe = InProcessPipeline(ctx)
        self.alerts: dict[str, tuple[int, AlertView]] = {}

    def fold(self) -> None:
        # the pipeline keeps every revision it emitted; only the newest of each is needed
        latest_revisions(self.alerts, self.pipe.events)
        self.pipe.events.clear()

    def views(self) -> list[AlertView]:
        return sorted((view for _, view in self.alerts.values()), key=lambda view: view.alert_id)


class Replayed(msgspec.Struct, kw_only=True):
    records: int
    messages: int
    alerts: list[list[AlertView]]  # per configuration, in the order given


def replay_alerts(
    storage: Storage,
    since: datetime,
    until: datetime,
    configurations: Sequence[Configuration | Thresholds],
    *,
    chunk_records: int = CHUNK_RECORDS,
    status: StatusLine | None = None,
) -> Replayed:
    """The alerts each configuration raises over the raw records whose event time lies in
    [since, until) (aware datetimes), from one read of ``storage``, which is only queried. A
    configuration given as bare thresholds runs without an anomaly model."""
    if until <= since:
        raise ValueError("until must lie after since")
    status = status or StatusLine("replay", enabled=False)
    reader = ReadOnly(storage)
    began = time.monotonic()
    status.update("reading the reference data", force=True)
    check_tables(reader)
    reference = load_references(reader)
    references = StaticReferences(
        reference["accounts"], reference["institutions"], reference["related-parties"], reference["products"]
    )
    runs = [_Run(references, c if isinstance(c, Configuration) else Configuration(c)) for c in configurations]
    institutions = [str(item["institution_id"]) for item in reference["institutions"]]
    for run in runs:
        run.pipe.review(institutions, int(since.timestamp()))
        run.fold()

    status.update("counting the records of the period", force=True)
    slices = plan_slices(records_per_second(reader, since, until), chunk_records)
    total = sum(records for _, _, records in slices)
    records = messages = 0
    for taken in read_messages(reader, since, until, slices):
        for message in taken:
            for run in runs:
                run.pipe.push_message(message.bank_code, message.msg_id, message.records, message.received_at)
            records += len(message.records)
        messages += len(taken)
        for run in runs:
            run.fold()
        rate = records / max(time.monotonic() - began, 1e-9)
        alerts = ", ".join(f"{len(run.alerts):,}" for run in runs)
        status.update(
            f"{records:,}/{total:,} records ({messages:,} messages) through {len(runs)} runs, "
            f"{rate:,.0f} records/s; alerts per run: {alerts}"
        )
    return Replayed(records=records, messages=messages, alerts=[run.views() for run in runs])


def run_replay(
    storage: Storage,
    since: datetime,
    until: datetime,
    baseline: Thresholds,
    candidate: Thresholds,
    *,
    candidate_file: str | None = None,
    baseline_file: str | None = None,
    baseline_model: AnomalyModels | None = None,
    candidate_model: AnomalyModels | None = None,
    chunk_records: int = CHUNK_RECORDS,
    progress: bool = True,
) -> ReplayReport:
    """Replay the raw records whose event time lies in [since, until) under ``baseline`` and
    ``candidate`` (thresholds, each with its anomaly model or none) and compare their alerts.
    Reads ``storage``, writes nothing; progress on stderr."""
    began = time.monotonic()
    runs = [Configuration(baseline, baseline_model), Configuration(candidate, candidate_model)]
    with StatusLine("replay", progress) as status:
        replayed = replay_alerts(storage, since, until, runs, chunk_records=chunk_records, status=status)
    comparison = compare(replayed.alerts[0], replayed.alerts[1])
    elapsed = time.monotonic() - began
    log.info(
        "replay done records=%d messages=%d baseline_alerts=%d candidate_alerts=%d gained=%d lost=%d "
        "changed=%d elapsed_s=%.1f",
        replayed.records, replayed.messages, comparison.baseline_alerts, comparison.candidate_alerts,
        len(comparison.gained), len(comparison.lost), len(comparison.changed), elapsed,
    )  # fmt: skip
    return ReplayReport(
        since=_iso(since),
        until=_iso(until),
        storage=storage.kind,
        baseline_thresholds=baseline.version,
        candidate_thresholds=candidate.version,
        candidate_file=candidate_file,
        baseline_file=baseline_file,
        baseline_model=_ref(baseline_model),
        candidate_model=_ref(candidate_model),
        records=replayed.records,
        messages=replayed.messages,
        elapsed_s=round(elapsed, 2),
        comparison=comparison,
    )
