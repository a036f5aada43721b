"""Artefacts of the `anomaly` model on disk: written whole or not at all, named by their digest,
and checked before anything in them is unpickled.

Layout under the artefacts directory: ``anomaly-<digest[:16]>/`` holding ``model.pkl`` and
``artefact.json`` (models/anomaly_artefact.py), and ``CURRENT``, the id of the artefact to serve.
A directory appears by one rename and ``CURRENT`` is replaced by one rename, so a worker that
polls ``CURRENT`` never sees half an artefact. ``model.pkl`` is a pickle, and unpickling runs
code: load artefacts only from a directory that only the training job can write. The digest is
checked before unpickling, so a file cut short or changed by accident is refused; it is no
signature against someone who can write there.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from models.anomaly_artefact import (
    CURRENT_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ArtefactDocument,
    ArtefactMetadata,
    artefact_id,
    content_digest,
    library_mismatches,
    library_versions,
)
from models.anomaly_model import RoleModel
from models.features import FEATURE_SCHEMA_HASH

_PICKLE_PROTOCOL = 5  # fixed, so the bytes (and the digest) do not follow the interpreter's default


class ArtefactError(RuntimeError):
    """An artefact that cannot be served; the message says which and why."""


class LoadedArtefact(msgspec.Struct, frozen=True):
    path: str
    document: ArtefactDocument
    models: dict[str, RoleModel]  # by account role
    library_mismatches: list[str]  # "name recorded -> running"; empty when all match


def model_bytes(models: Mapping[str, RoleModel]) -> bytes:
    return pickle.dumps({role: models[role].forest for role in sorted(models)}, protocol=_PICKLE_PROTOCOL)


def write_artefact(out_dir: Path, blob: bytes, metadata: ArtefactMetadata) -> ArtefactDocument:
    """Write the artefact of ``model_bytes`` ``blob`` (unless one with the same digest is there
    already) and point ``CURRENT`` at it; return what its artefact.json holds."""
    if hashlib.sha256(blob).hexdigest() != metadata.model_sha256:
        raise ValueError("metadata.model_sha256 is not the sha256 of the model bytes given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = content_digest(blob, metadata)
    name = artefact_id(digest)
    final = out_dir / name
    if final.exists():
        document = read_document(final)
    else:
        document = ArtefactDocument(name, digest, datetime.now(UTC).isoformat(timespec="seconds"), metadata)
        staging = out_dir / f".{name}.{os.getpid()}.tmp"
        staging.mkdir()
        _write_synced(staging / MODEL_FILE, blob)
        _write_synced(staging / METADATA_FILE, msgspec.json.format(msgspec.json.encode(document)) + b"\n")
        os.replace(staging, final)
    _write_synced(out_dir / f".{CURRENT_FILE}.tmp", name.encode() + b"\n")
    os.replace(out_dir / f".{CURRENT_FILE}.tmp", out_dir / CURRENT_FILE)
    return document


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def current_artefact(out_dir: Path) -> Path | None:
    """The directory ``CURRENT`` names, or None when nothing was trained there yet."""
    pointer = Path(out_dir) / CURRENT_FILE
    if not pointer.exists():
        return None
    return Path(out_dir) / pointer.read_text("utf-8").strip()


def read_document(path: Path) -> ArtefactDocument:
    try:
        return msgspec.json.decode((Path(path) / METADATA_FILE).read_bytes(), type=ArtefactDocument)
    except (OSError, msgspec.DecodeError) as error:
        raise ArtefactError(f"{path}: {METADATA_FILE} unreadable: {error}") from None


def load_artefact(path: Path) -> LoadedArtefact:
    """The artefact at ``path``, its digest and feature schema checked against this code."""
    document = read_document(path)
    metadata = document.metadata
    if metadata.feature_schema.hash != FEATURE_SCHEMA_HASH:
        raise ArtefactError(
            f"{path}: fitted on feature schema {metadata.feature_schema.hash[:12]}, "
            f"this code computes {FEATURE_SCHEMA_HASH[:12]}: train again"
        )
    blob = (Path(path) / metadata.model_file).read_bytes()
    if content_digest(blob, metadata) != document.digest:
        raise ArtefactError(f"{path}: content does not match its digest {document.digest[:16]}")
    forests = pickle.loads(blob)  # noqa: S301 - digest checked above; see the module docstring
    models = {role: RoleModel(figures, forests[role]) for role, figures in metadata.roles.items()}
    mismatches = library_mismatches(metadata.libraries, library_versions())
    return LoadedArtefact(str(path), document, models, mismatches)
