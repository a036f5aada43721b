"""`fundwatch bench`: the figures of CONTRACT.md §1 and DESIGN.md (Performance), measured in one
run on this machine.

For the province (and again for one with about ten times the accounts), on one Tansu broker, the
backlog phases (services/bench/backlog.py): ``gateway_rps``, ``pipeline_rps``,
``raw_ceiling_rps`` and, for the province only, ``naive_faust_rps``.

Then, for the province on a broker of its own, the aged phase (services/bench/aged.py):
``aged_pipeline_rps``, the backlog rate when a week of the same province's state is already held.

Then the detectors' steps alone over the same records, in-process (services/bench/detection_steps.py):
the part of the worker's CPU per record that is detection, fresh and after the week.

Then ``latency_p50_ms``/``latency_p99_ms`` (services/bench/latency.py): batches pushed at a fixed
``offered_rps`` into a live stack, each with one probe record, timed from its push to its webhook.

Peak memory is each child process's VmHWM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.bench.aged import AgedFigures, aged_phase
from services.bench.backlog import StackFigures, stack_phases
from services.bench.detection_steps import DetectionFigures, detection_figures
from services.bench.latency import embedded_run, latency_shapes, measure_latency, percentile
from services.bench.workload import build_aged_workload, build_workload
from services.progress import StatusLine

log = logging.getLogger("fundwatch.bench")

DEFAULT_SEED = 20261202
# The latency phase's default load, as a share of the worker's backlog rate: `fundwatch run`
# carries the gateway, the workers and the dispatcher in one process, and was seen to keep
# latency under a second up to about a quarter of that rate (2,500 of 11,000 records/s).
OFFERED_SHARE = 0.25
# Simulated days of the province processed before the aged backlog: a week of state held.
HISTORY_DAYS = 7


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    seed: int = DEFAULT_SEED
    partitions: int = 4
    records: int = 300_000
    naive_records: int = 40_000
    scale: int = 10  # the second province has about this many times the accounts
    history_days: int = HISTORY_DAYS  # the aged phase: days processed before its measured backlog
    # the aged phase's measured backlog at most (its batches are pushed while the worker is paused,
    # which must stay within the group's session timeout: about 2 s at the gateway's rate)
    aged_records: int = 120_000
    latency_seconds: float = 60.0
    latency_batch_records: int = 500
    offered_rps: float | None = None  # None: OFFERED_SHARE of the measured pipeline rate
    work_dir: Path | None = None

    @staticmethod
    def for_run(quick: bool, **overrides: Any) -> BenchConfig:
        if quick:
            base = BenchConfig(quick=True, records=60_000, naive_records=10_000, latency_seconds=20.0)
        else:
            base = BenchConfig()
        return BenchConfig(**{**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}})


__all__ = ["BenchConfig", "machine", "percentile", "run_bench"]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_gib = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": model, "cores": os.cpu_count(), "memory_gib": memory_gib,
        "python": platform.python_version(), "system": platform.platform(),
    }  # fmt: skip


async def _suite(config: BenchConfig, root: Path, status: StatusLine) -> dict[str, Any]:
    status.update("building the workload", force=True)
    province = await asyncio.to_thread(build_workload, config.seed, 24, config.records)
    institutions = 24 * config.scale
    large = await asyncio.to_thread(build_workload, config.seed, institutions, config.records)
    if large.accounts < 0.95 * config.scale * province.accounts:  # aim the second province near 10x
        institutions = round(institutions * config.scale * province.accounts / large.accounts)
        large = await asyncio.to_thread(build_workload, config.seed, institutions, config.records)

    base, naive_rps = await stack_phases(config, province, root / "province", status, naive=True)
    scaled, _ = await stack_phases(config, large, root / "province-x10", status, naive=False)

    status.update(
        f"building the aged workload: {config.history_days} days, then the measured ones", force=True
    )
    # the measured backlog as large as the fresh one (up to aged_records), so the two rates are
    # over the same count
    aged_workload = await asyncio.to_thread(
        build_aged_workload, config.seed, 24, config.history_days, min(province.records, config.aged_records)
    )
    aged = await aged_phase(config, aged_workload, root / "province-aged", status)
    status.update("timing the detectors' steps alone on the same records", force=True)
    detection = await asyncio.to_thread(detection_figures, province, aged_workload)
    scaled_detection = await asyncio.to_thread(detection_figures, large)
    del aged_workload

    offered = config.offered_rps or max(100.0, (base.pipeline_rps * OFFERED_SHARE) // 100 * 100)
    runs = [
        await measure_latency(config, province, offered, root / f"latency-{shape}", status, shape)
        for shape in latency_shapes()
    ]
    return assemble(config, base, naive_rps, scaled, institutions, aged, runs, (detection, scaled_detection))


def assemble(
    config: BenchConfig,
    base: StackFigures,
    naive_rps: float | None,
    scaled: StackFigures,
    institutions: int,
    aged: AgedFigures | None,
    runs: list[dict[str, Any]],
    detection: tuple[DetectionFigures, DetectionFigures] | None = None,
) -> dict[str, Any]:
    """The run's figures as one JSON object: the keys of CONTRACT.md §1 and the rest;
    ``detection``: the detectors' steps alone over the province's records and the 10× one's."""
    latency = runs[0]  # the production shape when a ClickHouse server is installed
    embedded = embedded_run(runs)
    per_account_kb = None
    if scaled.accounts > base.accounts:
        grown = scaled.peak_rss_mb.get("worker", 0.0) - base.peak_rss_mb.get("worker", 0.0)
        per_account_kb = round(grown * 1024 / (scaled.accounts - base.accounts), 2)
    return {
        "quick": config.quick,
        "seed": config.seed,
        "machine": machine(),
        "records": base.records,
        "accounts": base.accounts,
        "raw_ceiling_rps": round(base.raw_ceiling_rps),
        "pipeline_rps": round(base.pipeline_rps),
        "aged_pipeline_rps": round(aged.aged_pipeline_rps) if aged else None,
        "aged_over_fresh": _share(aged.aged_pipeline_rps, base.pipeline_rps) if aged else None,
        "aged_state_held_mb": round(aged.state_held_mb, 1) if aged else None,
        "naive_faust_rps": round(naive_rps or 0.0),
        "gateway_rps": round(base.gateway_rps),
        "latency_shape": latency["shape"],
        "offered_rps": latency["offered_rps"],
        "achieved_rps": latency["achieved_rps"],
        "latency_p50_ms": latency["latency_p50_ms"],
        "latency_p99_ms": latency["latency_p99_ms"],
        "latency_probes": latency["probes"],
        "latency_probes_delivered": latency["probes_delivered"],
        "latency_by_shape": {run["shape"]: run for run in runs},
        "peak_rss_mb": {**base.peak_rss_mb, **({"run": embedded["peak_rss_mb"]["run"]} if embedded else {})},
        "state_bytes_per_record": {
            "pipeline": round(base.state_bytes_per_record),
            "latency": latency["state_bytes_per_record"],
        },
        "state_held_mb": round(base.state_held_mb, 1),
        "state_per_account_kb": round(base.state_held_mb * 1024 / base.accounts, 2)
        if base.accounts
        else None,
        # CPU per record over the measured backlogs: compares across runs on a loaded machine,
        # where the rates move with the load
        "pipeline_cpu_us_per_record": base.pipeline_cpu_us_per_record,
        "aged_cpu_us_per_record": aged.aged_cpu_us_per_record if aged else None,
        # the detectors' steps alone over the same records, in-process: the part of the worker's
        # CPU per record that is detection, and what a week of state adds to it
        "detection_cpu_us_per_record": detection[0].as_json() if detection else None,
        "pipeline_over_raw": _share(base.pipeline_rps, base.raw_ceiling_rps),
        "pipeline_over_naive": round(base.pipeline_rps / naive_rps, 2) if naive_rps else None,
        "aged": aged_figures(aged, base.accounts) if aged else None,
        "scale_10x": {
            "institutions": institutions,
            "accounts": scaled.accounts,
            "records": scaled.records,
            "raw_ceiling_rps": round(scaled.raw_ceiling_rps),
            "pipeline_rps": round(scaled.pipeline_rps),
            "pipeline_cpu_us_per_record": scaled.pipeline_cpu_us_per_record,
            "detection_cpu_us_per_record": detection[1].as_json() if detection else None,
            "gateway_rps": round(scaled.gateway_rps),
            "state_bytes_per_record": {"pipeline": round(scaled.state_bytes_per_record)},
            "state_held_mb": round(scaled.state_held_mb, 1),
            "state_per_account_kb": round(scaled.state_held_mb * 1024 / scaled.accounts, 2)
            if scaled.accounts
            else None,
            "peak_rss_mb": scaled.peak_rss_mb,
        },
        "worker_rss_per_account_kb": per_account_kb,
    }


