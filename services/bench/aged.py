"""The aged phase of `fundwatch bench`: ``aged_pipeline_rps``, the worker's backlog rate when a
week of state is already held, beside the fresh ``pipeline_rps``.

The same province (same seed) is simulated for ``history_days`` days and then the days that give
the measured records (services/bench/workload.py, ``build_aged_workload``). On a broker of its
own:

1. the history's batches go through a `fundwatch gateway`, and a `fundwatch worker` processes
   them (``history_rps``: from a fresh start to a week of state, the rate as state fills);
2. once its snapshots have caught up, the state it holds is read (``fundwatch_state_held_bytes``:
   the state held before the measured backlog);
3. the worker is paused (SIGSTOP: it consumes nothing, and holds its state and its place in the
   consumer group) while the later days' batches go through the gateway, so they wait on
   ``fw.records``; the gateway stops;
4. the worker resumes (SIGCONT) and works through that backlog: ``aged_pipeline_rps`` is measured
   as ``pipeline_rps`` is, from the first record processed after the pause seen to the last,
   polled every 0.2 s.

Pausing rather than restarting: a restarted worker recovers the week of state from the
changelog before it starts, and was seen (2 of 5 tries) to fetch its whole backlog and then stop
with half of it processed. A pause keeps the process, its tables and its group membership, as
long as it is shorter than the group's session timeout (streams/app.py: 10 s); the batches
pushed during it are sized to take a few seconds (``pause_s`` says how long it lasted).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from services.bench.backlog import (
    GATEWAY_IN_FLIGHT,
    PROCESSED,
    REPLAYED,
    STATE_BYTES,
    child_env,
    follow_worker,
    load_reference,
    push_all,
    state_held_mb,
)
from services.bench.processes import Child, CpuWindow
from services.bench.workload import AgedWorkload
from services.broker import EmbeddedBroker
from services.progress import StatusLine
from services.simulator.push import _Api

if TYPE_CHECKING:
    from services.bench.suite import BenchConfig

log = logging.getLogger("fundwatch.bench")

# The resumed worker is given up on when its count of processed records stands still this long.
STALL_S = 90.0
# A pause longer than this risks the group's session timeout (10 s): a rebalance in the middle of
# the measured backlog. The figures say when it was exceeded.
PAUSE_LIMIT_S = 8.0


@dataclass
class AgedFigures:
    history_days: int
    history_records: int
    records: int
    history_dates: list[str]
    measured_dates: list[str]
    history_rps: float = 0.0  # the first worker over the history, from no state to a week of it
    aged_pipeline_rps: float = 0.0
    aged_cpu_us_per_record: dict[str, float] = field(default_factory=dict)  # worker's and broker's
    state_held_mb: float = 0.0  # held by the worker before the measured backlog
    pause_s: float = 0.0  # how long the worker was paused while the later days were pushed
    replayed_messages: int = 0  # messages the worker recognised as already applied, after the pause
    # state written (changelog and snapshots) over the measured backlog, per record: a week held
    # makes every account's and institution's document larger, and each is written whole
    state_bytes_per_record: float = 0.0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


async def aged_phase(config: BenchConfig, aged: AgedWorkload, root: Path, status: StatusLine) -> AgedFigures:
    root.mkdir(parents=True, exist_ok=True)
    figures = AgedFigures(
        history_days=aged.history_days,
        history_records=aged.history.records,
        records=aged.measured.records,
        history_dates=aged.history_dates,
        measured_dates=aged.measured_dates,
    )
    broker = EmbeddedBroker(root / "broker.log")
    bootstrap = broker.start()
    admin = "bench-" + secrets.token_urlsafe(24)
    gateway = Child(["gateway"], child_env(bootstrap, root / "gateway-chdb", root, admin, config.partitions),
                    root / "gateway.log")  # fmt: skip
    worker = Child(["worker"], child_env(bootstrap, root / "worker-chdb", root, admin, config.partitions),
                   root / "worker.log")  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            gateway.start()
            await gateway.wait_ready(session)
            api = _Api(session, gateway.base, admin, retry_for_s=60.0)
            tokens = {bank: await api.bank_token(bank) for bank in aged.history.banks}
            await load_reference(api, aged.history.reference)
            history, _ = await push_all(
                session, gateway.base, tokens, aged.history, status, GATEWAY_IN_FLIGHT, label="aged: history in"
            )  # fmt: skip

            worker.start()
            figures.history_rps = await follow_worker(
                session, worker, history, status, timeout_s=max(900.0, history / 200), label="aged: history"
            )
            figures.state_held_mb = await state_held_mb(session, worker)
            before = await worker.metric(session, PROCESSED)
            replayed = await worker.metric(session, REPLAYED)
            written = await worker.metric(session, STATE_BYTES)

            os.killpg(worker.pid, signal.SIGSTOP)
            paused = time.monotonic()
            try:
                measured, _ = await push_all(
                    session, gateway.base, tokens, aged.measured, status, GATEWAY_IN_FLIGHT,
                    label="aged: later days in, worker paused",
                )  # fmt: skip
            finally:
                os.killpg(worker.pid, signal.SIGCONT)
                figures.pause_s = time.monotonic() - paused
            if figures.pause_s > PAUSE_LIMIT_S:
                log.warning("the worker was paused %.1f s: its group may have rebalanced", figures.pause_s)
            gateway.stop()
            cpu = CpuWindow({"worker": worker.pid, "broker": broker.pid})
            figures.aged_pipeline_rps = await follow_worker(
                session, worker, int(before) + measured, status, timeout_s=max(900.0, measured / 200),
                label="aged pipeline", stall_s=STALL_S, start_count=before, cpu=cpu,
            )  # fmt: skip
            figures.aged_cpu_us_per_record = cpu.us_per_item()
            written = await worker.metric(session, STATE_BYTES) - written
            figures.state_bytes_per_record = round(written / max(1, measured))
            figures.replayed_messages = int(await worker.metric(session, REPLAYED) - replayed)
            worker.stop()
            figures.peak_rss_mb["worker"] = round(worker.peak_rss_mb or 0.0, 1)
    finally:
        gateway.kill()
        worker.kill()
        broker.stop()
    return figures
