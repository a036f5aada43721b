"""The latency phase of `fundwatch bench`: ``latency_p50_ms``/``latency_p99_ms``.

A live stack with a subscriber on this machine: `fundwatch run` (gateway, workers, dispatcher in
one process), or the production shape (gateway, worker and dispatcher processes on a ClickHouse
server and the broker). Batches are pushed at a fixed ``offered_rps``, each with one probe record
that raises an alert of its own, timed from its push to its webhook.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
from aiohttp import web

from services import secret_box
from services.bench.backlog import STATE_BYTES, load_reference
from services.bench.processes import Child
from services.bench.workload import Workload, probe_batches, probe_reference
from services.broker import EmbeddedBroker, free_port
from services.progress import StatusLine
from services.simulator.push import _Api
from services.storage.local_server import LocalClickHouse, clickhouse_server_binary

if TYPE_CHECKING:
    from services.bench.suite import BenchConfig


class _Receiver:
    """A subscriber on this machine: notes when each probe's alert arrives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrived: dict[str, float] = {}
        self.messages = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            at = time.time()
            self.messages += 1
            data = msgspec.json.decode(body).get("data") or {}
            for record_id in (data.get("evidence") or {}).get("record_ids") or ():
                if record_id.startswith("bench-probe-"):
                    self.arrived.setdefault(record_id, at)
            return web.Response(status=204)

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/hook", hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class _LiveStack:
    """What the latency phase pushes into: `fundwatch run` (one process), or the production shape
    (gateway, worker and dispatcher processes on a ClickHouse server and the broker)."""

    def __init__(self, shape: str, config: BenchConfig, root: Path, admin: str) -> None:
        self.shape = shape
        self.root = root
        self.broker: EmbeddedBroker | None = None
        self.clickhouse: LocalClickHouse | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env.update(FUNDWATCH_ADMIN_TOKEN=admin, FUNDWATCH_LOG_LEVEL="WARNING",
                   FUNDWATCH_PARTITIONS=str(config.partitions))  # fmt: skip
        if shape == "embedded":
            run = Child(["run", "--no-simulator", "--data-dir", str(root / "run")], env, root / "run.log")
            self.children, self.api, self.worker = [run], run, run
            return
        self.broker = EmbeddedBroker(root / "broker.log")
        self.clickhouse = LocalClickHouse(root / "clickhouse")
        env.update(FUNDWATCH_DATA_DIR=str(root), FUNDWATCH_APP_ID=f"fw-bench-{secrets.token_hex(4)}",
                   FUNDWATCH_WEBHOOK_ALLOW_PRIVATE="1")  # the receiver listens on loopback  # fmt: skip
        # one key shared by the gateway and the dispatcher: each refuses to start without it
        env.update(FUNDWATCH_SECRET_KEY=secret_box.new_key())
        self.api = Child(["gateway"], env, root / "gateway.log")
        self.worker = Child(["worker"], env, root / "worker.log")
        self.children = [self.api, self.worker, Child(["dispatcher"], env, root / "dispatcher.log")]

    async def start(self, session: aiohttp.ClientSession) -> None:
        if self.broker is not None and self.clickhouse is not None:
            bootstrap = self.broker.start()
            # started from this thread: the server is told to die with it (services/broker.py)
            self.clickhouse.start()
            for child in self.children:
                child.env.update(
                    FUNDWATCH_KAFKA_BOOTSTRAP=bootstrap, FUNDWATCH_CLICKHOUSE_URL=self.clickhouse.url
                )
        self.api.start()
        await self.api.wait_ready(session)  # the gateway migrates the schema before the others start
        for child in self.children[1:]:
            child.start()
        for child in self.children[1:]:
            await child.wait_ready(session)

    def sample_rss(self) -> None:
        for child in self.children:
            child.sample_rss()

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def kill(self) -> None:
        for child in self.children:
            child.kill()
        if self.clickhouse is not None:
            self.clickhouse.stop()
        if self.broker is not None:
            self.broker.stop()


def latency_shapes() -> list[str]:
    """The stacks the latency phase measures: the production shape needs a ClickHouse server."""
    return ["production", "embedded"] if clickhouse_server_binary() else ["embedded"]


async def measure_latency(
    config: BenchConfig, workload: Workload, offered_rps: float, root: Path, status: StatusLine, shape: str
) -> dict[str, Any]:
    """Probes pushed at ``offered_rps`` into a live stack of ``shape``; their push-to-webhook times."""
    root.mkdir(parents=True, exist_ok=True)
    admin = "bench-" + secrets.token_urlsafe(24)
    stack = _LiveStack(shape, config, root, admin)
    receiver = _Receiver()
    batches = probe_batches(workload, config.latency_batch_records)
    per_batch = statistics.mean(b.records for b in batches)
    wanted = max(1, int(config.latency_seconds * offered_rps / per_batch))
    batches = batches[:wanted]
    pushed: dict[str, float] = {}
    try:
        await receiver.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            await stack.start(session)
            base = stack.api.base
            api = _Api(session, base, admin, retry_for_s=60.0)
            tokens = {bank: await api.bank_token(bank) for bank in workload.banks}
            reference = {**workload.reference}
            reference["accounts"] = [*workload.reference["accounts"], *probe_reference(workload)["accounts"]]
            await load_reference(api, reference)
            status_code, answer = await api.request(
                "POST", "/v1/subscriptions", admin,
                {"url": receiver.url, "filter": {"typologies": ["large_value"]}},
            )  # fmt: skip
            if status_code != 201:
                raise RuntimeError(f"subscribing the bench receiver failed: {status_code} {answer}")

            interval = per_batch / offered_rps
            in_flight: set[asyncio.Task] = set()
            started = time.monotonic()

            async def send(batch: Any) -> None:
                headers = {
                    "Authorization": f"Bearer {tokens[batch.bank]}",
                    "Content-Type": "application/json",
                }
                pushed[batch.probe_id] = time.time()
                async with session.post(base + "/v1/batches", data=batch.body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 202:
                        raise RuntimeError(f"batch refused with {resp.status}")

            for number, batch in enumerate(batches):
                due = started + number * interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(send(batch))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                stack.sample_rss()
                status.update(f"latency ({shape}): {number + 1} of {len(batches)} batches at "
                              f"{offered_rps:,.0f} records/s, {len(receiver.arrived)} probes delivered")  # fmt: skip
            await asyncio.gather(*in_flight)
            achieved = sum(b.records for b in batches) / max(1e-9, time.monotonic() - started)
            deadline = time.monotonic() + 60.0
            while len(receiver.arrived) < len(pushed) and time.monotonic() < deadline:
                stack.sample_rss()
                await asyncio.sleep(0.2)
            state_bytes = await stack.worker.metric(session, STATE_BYTES)
        stack.stop()
    finally:
        stack.kill()
        await receiver.stop()
    latencies = sorted((receiver.arrived[p] - t) * 1000.0 for p, t in pushed.items() if p in receiver.arrived)
    return {
        "shape": shape,
        "offered_rps": round(offered_rps),
        "achieved_rps": round(achieved),
        "probes": len(pushed),
        "probes_delivered": len(latencies),
        "latency_p50_ms": round(percentile(latencies, 0.50), 1) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "peak_rss_mb": {c.command[0]: round(c.peak_rss_mb or 0.0, 1) for c in stack.children},
        "state_bytes_per_record": round(state_bytes / max(1, sum(b.records for b in batches))),
    }


def embedded_run(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((run for run in runs if run["shape"] == "embedded"), None)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, min(len(values), int(-(-q * len(values) // 1))))
    return values[rank - 1]
