"""Detection thresholds as versioned configuration: the file beside this module, overridable per
institution type (in the file) and by environment (a whole file, or one value)."""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path(__file__).with_name("thresholds.toml")
_ENV_PREFIX = "FUNDWATCH_THRESHOLD__"


class ThresholdError(ValueError):
    """A threshold file or override that cannot work; the message names it."""


def _coerce(current: Any, raw: str, name: str) -> Any:
    """An override takes the type of the value it replaces."""
    try:
        if isinstance(current, bool):
            return raw.strip().lower() in {"1", "true", "yes"}
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        raise ThresholdError(f"{name} must be a {type(current).__name__}, got {raw!r}") from None
    return raw


@dataclass(frozen=True)
class Thresholds:
    version: str
    defaults: Mapping[str, Mapping[str, Any]]
    overrides: Mapping[str, Mapping[str, Mapping[str, Any]]]

    def for_type(self, institution_type: str | None) -> dict[str, dict[str, Any]]:
        """Every typology's thresholds for one institution type."""
        merged = {typology: dict(values) for typology, values in self.defaults.items()}
        for typology, values in (self.overrides.get(institution_type or "", {}) or {}).items():
            merged.setdefault(typology, {}).update(values)
        return merged

    def get(self, typology: str, institution_type: str | None = None) -> dict[str, Any]:
        return self.for_type(institution_type).get(typology, {})


def load_thresholds(env: Mapping[str, str] | None = None, path: Path | None = None) -> Thresholds:
    env = os.environ if env is None else env
    source = path or Path(env.get("FUNDWATCH_THRESHOLDS_FILE") or DEFAULT_FILE)
    try:
        doc = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ThresholdError(f"thresholds file {source}: {error}") from None
    version = doc.pop("version", None)
    if not isinstance(version, str) or not version:
        raise ThresholdError(f"thresholds file {source} needs a version string")
    overrides = doc.pop("overrides", {})
    defaults = copy.deepcopy(doc)
    changed = []
    for name, raw in env.items():
        if not name.startswith(_ENV_PREFIX):
            continue
        typology, sep, key = name[len(_ENV_PREFIX) :].partition("__")
        if not sep or typology not in defaults or key not in defaults[typology]:
            raise ThresholdError(f"{name} names no threshold (expected {_ENV_PREFIX}<typology>__<name>)")
        defaults[typology][key] = _coerce(defaults[typology][key], raw, name)
        changed.append(f"{typology}.{key}")
    if changed:
        # an operator's override is a different configuration: say so in every alert it shapes
        version = f"{version}+env:{','.join(sorted(changed))}"
    return Thresholds(version=version, defaults=defaults, overrides=overrides)
