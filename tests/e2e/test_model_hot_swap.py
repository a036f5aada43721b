"""`fundwatch worker` picks up a newly trained anomaly artefact within a minute, without a restart,
and says so in its log and on its /metrics (the issue's acceptance).

Production shape, as small as it goes: a Tansu broker, Debian's clickhouse-server, `fundwatch
gateway` and `fundwatch worker`, the worker reading its models from ``FUNDWATCH_MODEL_DIR``. The
artefacts are written there as `fundwatch train` writes them (tests/integration/test_model_swap.py
fits and writes them)."""

from __future__ import annotations

import re
import time

import pytest

from tests.integration.test_model_swap import write_model
from tests.support import ProdStack, call, wait_until

pytestmark = pytest.mark.e2e

ADMIN = "e2e-model-swap-admin-token-0123456789"
WITHIN_S = 60.0


def served(stack: ProdStack) -> dict[str, str]:
    """artefact -> digest of every fundwatch_anomaly_model_info series the worker shows."""
    text = call("GET", f"{stack.url('worker')}/metrics")[1]
    return dict(re.findall(r'fundwatch_anomaly_model_info\{artefact="([^"]+)",digest="([^"]+)"\} 1\.0', text))


def test_a_worker_swaps_in_a_new_artefact_without_a_restart(tmp_path):
    models = tmp_path / "trained-models"
    first_id, first_digest = write_model(models, seed=11)
    stack = ProdStack(
        tmp_path, ADMIN, commands=("gateway", "worker"), env={"FUNDWATCH_MODEL_DIR": str(models)}
    )
    try:
        stack.start()
        worker = stack.processes["worker"]
        pid = worker.process.pid
        assert served(stack) == {first_id: first_digest}  # loaded as it started
        assert f"anomaly model loaded artefact={first_id} digest={first_digest}" in worker.log()

        second_id, second_digest = write_model(models, seed=12)
        written = time.monotonic()
        wait_until(
            lambda: served(stack) == {second_id: second_digest}, WITHIN_S, 0.5, "the new artefact on /metrics"
        )
        took = time.monotonic() - written
        assert took < WITHIN_S
        assert f"anomaly model loaded artefact={second_id} digest={second_digest}" in worker.log()
        assert worker.process.poll() is None and worker.process.pid == pid  # the same process
        status, _ = call("GET", f"{stack.url('worker')}/readyz")
        assert status == 200
    finally:
        stack.stop()
