"""streams/models.py against a real artefacts directory: a worker's model service loads the
artefact CURRENT names, swaps in a newer one without a restart (the processors' next context
holds it), says so in its log and on /metrics, and counts an artefact it cannot load without
giving up the model it serves. The artefacts are real: forests fitted and written by
services/anomaly_store.write_artefact, as `fundwatch train` writes them."""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from models.anomaly_artefact import CURRENT_FILE, MODEL_FILE, TrainingFigures, TrainingWindow, build_metadata
from models.anomaly_model import feature_matrix, fit_role
from models.anomaly_serving import AnomalyModels
from models.features import FEATURE_NAMES, FeatureVector
from services.anomaly_store import model_bytes, write_artefact
from streams.models import ANOMALY_SUBDIR, AnomalyModelService

pytestmark = pytest.mark.integration

WINDOW = TrainingWindow("2034-02-06T00:00:00+08:00", "2034-02-20T00:00:00+08:00", "2034-02-06", "2034-02-20",
                        "2034-01-22T16:00:00+00:00", 14)  # fmt: skip
FIGURES = TrainingFigures(records=1, accounts=1, windows=1, unregistered_accounts=0, unregistered_windows=0)


def day(rng: random.Random, n: int) -> FeatureVector:
    values = {name: abs(rng.gauss(1.0, 0.3)) for name in FEATURE_NAMES}
    return FeatureVector(day_start=n * 86400, history_days=14, **values)


def write_model(models_dir: Path, seed: int) -> tuple[str, str]:
    """Fit an investor forest on synthetic days, write it under ``models_dir``/anomaly and point
    CURRENT at it, as `fundwatch train --out` does; (artefact id, digest)."""
    rng = random.Random(seed)
    model = fit_role("investor", feature_matrix([day(rng, n) for n in range(80)]), accounts=8, seed=seed)
    blob = model_bytes({"investor": model})
    metadata = build_metadata({"investor": model}, {}, FIGURES, WINDOW, seed, blob)
    document = write_artefact(models_dir / ANOMALY_SUBDIR, blob, metadata)
    return document.artefact_id, document.digest


def metric(name: str, labels: dict[str, str] | None = None) -> float | None:
    return REGISTRY.get_sample_value(name, labels or {})


class Installed:
    def __init__(self) -> None:
        self.models: list[AnomalyModels] = []

    def __call__(self, model: AnomalyModels) -> None:
        self.models.append(model)


def test_loads_swaps_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fundwatch.models")
    installed = Installed()
    service = AnomalyModelService(tmp_path, installed)
    assert service.check_now() is False and installed.models == []  # nothing trained yet
    assert "no anomaly model yet" in caplog.text

    first_id, first_digest = write_model(tmp_path, seed=1)
    assert service.check_now() is True
    assert [m.artefact_id for m in installed.models] == [first_id]
    assert installed.models[0].digest == first_digest and set(installed.models[0].roles) == {"investor"}
    assert f"anomaly model loaded artefact={first_id} digest={first_digest}" in caplog.text
    assert metric("fundwatch_anomaly_model_info", {"artefact": first_id, "digest": first_digest}) == 1.0
    assert service.check_now() is False  # the same CURRENT: nothing to do

    second_id, second_digest = write_model(tmp_path, seed=2)
    assert asyncio.run(service.check()) is True
    assert [m.artefact_id for m in installed.models] == [first_id, second_id]
    assert metric("fundwatch_anomaly_model_info", {"artefact": second_id, "digest": second_digest}) == 1.0
    assert metric("fundwatch_anomaly_model_info", {"artefact": first_id, "digest": first_digest}) is None
    assert metric("fundwatch_anomaly_model_loaded_timestamp_seconds") > 0


