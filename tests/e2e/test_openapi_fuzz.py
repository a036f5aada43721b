"""A schema-driven fuzzer (schemathesis) over `fundwatch run --no-simulator`, driven by the API's
own /v1/openapi.json: every operation, with data that follows the document (positive) and data
that breaks it (negative). No answer may be a 5xx, every answer must be one the document lists,
in the shape it gives; and the run must have reached every operation and every parameter the
document declares, so that a parameter left out of the document shows as a gap here.

Bounded: a few dozen examples per operation and mode, derandomized (the same requests each run),
no shrinking; the figures of the run are printed (pytest -s shows them).
"""

from __future__ import annotations

import collections
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import FundwatchProcess, call, free_port, wait_ready

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FW_FUZZ_EXAMPLES", "25"))  # per operation and mode
BANK_CODE = "B001"
POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# data that breaks the document must be refused (4xx), and the refusal must still be documented
NEGATIVE_CHECKS = [*POSITIVE_CHECKS, negative_data_rejection]
# Operations that take a list of items and judge each on its own (CONTRACT.md §2): an item that
# breaks its schema is rejected in the 2xx answer, by index, while the others are taken. For them
# breaking the document is refused either whole (4xx) or item by item (2xx naming rejections).
BY_ITEM = {"POST /v1/batches", "PUT /v1/reference/institutions", "PUT /v1/reference/accounts",
           "PUT /v1/reference/related-parties", "PUT /v1/reference/products"}  # fmt: skip


@dataclass
class FuzzRun:
    requests: int = 0
    seconds: float = 0.0
    by_status: collections.Counter = field(default_factory=collections.Counter)
    by_operation: collections.Counter = field(default_factory=collections.Counter)
    by_mode: collections.Counter = field(default_factory=collections.Counter)
    by_mode_status: collections.Counter = field(default_factory=collections.Counter)
    # (operation label, "path:name" | "query:name" | "body") seen in a request
    exercised: set[tuple[str, str]] = field(default_factory=set)
    failures: list[tuple[str, str, int, str]] = field(default_factory=list)
    server_errors: int = 0
    no_negative: list[str] = field(default_factory=list)


class Stack:
    def __init__(self, root, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.root = root
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env["FUNDWATCH_LOG_LEVEL"] = "WARNING"
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(root), "--http-port", str(port)],
            env,
            root / "run.log",
        )

    @property
    def admin(self) -> str:
        return (self.root / "admin-token").read_text().strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("fuzz"), free_port())
    try:
        running.process.start()
        wait_ready(running.base, timeout=120, process=running.process.process)
        yield running
        running.process.stop()
    finally:
        running.process.kill()


def _label(case: Any) -> str:
    return f"{case.operation.method.upper()} {case.operation.path}"


def _failure_text(error: BaseException) -> str:
    parts = getattr(error, "exceptions", None) or [error]
    return "; ".join(getattr(p, "title", None) or str(p).splitlines()[0] for p in parts)[:300]


@pytest.fixture(scope="module")
def fuzz(stack) -> FuzzRun:
    status, bank = call(
        "POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "bank", "bank_code": BANK_CODE}
    )
    assert status == 201
    # an admin token everywhere but on the one operation only a bank may use, so that batches are
    # decoded and judged rather than all refused 403
    tokens = {"POST /v1/batches": bank["token"]}
    # from the document as served; loaded from its URL, schemathesis would leave that operation out
    status, doc = call("GET", f"{stack.base}/v1/openapi.json")
    assert status == 200
    schema = schemathesis.openapi.from_dict(doc)
    # the bearer token is ours to send (a bank's on batches); the refusals of missing or wrong
    # tokens are tested one by one elsewhere, and a generated one would mask the case it rides on
    schema.config.generation.update(with_security_parameters=False)
    run = FuzzRun()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        token = tokens.get(f"{operation.method.upper()} {operation.path}", stack.admin)
        for mode, checks in (
            (GenerationMode.POSITIVE, POSITIVE_CHECKS),
            (GenerationMode.NEGATIVE, NEGATIVE_CHECKS),
        ):
            _fuzz_operation(run, stack.base, operation, mode, checks, token)
    run.seconds = time.monotonic() - started
    _report(run)
    return run


