"""Which `anomaly` model artefact each run of a replay judges with, found and loaded from disk.

An analyst names an artefact as the worker knows them (services/anomaly_store.py): the artefact's
own directory (``anomaly-<digest>/`` with its ``artefact.json``), an artefacts directory (the one
its ``CURRENT`` names, as `fundwatch train --out` leaves it), or a models directory
(``$FUNDWATCH_MODEL_DIR``, whose ``anomaly/CURRENT`` the workers follow). ``none`` is no model:
the anomaly detector then keeps its features and raises nothing, as a worker without one does.

The artefact is loaded as a worker loads it (digest and feature schema checked before anything
is unpickled), with no drift observer: a replay publishes no metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from models.anomaly_artefact import CURRENT_FILE, METADATA_FILE

if TYPE_CHECKING:  # scikit-learn comes with them: only a replay that loads a model pays for it
    from models.anomaly_serving import AnomalyModels

NO_MODEL = "none"
ANOMALY_SUBDIR = "anomaly"  # under a models directory, as streams/models.py looks for it


class ModelChoiceError(ValueError):
    """A model argument that names no loadable artefact; the message says which and why."""


def artefact_dir(given: Path) -> Path:
    """The artefact directory ``given`` names (see the module docstring)."""
    if (given / METADATA_FILE).is_file():
        return given
    for artefacts in (given, given / ANOMALY_SUBDIR):
        pointer = artefacts / CURRENT_FILE
        if pointer.is_file():
            name = pointer.read_text("utf-8").strip()
            if not name or "/" in name or name.startswith("."):
                raise ModelChoiceError(f"{pointer} names no artefact: {name[:40]!r}")
            return artefacts / name
    raise ModelChoiceError(
        f"{given}: neither an artefact (no {METADATA_FILE}) nor a directory with {CURRENT_FILE} "
        f"or {ANOMALY_SUBDIR}/{CURRENT_FILE}"
    )


def default_baseline(models_dir: Path) -> Path | None:
    """The artefact the workers serve: the one ``<models_dir>/anomaly/CURRENT`` names, if any."""
    pointer = models_dir / ANOMALY_SUBDIR / CURRENT_FILE
    return artefact_dir(models_dir) if pointer.is_file() else None


def choose(argument: str | None, default: Path | None) -> Path | None:
    """The artefact directory of a ``--model``-like argument: ``none``, a path, or absent
    (``default``)."""
    if argument is None:
        return default
    if argument.strip().lower() == NO_MODEL:
        return None
    return artefact_dir(Path(argument))


def load_model(path: Path) -> AnomalyModels:
    """The artefact at ``path`` ready for the detectors, or ModelChoiceError naming why not."""
    from models.anomaly_serving import AnomalyModels
    from services.anomaly_store import ArtefactError, load_artefact

    try:
        loaded = load_artefact(path)
    except ArtefactError as error:
        raise ModelChoiceError(f"model artefact {error}") from None
    except Exception as error:  # a file cut short, a pickle of another library version...
        raise ModelChoiceError(f"model artefact {path} cannot be loaded: {error}") from None
    document = loaded.document
    return AnomalyModels(document.artefact_id, document.digest, loaded.models)
