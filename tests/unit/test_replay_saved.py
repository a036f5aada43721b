"""`fundwatch replay` with anomaly models and saved reports, on plain inputs: which artefact each
run judges with, the counts per (typology, institution, region) every grouping is summed from,
a report as the rows of its tables and those rows read back, and what the terminal says."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from models.anomaly_artefact import CURRENT_FILE, MODEL_FILE, TrainingFigures, TrainingWindow, build_metadata
from models.anomaly_model import feature_matrix, fit_role
from models.features import FEATURE_NAMES, FeatureVector
from schemas.replays import ModelRef
from services.anomaly_store import model_bytes, write_artefact
from services.cli import main
from services.replay.compare import AlertView, compare, grouped
from services.replay.engine import ReplayReport
from services.replay.models import ModelChoiceError, artefact_dir, choose, default_baseline, load_model
from services.replay.render import print_report
from services.replay.saved import (
    ALERT_COLUMNS,
    COUNT_COLUMNS,
    alert_rows,
    cell,
    count_rows,
    groups,
    header,
    header_row,
    replay_alert,
    totals,
)
from services.replay.store import new_replay_id

WINDOW = TrainingWindow("2034-02-06T00:00:00+08:00", "2034-02-20T00:00:00+08:00", "2034-02-06", "2034-02-20",
                        "2034-01-22T16:00:00+00:00", 14)  # fmt: skip
FIGURES = TrainingFigures(records=1, accounts=1, windows=1, unregistered_accounts=0, unregistered_windows=0)


def alert(alert_id: str, typology: str = "large_value", severity: str = "low", **more: str) -> AlertView:
    return AlertView(
        alert_id=alert_id, typology=typology, institution_id=more.get("institution_id", "INS1"),
        region=more.get("region", "220102"), severity=severity, amount=more.get("amount", "2000000.00"),
        window_start="2026-11-02T00:00:00Z", window_end="2026-11-03T00:00:00Z",
    )  # fmt: skip


BASELINE = [
    alert("kept"),
    alert("regraded", "fund_pool", "low", institution_id="INS2", region="220203"),
    alert("dropped", "misappropriation", "high", institution_id="INS3", region="110105"),
]
CANDIDATE = [
    alert("kept"),
    alert("regraded", "fund_pool", "high", institution_id="INS2", region="220203", amount="9.50"),
    alert("new-1", institution_id="INS2", region="220203"),
    alert("new-2", "anomaly", institution_id="", region=""),
]


def report(comparison=None, **more) -> ReplayReport:
    return ReplayReport(
        since="2026-11-02T00:00:00Z", until="2026-11-09T00:00:00Z", storage="chdb",
        baseline_thresholds="2026.12.2", candidate_thresholds="2026.12.2-low",
        candidate_file="/home/analyst/try/low.toml", records=1200, messages=40, elapsed_s=1.5,
        comparison=comparison or compare(BASELINE, CANDIDATE), **more,
    )  # fmt: skip


# --- counts per cell ---------------------------------------------------------------------------


def test_every_grouping_is_the_sum_of_the_cells():
    result = compare(BASELINE, CANDIDATE)
    keys = [(c.typology, c.institution_id, c.region) for c in result.cells]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for by, shown in (("typology", result.by_typology), ("institution", result.by_institution),
                      ("region", result.by_region)):  # fmt: skip
        assert grouped(result.cells, by) == shown
    assert sum(c.baseline for c in result.cells) == result.baseline_alerts == 3
    assert sum(c.candidate for c in result.cells) == result.candidate_alerts == 4
    assert (sum(c.gained for c in result.cells), sum(c.lost for c in result.cells)) == (2, 1)
    fund_pool = next(c for c in result.cells if c.typology == "fund_pool")
    assert (fund_pool.baseline, fund_pool.candidate, fund_pool.changed) == (1, 1, 1)


# --- a report as rows, and back ----------------------------------------------------------------


def test_the_header_keeps_both_runs_settings_and_file_names_only():
    model = ModelRef(artefact_id="anomaly-0123456789abcdef", digest="0123456789abcdef" * 4)
    saved = header(report(candidate_model=model, baseline_file="/etc/fundwatch/thresholds.toml"))
    assert (saved.baseline.thresholds, saved.baseline.thresholds_file, saved.baseline.model) == (
        "2026.12.2", "thresholds.toml", None,
    )  # fmt: skip
    assert (saved.candidate.thresholds_file, saved.candidate.model) == ("low.toml", model)
    row = header_row("rp-1", datetime(2026, 11, 25, tzinfo=UTC), saved)
    assert row[2] == datetime(2026, 11, 2, tzinfo=UTC) and row[3] == datetime(2026, 11, 9, tzinfo=UTC)
    assert "/home/analyst" not in row[4]


def test_alert_rows_name_their_kind_and_read_back_as_the_api_shows_them():
    rows = alert_rows("rp-1", compare(BASELINE, CANDIDATE))
    assert all(len(r) == len(ALERT_COLUMNS) and r[0] == "rp-1" for r in rows)
    assert [(r[1], r[2]) for r in rows] == [
        ("gained", "new-2"), ("gained", "new-1"), ("lost", "dropped"), ("regraded", "regraded"),
    ]  # fmt: skip
    back = [replay_alert(r[1:]) for r in rows]
    regraded = back[-1]
    assert (regraded.severity, regraded.baseline_severity, regraded.amount) == ("high", "low", "9.50")
    assert back[0].region == "" and back[1].baseline_severity is None  # sorted by typology first


def test_a_region_sees_the_totals_and_groups_of_its_own_cells():
    rows = count_rows("rp-1", compare(BASELINE, CANDIDATE))
    assert all(len(r) == len(COUNT_COLUMNS) for r in rows)
    cells = [cell(r[1:]) for r in rows]
    mine = [c for c in cells if c.region.startswith("2202")]
    t = totals(mine)
    assert (t.baseline_alerts, t.candidate_alerts, t.gained, t.lost, t.regraded) == (1, 2, 1, 0, 1)
    assert [(g.name, g.gained, g.regraded) for g in groups(mine, "typology")] == [
        ("fund_pool", 0, 1), ("large_value", 1, 0),
    ]  # fmt: skip
    # the alert of no institution: its own group, under no region a desk holds
    assert {"(none)"} <= {g.name for g in groups(cells, "institution")} & {
        g.name for g in groups(cells, "region")
    }


def test_replay_ids_sort_by_when_they_were_saved_and_do_not_repeat():
    early, late = datetime(2026, 11, 25, 8, 30, tzinfo=UTC), datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert new_replay_id(early).startswith("rp-20261125T083000-")
    assert new_replay_id(early) < new_replay_id(late)
    assert new_replay_id(early) != new_replay_id(early)


# --- which model -------------------------------------------------------------------------------


def write_model(artefacts: Path, seed: int) -> Path:
    """A real artefact, as `fundwatch train --out artefacts` writes one (CURRENT names it)."""
    rng = random.Random(seed)
    days = [
        FeatureVector(
            day_start=n * 86400, history_days=14, **{f: abs(rng.gauss(1.0, 0.3)) for f in FEATURE_NAMES}
        )
        for n in range(60)
    ]
    model = fit_role("investor", feature_matrix(days), accounts=6, seed=seed)
    blob = model_bytes({"investor": model})
    document = write_artefact(
        artefacts, blob, build_metadata({"investor": model}, {}, FIGURES, WINDOW, seed, blob)
    )
    return artefacts / document.artefact_id


def test_an_artefact_is_named_by_itself_its_artefacts_directory_or_its_models_directory(tmp_path):
    models_dir = tmp_path / "models"
    first = write_model(models_dir / "anomaly", seed=1)
    assert artefact_dir(first) == first
    assert artefact_dir(models_dir / "anomaly") == first  # its CURRENT
    assert artefact_dir(models_dir) == first  # anomaly/CURRENT, as the workers follow it
    second = write_model(models_dir / "anomaly", seed=2)
    assert default_baseline(models_dir) == second  # the one the workers serve now
    assert default_baseline(tmp_path / "nothing") is None
    assert (
        choose(None, second) == second
        and choose("none", second) is None
        and choose(str(first), None) == first
    )
    loaded = load_model(first)
    assert loaded.artefact_id == first.name and len(loaded.digest) == 64 and set(loaded.roles) == {"investor"}


def test_a_model_that_cannot_be_used_is_refused_naming_it(tmp_path):
    with pytest.raises(ModelChoiceError, match="neither an artefact"):
        artefact_dir(tmp_path)
    (tmp_path / CURRENT_FILE).write_text("../elsewhere\n", "utf-8")
    with pytest.raises(ModelChoiceError, match="names no artefact"):
        artefact_dir(tmp_path)
    artefact = write_model(tmp_path / "anomaly", seed=3)
    (artefact / MODEL_FILE).write_bytes(b"cut short")
    with pytest.raises(ModelChoiceError, match=artefact.name):
        load_model(artefact)


def test_the_command_names_a_model_argument_it_cannot_use(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FUNDWATCH_MODEL_DIR", str(tmp_path / "no-models"))
    args = ["replay", "--from", "2026-11-02", "--until", "2026-11-09", "--data-dir", str(tmp_path)]
    assert main([*args, "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "missing") in err and "--model" in err
    # a broken CURRENT where the workers look: the default baseline is refused, named
    (tmp_path / "bad" / "anomaly").mkdir(parents=True)
    (tmp_path / "bad" / "anomaly" / CURRENT_FILE).write_text("anomaly-0000000000000000\n", "utf-8")
    monkeypatch.setenv("FUNDWATCH_MODEL_DIR", str(tmp_path / "bad"))
    assert main(args) == 2
    assert "--baseline-model" in capsys.readouterr().err
    # none on both sides: the models are settled, the missing store is what stops it
    assert main([*args[:-1], str(tmp_path / "empty"), "--baseline-model", "none"]) == 2
    assert "no chDB store" in capsys.readouterr().err


def test_the_terminal_says_which_thresholds_and_artefact_each_run_used():
    model = ModelRef(artefact_id="anomaly-0123456789abcdef", digest="fedcba9876543210" * 4)
    console = Console(width=200, record=True)
    print_report(report(candidate_model=model), console=console)
    text = console.export_text()
    assert "baseline: thresholds 2026.12.2; no anomaly model" in text
    assert "candidate: thresholds 2026.12.2-low from /home/analyst/try/low.toml; anomaly model " \
           "anomaly-0123456789abcdef (digest fedcba9876543210)" in text  # fmt: skip