def _fuzz_operation(
    run: FuzzRun, base: str, operation: Any, mode: GenerationMode, checks: list, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,  # nothing written under the working tree
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected, not raised
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Any) -> None:
        label = _label(case)
        if label == "POST /v1/batches" and mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
            # the bank of the token: a batch for another bank is refused whole (403) before any
            # record is looked at, and the records are what there is to fuzz
            case.body["bank_code"] = BANK_CODE
        response = case.call(base_url=base, headers=headers, timeout=30)
        run.requests += 1
        run.by_status[response.status_code] += 1
        run.by_operation[label] += 1
        run.by_mode[mode.value] += 1
        run.by_mode_status[(mode.value, response.status_code)] += 1
        if response.status_code >= 500:
            run.server_errors += 1
        for name in case.path_parameters or {}:
            run.exercised.add((label, f"path:{name}"))
        for name in case.query or {}:
            run.exercised.add((label, f"query:{name}"))
        if case.body is not None and not isinstance(case.body, NotSet):
            run.exercised.add((label, "body"))
        by_item = label in BY_ITEM and mode is GenerationMode.NEGATIVE
        try:
            case.validate_response(
                response,
                checks=[c for c in checks if not (by_item and c is negative_data_rejection)],
                headers=headers,
            )
            if by_item and response.status_code < 400 and not response.json().get("rejected"):
                raise AssertionError("a body breaking the document was taken whole, no item rejected")
        except (AssertionError, BaseExceptionGroup) as error:
            sent = (
                f"query={case.query!r} body={str(case.body)[:200]!r} path={case.path_parameters!r} "
                f"headers={case.headers!r} media={case.media_type!r} meta={getattr(case, 'meta', None)!r}"
            )[:800]
            run.failures.append((label, mode.value, response.status_code, f"{_failure_text(error)} [{sent}]"))

    try:
        send()
    except Unsatisfiable:
        # nothing of this operation can break the document (no parameter, no body): no negative case
        assert mode is GenerationMode.NEGATIVE and not operation.definition.raw.get("parameters")
        run.no_negative.append(f"{operation.method.upper()} {operation.path}")


def _report(run: FuzzRun) -> None:
    print(
        f"\nfuzz: {run.requests} requests in {run.seconds:.1f} s, {EXAMPLES} examples per operation and mode"
    )
    print("  by mode:", dict(run.by_mode))
    print("  by status:", dict(sorted(run.by_status.items())))
    for mode in ("positive", "negative"):
        print(f"  {mode} by status:", {s: n for (m, s), n in sorted(run.by_mode_status.items()) if m == mode})
    print("  5xx:", run.server_errors, " check failures:", len(run.failures))
    print("  no negative case possible:", ", ".join(run.no_negative))
    for label, count in sorted(run.by_operation.items()):
        print(f"  {count:4d}  {label}")
    for failure in run.failures[:20]:
        print("  FAILED", *failure)


def test_no_answer_is_a_server_error(fuzz):
    assert fuzz.requests > 0
    assert fuzz.server_errors == 0, [f for f in fuzz.failures if f[2] >= 500][:10]


def test_every_answer_is_documented_and_in_its_documented_shape(fuzz):
    assert fuzz.failures == []


def test_every_operation_and_every_declared_parameter_was_exercised(fuzz, stack):
    status, doc = call("GET", f"{stack.base}/v1/openapi.json")
    assert status == 200
    declared: set[tuple[str, str]] = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            label = f"{method.upper()} {path}"
            assert fuzz.by_operation[label] > 0, f"{label} was never called"
            for parameter in op.get("parameters", []):
                declared.add((label, f"{parameter['in']}:{parameter['name']}"))
            if "requestBody" in op:
                declared.add((label, "body"))
            for name in re.findall(r"\{(\w+)\}", path):
                assert (label, f"path:{name}") in declared, f"{label}: path parameter {name} not declared"
    assert declared - fuzz.exercised == set()
