"""`fundwatch replay` with anomaly model artefacts, against a real store (chDB): four simulated days
of a province stored as the workers store them, and a real artefact written as `fundwatch train`
writes one. A candidate with the model gains `anomaly` alerts and nothing else; the same model on
both sides changes nothing; the command finds the workers' artefact as the baseline by default,
names each run's artefact, and with --save keeps the report, which reads back as saved. Nothing
but the replay tables is written."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from models.anomaly_artefact import TrainingFigures, TrainingWindow, build_metadata
from models.anomaly_model import feature_matrix, fit_role
from models.features import FEATURE_NAMES, FeatureVector
from models.thresholds import load_thresholds
from schemas.fields import BEIJING
from services.anomaly_store import model_bytes, write_artefact
from services.auth import Principal
from services.cli import main
from services.gateway.replay_reads import ReplayReads
from services.replay.engine import Configuration, replay_alerts, run_replay
from services.replay.models import load_model
from services.simulator import build_province, write_files
from services.simulator.push import REFERENCE_ORDER
from services.simulator.variants import push_order
from streams.reference import ReferenceView
from tests.integration.test_replay import _store_records, _store_reference, _table_rows, _Unclosed
from tests.integration.test_replay_reports import SyncAsAsync

pytestmark = pytest.mark.integration

SEED = 43
INSTITUTIONS = 7
HOURS = 96.0  # a day is judged two days after its end: the first days close within the period
AS_OF = date(2032, 3, 8)  # days of their own in the session's shared chDB
START = datetime.combine(AS_OF, time(0), BEIJING)
ROLES = ("customer_custody", "own_operating")
WINDOW = TrainingWindow("2032-02-06T00:00:00+08:00", "2032-02-20T00:00:00+08:00", "2032-02-06", "2032-02-20",
                        "2032-01-22T16:00:00+00:00", 14)  # fmt: skip
FIGURES = TrainingFigures(records=1, accounts=1, windows=1, unregistered_accounts=0, unregistered_windows=0)


@pytest.fixture(scope="module")
def stored(chdb_storage, tmp_path_factory) -> int:
    root: Path = tmp_path_factory.mktemp("replay-models-province")
    province = build_province(SEED, INSTITUTIONS, as_of=AS_OF)
    write_files(province, root, hours=HOURS, seed=SEED, intensity=300.0)
    reference = {
        kind: json.loads((root / "reference" / f"{kind}.json").read_text("utf-8")) for kind in REFERENCE_ORDER
    }
    batches = {
        path.stem: [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        for path in sorted((root / "batches").glob("*.jsonl"))
    }
    view = ReferenceView()
    _store_reference(chdb_storage, reference, view)
    return _store_records(chdb_storage, push_order(batches, "realtime"), view, int(START.timestamp()) + 900)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A models directory as the workers read it: anomaly/CURRENT names a real artefact, fitted
    on days unlike the province's (so its days stand out, and the model raises alerts)."""
    rng = random.Random(SEED)
    days = [
        FeatureVector(
            day_start=n * 86400, history_days=14, **{f: abs(rng.gauss(1.0, 0.2)) for f in FEATURE_NAMES}
        )
        for n in range(80)
    ]
    forests = {role: fit_role(role, feature_matrix(days), accounts=8, seed=SEED) for role in ROLES}
    blob = model_bytes(forests)
    directory = tmp_path_factory.mktemp("models")
    write_artefact(directory / "anomaly", blob, build_metadata(forests, {}, FIGURES, WINDOW, SEED, blob))
    return directory


def _period() -> tuple[datetime, datetime]:
    return START - timedelta(days=1), START + timedelta(hours=HOURS) + timedelta(days=1)


def test_a_candidate_model_gains_anomaly_alerts_only_and_is_named(chdb_storage, stored, models_dir):
    before = _table_rows(chdb_storage)
    model = load_model(models_dir / "anomaly" / (models_dir / "anomaly" / "CURRENT").read_text().strip())
    thresholds = load_thresholds()
    report = run_replay(
        chdb_storage, *_period(), thresholds, thresholds, candidate_model=model, progress=False
    )  # fmt: skip
    comparison = report.comparison
    assert report.records == stored
    assert comparison.gained and {a.typology for a in comparison.gained} == {"anomaly"}
    assert comparison.lost == [] and comparison.changed == []
    assert report.baseline_model is None
    assert (report.candidate_model.artefact_id, report.candidate_model.digest) == (
        model.artefact_id,
        model.digest,
    )
    assert _table_rows(chdb_storage) == before


def test_the_same_model_on_both_sides_changes_nothing(chdb_storage, stored, models_dir):
    model = load_model(models_dir / "anomaly" / (models_dir / "anomaly" / "CURRENT").read_text().strip())
    run = Configuration(load_thresholds(), model)
    replayed = replay_alerts(chdb_storage, *_period(), [run, run])
    assert replayed.alerts[0] == replayed.alerts[1]
    assert "anomaly" in {a.typology for a in replayed.alerts[0]}


def test_the_command_defaults_to_the_workers_artefact_and_saves_the_report(
    chdb_storage, stored, models_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("services.storage.open_storage", lambda url: _Unclosed(chdb_storage))
    monkeypatch.setenv("FUNDWATCH_MODEL_DIR", str(models_dir))
    before = _table_rows(chdb_storage)
    since, until = _period()
    out = tmp_path / "replay.json"
    code = main([
        "replay", "--from", since.isoformat(), "--until", until.isoformat(), "--model", "none", "--save",
        "--json", str(out), "--clickhouse-url", f"chdb://{tmp_path}",
    ])  # fmt: skip
    assert code == 0
    printed = " ".join(capsys.readouterr().out.split())
    doc = json.loads(out.read_text("utf-8"))
    artefact = (models_dir / "anomaly" / "CURRENT").read_text().strip()
    # the baseline is what the workers serve: the candidate without a model loses its alerts
    assert doc["baseline_model"]["artefact_id"] == artefact and doc["candidate_model"] is None
    assert f"anomaly model {artefact}" in printed and "no anomaly model" in printed
    lost = doc["comparison"]["lost"]
    assert lost and {a["typology"] for a in lost} == {"anomaly"} and doc["comparison"]["gained"] == []
    replay_id = printed.split("Saved as replay ", 1)[1].split()[0]
    after = _table_rows(chdb_storage)
    assert {t for t in after if after[t] != before.get(t)} == {"replays", "replay_alerts", "replay_counts"}
    saved = asyncio.run(ReplayReads(SyncAsAsync(chdb_storage)).get(Principal("a", "admin"), replay_id, {}))
    assert saved.replay.baseline.model.artefact_id == artefact and saved.replay.candidate.model is None
    assert sorted(a.alert_id for a in saved.lost) == sorted(a["alert_id"] for a in lost)
    assert saved.replay.totals.lost == len(lost) and saved.replay.records == doc["records"]