def aged_figures(aged: AgedFigures, accounts: int) -> dict[str, Any]:
    """What the aged phase measured, beside its headline keys."""
    return {
        "history_days": aged.history_days,
        "history_dates": aged.history_dates,
        "history_records": aged.history_records,
        "history_rps": round(aged.history_rps),
        "measured_dates": aged.measured_dates,
        "records": aged.records,
        "pipeline_rps": round(aged.aged_pipeline_rps),
        "state_held_mb": round(aged.state_held_mb, 1),
        "state_per_account_kb": round(aged.state_held_mb * 1024 / accounts, 2) if accounts else None,
        "pause_s": round(aged.pause_s, 1),
        "replayed_messages": aged.replayed_messages,
        "state_bytes_per_record": aged.state_bytes_per_record,
        "peak_rss_mb": aged.peak_rss_mb,
    }


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def run_bench(config: BenchConfig, progress: bool = True) -> dict[str, Any]:
    keep = config.work_dir is not None
    if config.work_dir is not None:
        # a directory of its own per run: a gateway's ClickHouse from an earlier run would answer
        # its batches as already taken, and the worker would wait for records never sent
        config.work_dir.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=config.work_dir))
        log.info("bench processes' logs and data under %s", root)
    else:
        root = Path(tempfile.mkdtemp(prefix="fundwatch-bench-"))
    try:
        with StatusLine("bench", progress) as status:
            result = asyncio.run(_suite(config, root, status))
            status.update("done", force=True)
        return result
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