def test_a_bad_artefact_is_counted_and_the_model_served_stays(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fundwatch.models")
    installed = Installed()
    service = AnomalyModelService(tmp_path, installed)
    good_id, _ = write_model(tmp_path, seed=3)
    assert service.check_now() is True
    failures = metric("fundwatch_anomaly_model_load_failures_total") or 0.0

    # a newer artefact whose model file was cut short on its way
    bad_id, _ = write_model(tmp_path, seed=4)
    model_file = tmp_path / ANOMALY_SUBDIR / bad_id / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:100])
    assert asyncio.run(service.check()) is False
    assert metric("fundwatch_anomaly_model_load_failures_total") == failures + 1
    assert (
        f"anomaly model not loaded artefact={bad_id}" in caplog.text and f"serving {good_id}" in caplog.text
    )
    assert service.served.artefact_id == good_id and len(installed.models) == 1
    # counted once per CURRENT written, not once per check
    assert asyncio.run(service.check()) is False
    assert metric("fundwatch_anomaly_model_load_failures_total") == failures + 1

    # CURRENT naming a directory that is not there, or a path; then CURRENT removed: the model stays
    (tmp_path / ANOMALY_SUBDIR / CURRENT_FILE).write_text("anomaly-0000000000000000\n")
    assert asyncio.run(service.check()) is False
    assert metric("fundwatch_anomaly_model_load_failures_total") == failures + 2
    (tmp_path / ANOMALY_SUBDIR / CURRENT_FILE).write_text("../../elsewhere\n")  # never a path
    assert asyncio.run(service.check()) is False and "names no artefact" in caplog.text
    assert metric("fundwatch_anomaly_model_load_failures_total") == failures + 3
    (tmp_path / ANOMALY_SUBDIR / CURRENT_FILE).unlink()
    assert asyncio.run(service.check()) is False and service.served.artefact_id == good_id

    # the training job writes it again, whole: it is loaded
    shutil.rmtree(tmp_path / ANOMALY_SUBDIR / bad_id)
    assert write_model(tmp_path, seed=4)[0] == bad_id
    assert asyncio.run(service.check()) is True and service.served.artefact_id == bad_id


def test_the_watch_picks_up_a_new_artefact_while_running(tmp_path):
    installed = Installed()

    async def scenario() -> list[str]:
        service = AnomalyModelService(tmp_path, installed, interval_s=0.05)
        await service.start()
        try:
            new_id, _ = write_model(tmp_path, seed=5)
            for _ in range(200):
                if installed.models:
                    break
                await asyncio.sleep(0.05)
        finally:
            await service.stop()
        return [new_id]

    written = asyncio.run(scenario())
    assert [m.artefact_id for m in installed.models] == written


def test_drift_is_the_median_shift_of_the_days_scored(tmp_path):
    installed = Installed()
    service = AnomalyModelService(tmp_path, installed)
    write_model(tmp_path, seed=6)
    service.check_now()
    model = installed.models[-1]
    figures = model.roles["investor"].figures
    # days exactly at the training median, but for one feature two spreads above it
    centre = dict(zip(FEATURE_NAMES, figures.scaling.center, strict=True))
    shifted = {
        **centre,
        "night_share": centre["night_share"] + 2 * figures.scaling.scale[FEATURE_NAMES.index("night_share")],
    }
    for n in range(5):
        model.observe("investor", FeatureVector(day_start=n, history_days=14, **shifted))
    service.publish_drift()
    assert metric("fundwatch_anomaly_drift_days", {"role": "investor"}) == 5.0
    assert metric(
        "fundwatch_anomaly_feature_drift", {"role": "investor", "feature": "night_share"}
    ) == pytest.approx(2.0)
    assert metric(
        "fundwatch_anomaly_feature_drift", {"role": "investor", "feature": "credits"}
    ) == pytest.approx(0.0)
    # a new model: its figures start again
    write_model(tmp_path, seed=7)
    service.check_now()
    assert metric("fundwatch_anomaly_drift_days", {"role": "investor"}) is None
