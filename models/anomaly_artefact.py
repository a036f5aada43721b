"""What a trained `anomaly` artefact says about itself, and the digest that pins its content.

An artefact is a directory: ``model.pkl`` (the forests, one per role) and ``artefact.json``
(this metadata, the digest, the id and when it was written). The digest is sha256 over the
model bytes and the metadata's canonical JSON (keys sorted): the same records, window and seed
give the same forests and figures, so the same digest, and the id derived from it names the
directory. ``written_at`` stays outside the digest: it is when, not what.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata as package_metadata

import msgspec

from models.anomaly_model import MODEL_SETTINGS, ModelSettings, RoleFigures, RoleModel
from models.features import FEATURE_SCHEMA, FEATURE_SCHEMA_HASH

ARTEFACT_FORMAT = "fundwatch.anomaly-artefact/1"
MODEL_FILE = "model.pkl"
METADATA_FILE = "artefact.json"
CURRENT_FILE = "CURRENT"  # in the artefacts' parent directory: the id of the one to serve
_DIGEST_DOMAIN = b"fundwatch.anomaly-artefact/1\0"


class FeatureSchemaRef(msgspec.Struct, frozen=True):
    version: str
    hash: str
    names: tuple[str, ...]
    units: tuple[str, ...]


class Libraries(msgspec.Struct, frozen=True):
    python: str
    numpy: str
    scikit_learn: str
    scipy: str


class TrainingWindow(msgspec.Struct, frozen=True):
    """Beijing days [first_day, end_day) were judged; records from history_from on were read so
    that the first of them has its HISTORY_DAYS of own history, as in the stream."""

    since: str  # RFC 3339, as asked
    until: str
    first_day: str  # YYYY-MM-DD, Beijing
    end_day: str  # exclusive
    history_from: str  # RFC 3339
    days: int


class TrainingFigures(msgspec.Struct, frozen=True):
    records: int  # CNY transactions read, history included
    accounts: int  # accounts with records
    windows: int  # account-days with a feature vector in the judged days
    unregistered_accounts: int  # accounts with windows but no role in the reference data: not fitted
    unregistered_windows: int


class ArtefactMetadata(msgspec.Struct, frozen=True):
    format: str
    feature_schema: FeatureSchemaRef
    libraries: Libraries
    training_window: TrainingWindow
    seed: int
    model: ModelSettings
    roles: dict[str, RoleFigures]
    skipped_roles: dict[str, int]  # role -> account-days, too few to fit (MIN_ROLE_ROWS)
    figures: TrainingFigures
    model_file: str
    model_sha256: str


class ArtefactDocument(msgspec.Struct, frozen=True):
    """artefact.json as written."""

    artefact_id: str
    digest: str
    written_at: str
    metadata: ArtefactMetadata


def feature_schema_ref() -> FeatureSchemaRef:
    return FeatureSchemaRef(
        FEATURE_SCHEMA.version, FEATURE_SCHEMA_HASH, FEATURE_SCHEMA.names, FEATURE_SCHEMA.units
    )


def library_versions() -> Libraries:
    return Libraries(
        python=platform.python_version(),
        numpy=package_metadata.version("numpy"),
        scikit_learn=package_metadata.version("scikit-learn"),
        scipy=package_metadata.version("scipy"),
    )


def build_metadata(
    models: dict[str, RoleModel],
    skipped_roles: dict[str, int],
    figures: TrainingFigures,
    window: TrainingWindow,
    seed: int,
    model_bytes: bytes,
) -> ArtefactMetadata:
    """The metadata of an artefact whose model file holds ``model_bytes``, roles sorted."""
    return ArtefactMetadata(
        format=ARTEFACT_FORMAT,
        feature_schema=feature_schema_ref(),
        libraries=library_versions(),
        training_window=window,
        seed=seed,
        model=MODEL_SETTINGS,
        roles={role: models[role].figures for role in sorted(models)},
        skipped_roles=dict(sorted(skipped_roles.items())),
        figures=figures,
        model_file=MODEL_FILE,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
    )


def canonical_json(metadata: ArtefactMetadata) -> bytes:
    return msgspec.json.encode(msgspec.to_builtins(metadata), order="sorted")


def content_digest(model_bytes: bytes, metadata: ArtefactMetadata) -> str:
    """sha256 over the model bytes and the metadata; the two parts are length-prefixed so no
    shift of bytes from one to the other gives the same digest."""
    digest = hashlib.sha256(_DIGEST_DOMAIN)
    for part in (model_bytes, canonical_json(metadata)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def artefact_id(digest: str) -> str:
    return f"anomaly-{digest[:16]}"


def library_mismatches(recorded: Libraries, running: Libraries) -> list[str]:
    """The libraries whose version differs between the artefact and this process, as
    "name recorded -> running"."""
    mine, theirs = msgspec.structs.asdict(running), msgspec.structs.asdict(recorded)
    return [f"{name} {theirs[name]} -> {mine[name]}" for name in mine if mine[name] != theirs[name]]
