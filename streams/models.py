"""The worker's `anomaly` model: loaded from the artefacts directory, swapped without a restart
when ``CURRENT`` names another artefact, and the drift of what the model is fed.

Every CHECK_EVERY_S the service reads ``<model dir>/anomaly/CURRENT`` (services/anomaly_store.py:
it is replaced by one rename, so it never names half an artefact). When it names an artefact
other than the one served, the artefact is loaded off the event loop (its digest and feature
schema checked before anything is unpickled) and handed to ``install``, which puts it in the
processors' DetectContext: the next take is judged with it, every account of a take with the
same model. The log says ``anomaly model loaded artefact=<id> digest=<digest>``, and
``fundwatch_anomaly_model_info{artefact,digest}`` (1 for the artefact served) and
``fundwatch_anomaly_model_loaded_timestamp_seconds`` say it on /metrics. An artefact that cannot
be loaded is logged and counted (``fundwatch_anomaly_model_load_failures_total``) once per
``CURRENT`` written, and the model served before stays: a bad artefact never stops the worker.
A ``CURRENT`` removed leaves the served model in place.

Drift: ``fundwatch_anomaly_feature_drift{role,feature}`` is the standardised shift of the median
of the last closed days scored since the model was loaded from the training median, in training
spreads (models/anomaly_serving.DriftWindow); ``fundwatch_anomaly_drift_days{role}`` is how many
days it rests on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mode
from prometheus_client import Counter, Gauge

from models.anomaly_artefact import CURRENT_FILE
from models.anomaly_serving import AnomalyModels, DriftWindow
from models.features import FEATURE_NAMES
from services.anomaly_store import load_artefact

log = logging.getLogger("fundwatch.models")

CHECK_EVERY_S = 15.0
ANOMALY_SUBDIR = "anomaly"  # under the models directory (FUNDWATCH_MODEL_DIR)
ARTEFACT_ID = re.compile(r"anomaly-[0-9a-f]{16}")  # models/anomaly_artefact.artefact_id: never a path

MODEL_INFO = Gauge(
    "fundwatch_anomaly_model_info",
    "The anomaly model artefact this worker serves (1)",
    ["artefact", "digest"],
)
MODEL_LOADED_AT = Gauge(
    "fundwatch_anomaly_model_loaded_timestamp_seconds", "When this worker loaded the anomaly model it serves"
)
LOAD_FAILURES = Counter(
    "fundwatch_anomaly_model_load_failures_total",
    "Anomaly model artefacts named by CURRENT that this worker could not load (the model before stays)",
)
FEATURE_DRIFT = Gauge(
    "fundwatch_anomaly_feature_drift",
    "Per role and feature, (median of the closed days scored since the model was loaded - training "
    "median) / training spread (the model's robust scaling); 0 as in training",
    ["role", "feature"],
)
DRIFT_DAYS = Gauge(
    "fundwatch_anomaly_drift_days",
    "Closed days the drift figure of a role rests on (at most 1,000)",
    ["role"],
)


@dataclass(frozen=True)
class Loaded:
    model: AnomalyModels
    drift: DriftWindow
    library_mismatches: list[str]


class AnomalyModelService(mode.Service):
    def __init__(
        self,
        model_dir: Path,
        install: Callable[[AnomalyModels], None],
        interval_s: float = CHECK_EVERY_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.directory = Path(model_dir) / ANOMALY_SUBDIR
        self.install = install
        self.interval_s = interval_s
        self.served: AnomalyModels | None = None
        self.drift: DriftWindow | None = None
        self._refused: tuple[str, int] | None = None  # (artefact id, CURRENT's mtime) that failed
        self._drift_shown: set[tuple[str, str]] = set()
        self._said_none = False
        self._pointer_error: str | None = None

    def _wanted(self) -> tuple[str, int] | None:
        """The artefact id CURRENT names and when CURRENT was written, or None: nothing to do."""
        pointer = self.directory / CURRENT_FILE
        try:
            stamp = pointer.stat().st_mtime_ns
            wanted = pointer.read_text("utf-8").strip()
        except FileNotFoundError:
            if not self._said_none and self.served is None:
                self._said_none = True
                log.info("no anomaly model yet: %s does not exist; anomaly days are not judged", pointer)
            return None
        if not wanted or (self.served is not None and wanted == self.served.artefact_id):
            return None
        if self._refused == (wanted, stamp):
            return None
        return wanted, stamp

    def check_now(self) -> bool:
        """Load the artefact CURRENT names if it is not the one served (blocking: start-up)."""
        wanted = self._read_pointer()
        return wanted is not None and self._installed(wanted, self._load(wanted[0]))

    async def check(self) -> bool:
        """As check_now, loading off the event loop; True when a new model was installed."""
        wanted = self._read_pointer()
        if wanted is None:
            return False
        loaded = await asyncio.to_thread(self._load, wanted[0])
        return self._installed(wanted, loaded)

    def _read_pointer(self) -> tuple[str, int] | None:
        try:
            wanted = self._wanted()
        except OSError as error:
            if str(error) != self._pointer_error:  # said once, not every CHECK_EVERY_S
                self._pointer_error = str(error)
                LOAD_FAILURES.inc()
                log.error("anomaly model pointer unreadable dir=%s error=%s", self.directory, error)
            return None
        self._pointer_error = None
        return wanted

    def _load(self, artefact_id: str) -> Loaded | Exception:
        """The artefact read, checked and made ready to serve (flattening its forests takes a
        fraction of a second: off the event loop, like the reading)."""
        try:
            if not ARTEFACT_ID.fullmatch(artefact_id):
                raise ValueError(f"{CURRENT_FILE} names no artefact: {artefact_id[:40]!r}")
            loaded = load_artefact(self.directory / artefact_id)
            document = loaded.document
            drift = DriftWindow(document.metadata.roles)
            model = AnomalyModels(document.artefact_id, document.digest, loaded.models, observe=drift.observe)
            return Loaded(model, drift, loaded.library_mismatches)
        except Exception as error:  # ArtefactError, a file cut short, a pickle of another version...
            return error  # ... none of them may stop the worker

    def _installed(self, wanted: tuple[str, int], loaded: Loaded | Exception) -> bool:
        if isinstance(loaded, Exception):
            self._refused = wanted
            LOAD_FAILURES.inc()
            log.error(
                "anomaly model not loaded artefact=%s error=%s; serving %s",
                wanted[0],
                loaded,
                self.served.artefact_id if self.served else "none",
            )
            return False
        model = loaded.model
        self.install(model)
        previous, self.served, self.drift = self.served, model, loaded.drift
        if previous is not None:
            MODEL_INFO.remove(previous.artefact_id, previous.digest)
        MODEL_INFO.labels(model.artefact_id, model.digest).set(1)
        MODEL_LOADED_AT.set(time.time())
        self._refused = None
        log.info(
            "anomaly model loaded artefact=%s digest=%s roles=%s replaced=%s",
            model.artefact_id,
            model.digest,
            ",".join(sorted(model.roles)) or "-",
            previous.artefact_id if previous else "none",
        )
        if loaded.library_mismatches:
            log.warning(
                "anomaly model fitted with other library versions artefact=%s %s",
                model.artefact_id,
                "; ".join(loaded.library_mismatches),
            )
        self.publish_drift()
        return True

    def publish_drift(self) -> None:
        """The drift gauges of the model served; series of roles it has no more are dropped."""
        shown: set[tuple[str, str]] = set()
        shifts = self.drift.shifts() if self.drift is not None else {}
        for role, (days, shift) in shifts.items():
            DRIFT_DAYS.labels(role).set(days)
            for feature, value in zip(FEATURE_NAMES, shift, strict=True):
                FEATURE_DRIFT.labels(role, feature).set(value)
                shown.add((role, feature))
        for role, feature in self._drift_shown - shown:
            FEATURE_DRIFT.remove(role, feature)
        for role in {role for role, _ in self._drift_shown} - set(shifts):
            DRIFT_DAYS.remove(role)
        self._drift_shown = shown

    @mode.Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval_s)
            try:
                await self.check()
                self.publish_drift()
            except Exception:  # the worker goes on with the model it has
                LOAD_FAILURES.inc()
                log.exception(
                    "anomaly model check failed; serving %s",
                    self.served.artefact_id if self.served else "none",
                )
