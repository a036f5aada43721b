"""Every registered detector keeps the Detector protocol (models/detectors/protocol.py), and the
detector modules stay small and acyclic: no function over 60 lines, no import cycle among them."""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path
from typing import Any

import pytest

from models.detectors import DETECTORS, AccountDetector, InstitutionDetector
from models.institution_detection import INSTITUTION_DETECTORS

DETECTORS_DIR = Path(__file__).resolve().parents[2] / "models" / "detectors"
MAX_FUNCTION_LINES = 60


def _parameters(function: Any, drop_self: bool) -> list[tuple[str, Any]]:
    params = list(inspect.signature(function).parameters.values())[1 if drop_self else 0 :]
    return [(p.name, p.kind) for p in params]


def protocol_problems(detector: Any, protocol: type) -> list[str]:
    """What ``detector`` lacks of ``protocol``: its members, a non-empty ``NAME`` and ``VERSION``,
    and ``detect`` and ``current`` taking the protocol's parameters, by name, with no default."""
    problems = []
    if not isinstance(detector, protocol):
        problems.append(f"not a {protocol.__name__}")
    for attr in ("NAME", "VERSION"):
        value = getattr(detector, attr, None)
        if not isinstance(value, str) or not value:
            problems.append(f"{attr} is {value!r}")
    for method in ("detect", "current"):
        function = getattr(detector, method, None)
        if not callable(function):
            problems.append(f"{method} is not callable")
            continue
        wanted = _parameters(getattr(protocol, method), drop_self=True)
        if _parameters(function, drop_self=False) != wanted:
            problems.append(f"{method}{inspect.signature(function)} takes other parameters than {wanted}")
        if any(
            p.default is not inspect.Parameter.empty for p in inspect.signature(function).parameters.values()
        ):
            problems.append(f"{method} has a default the steps never rely on")
    return problems


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_account_detector_keeps_the_protocol(name):
    detector = DETECTORS[name]
    assert protocol_problems(detector, AccountDetector) == []
    assert detector.NAME == name
    assert getattr(detector, "SCOPE", "account") != "institution"


@pytest.mark.parametrize("name", sorted(INSTITUTION_DETECTORS))
def test_every_institution_detector_keeps_the_protocol(name):
    detector = INSTITUTION_DETECTORS[name]
    assert protocol_problems(detector, InstitutionDetector) == []
    assert detector.NAME == name and detector.SCOPE == "institution"


def test_no_typology_is_registered_twice():
    assert not set(DETECTORS) & set(INSTITUTION_DETECTORS)
    modules = [*DETECTORS.values(), *INSTITUTION_DETECTORS.values()]
    assert len({id(m) for m in modules}) == len(modules)


def _stub(**members: Any) -> types.SimpleNamespace:
    def detect(ctx, state, account_id, msg_id, records):
        return state or {}, []

    def current(ctx, state, account_id):
        return []

    return types.SimpleNamespace(
        **{"NAME": "stub", "VERSION": "1", "detect": detect, "current": current, **members}
    )


def test_the_protocol_check_finds_what_is_missing():
    assert protocol_problems(_stub(), AccountDetector) == []
    assert protocol_problems(_stub(), InstitutionDetector)  # no SCOPE, and account_id is not institution_id
    assert protocol_problems(_stub(VERSION=""), AccountDetector) == ["VERSION is ''"]
    assert protocol_problems(_stub(current=None), AccountDetector)
    assert protocol_problems(_stub(current=lambda ctx, state: []), AccountDetector)
    assert protocol_problems(_stub(detect=lambda ctx, state, key, msg_id, records: ({}, [])), AccountDetector)
    assert protocol_problems(_stub(current=lambda ctx, state, account_id=None: []), AccountDetector)
    del_current = _stub()
    del del_current.current
    assert "not a AccountDetector" in protocol_problems(del_current, AccountDetector)


def _modules() -> dict[str, ast.Module]:
    return {
        f"models.detectors.{p.stem}": ast.parse(p.read_text("utf-8"))
        for p in sorted(DETECTORS_DIR.glob("*.py"))
    }


def _runtime_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """The detector modules ``tree`` imports when it runs (not under ``if TYPE_CHECKING``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    found.add(f"{node.module}.{alias.name}")
                elif node.module in modules:
                    found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_no_import_cycle_among_detector_modules():
    trees = _modules()
    package = "models.detectors.__init__"
    graph = {name: _runtime_imports(tree, set(trees)) - {package} for name, tree in trees.items()}
    state: dict[str, str] = {}

    def walk(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(graph[name]):
            assert state.get(imported) != "open", f"import cycle: {' -> '.join([*path, name, imported])}"
            if imported not in state:
                walk(imported, [*path, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [])


def test_no_detector_function_over_60_lines():
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
