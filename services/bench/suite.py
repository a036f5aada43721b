"""`fundwatch bench`: the figures of CONTRACT.md §1 and DESIGN.md (Performance), measured in one
run on this machine.

For the province (and again for one with about ten times the accounts), on one Tansu broker:

1. ``gateway_rps``: a `fundwatch gateway` process takes every batch over HTTP (validated, de-
   duplicated, published to Kafka, keys and answers written to ClickHouse), one client task per
   bank, as banks push. The workers are not running yet, so the records wait on ``fw.records``.
2. ``pipeline_rps``: a `fundwatch worker` process then works through that backlog with every
   detector, its Faust table, aggregates and raw records in ClickHouse (chDB), alerts out: the
   sustained rate from its first processed record to its last.
3. ``raw_ceiling_rps``: the same messages of the same topic read again by a bare consumer and
   decoded with the typed decoder the workers use, and nothing else: the ceiling.
4. ``naive_faust_rps`` (the province only): the records one per message into a plain Faust agent
   that updates a table once per record.

Then ``latency_p50_ms``/``latency_p99_ms``: `fundwatch run` (gateway, workers, dispatcher in one
process) with a subscriber on this machine; batches are pushed at a fixed ``offered_rps``, each
with one probe record that raises an alert of its own, timed from its push to its webhook.

Peak memory is each child process's VmHWM. Each process owns its chDB directory (chDB allows one
owner), so the gateway and the worker have separate ones; the reference data reaches the worker
through Kafka as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.fields import amount_to_cents, epoch_seconds
from schemas.messages import RECORDS_TOPIC, decode_batch
from services import secret_box
from services.bench.naive import NAIVE_TOPIC
from services.bench.processes import Child
from services.bench.workload import Workload, build_workload, probe_batches, probe_reference
from services.broker import EmbeddedBroker, die_with_parent, free_port
from services.progress import StatusLine
from services.simulator.push import REFERENCE_ORDER, _Api
from services.storage.local_server import LocalClickHouse, clickhouse_server_binary

log = logging.getLogger("fundwatch.bench")

DEFAULT_SEED = 20261202
PROCESSED = "fundwatch_records_processed_total"
INSTITUTION_SENT = "fundwatch_institution_messages_sent_total"
INSTITUTION_HANDLED = "fundwatch_institution_messages_handled_total"
STATE_BYTES = "fundwatch_state_bytes_written_total"
STATE_HELD = "fundwatch_state_held_bytes"
SNAPSHOTS_WAITING = "fundwatch_snapshot_queue_states"
# The latency phase's default load, as a share of the worker's backlog rate: `fundwatch run`
# carries the gateway, the workers and the dispatcher in one process, and was seen to keep
# latency under a second up to about a quarter of that rate (2,500 of 11,000 records/s).
OFFERED_SHARE = 0.25
# Requests each bank keeps in flight while the gateway's rate is measured. A batch's answer waits
# for the broker's acknowledgement and the ClickHouse write of its keys; with one request per
# bank the gateway sat idle a third of the time waiting for its five clients (py-spy), so the
# figure measured the clients' round trips rather than what one gateway process can take.
GATEWAY_IN_FLIGHT = 2


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    seed: int = DEFAULT_SEED
    partitions: int = 4
    records: int = 300_000
    naive_records: int = 40_000
    scale: int = 10  # the second province has about this many times the accounts
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


@dataclass
class StackFigures:
    accounts: int
    records: int
    gateway_rps: float = 0.0
    pipeline_rps: float = 0.0
    raw_ceiling_rps: float = 0.0
    state_bytes_per_record: float = 0.0  # account and institution state written (changelog, snapshots)
    state_held_mb: float = 0.0  # account and institution state the worker holds, encoded
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


def _env(bootstrap: str, chdb_dir: Path, data_dir: Path, admin: str, partitions: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
    env.update(
        FUNDWATCH_KAFKA_BOOTSTRAP=bootstrap,
        FUNDWATCH_CLICKHOUSE_URL=f"chdb://{chdb_dir}",
        FUNDWATCH_DATA_DIR=str(data_dir),
        FUNDWATCH_ADMIN_TOKEN=admin,
        # the gateway refuses to start without it (services/secret_box.py)
        FUNDWATCH_SECRET_KEY=secret_box.new_key(),
        FUNDWATCH_PARTITIONS=str(partitions),
        FUNDWATCH_LOG_LEVEL="WARNING",
    )
    return env


async def _load_reference(api: _Api, reference: dict[str, list[dict]]) -> None:
    for kind in REFERENCE_ORDER:
        if reference.get(kind):
            await api.upsert_reference(kind, reference[kind])


async def _push_all(
    session: aiohttp.ClientSession,
    base: str,
    tokens: dict[str, str],
    workload: Workload,
    status: StatusLine,
    in_flight: int,
) -> tuple[int, float]:
    """Every batch, with ``in_flight`` requests at a time per bank; (records accepted, seconds)."""
    accepted = 0
    by_bank: dict[str, list[bytes]] = {}
    for bank, body, _ in workload.batches:
        by_bank.setdefault(bank, []).append(body)

    async def bank_client(bank: str, bodies: list[bytes]) -> None:
        nonlocal accepted
        headers = {"Authorization": f"Bearer {tokens[bank]}", "Content-Type": "application/json"}
        for body in bodies:
            async with session.post(base + "/v1/batches", data=body, headers=headers) as resp:
                answer = await resp.read()
                if resp.status != 202:
                    raise RuntimeError(f"batch refused with {resp.status}: {answer[:300]!r}")
                accepted += msgspec.json.decode(answer)["accepted"]
            status.update(f"gateway: {accepted:,} of {workload.records:,} records accepted")

    started = time.perf_counter()
    await asyncio.gather(
        *(bank_client(bank, bodies[lane::in_flight]) for bank, bodies in by_bank.items() for lane in range(in_flight))
    )
    return accepted, time.perf_counter() - started


async def _follow_worker(
    session: aiohttp.ClientSession, worker: Child, total: int, status: StatusLine, timeout_s: float
) -> float:
    """The worker's sustained rate over the backlog: from the first processed record seen to the
    last, counting only what was processed in between."""
    deadline = time.monotonic() + timeout_s
    first: tuple[float, float] | None = None
    polling_since = time.perf_counter()
    while time.monotonic() < deadline:
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.process.returncode}; see {worker.log_path}")
        worker.sample_rss()
        try:
            processed = await worker.metric(session, PROCESSED)
            sent = await worker.metric(session, INSTITUTION_SENT)
            handled = await worker.metric(session, INSTITUTION_HANDLED)
        except aiohttp.ClientError:
            await asyncio.sleep(0.2)
            continue
        now = time.perf_counter()
        if first is None and processed > 0:
            first = (now, processed)
        status.update(f"pipeline: {int(processed):,} of {total:,} records processed")
        if processed >= total and handled >= sent:
            if first is None or first[1] >= processed:  # all of it between two looks
                first = (polling_since, 0.0)
            span = now - first[0]
            return (processed - first[1]) / span if span > 0 else float("inf")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the worker did not process {total:,} records within {timeout_s:.0f} s")


async def _state_held_mb(session: aiohttp.ClientSession, worker: Child, timeout_s: float = 60.0) -> float:
    """The state the worker holds once its snapshots have caught up (institution states are
    measured when snapshotted)."""
    deadline = time.monotonic() + timeout_s
    while await worker.metric(session, SNAPSHOTS_WAITING) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    return await worker.metric(session, STATE_HELD) / (1024 * 1024)


async def _raw_ceiling(bootstrap: str, partitions: int, total: int) -> float:
    """Consume and decode the records topic from the start, nothing else: records per second."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=32 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(RECORDS_TOPIC, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        started: float | None = None
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if started is None and batches:
                started = time.perf_counter()
            for messages in batches.values():
                for message in messages:
                    seen += len(decode_batch(message.value).records)
        assert started is not None
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _naive_faust(bootstrap: str, partitions: int, workload: Workload, count: int, logs: Path) -> float:
    """The records one per message, then a plain Faust agent over them in a process of its own."""
    records: list[dict[str, Any]] = []
    for _, body, _ in workload.batches:
        records += [
            {"record_id": raw["record_id"], "account_id": raw["account_id"], "credit": raw["direction"] == "credit",
             "amount_cents": amount_to_cents(raw["amount"]), "booked_at": epoch_seconds(raw["booked_at"])}
            for raw in msgspec.json.decode(body)["records"]
            if raw["kind"] == "transaction"
        ]  # fmt: skip
        if len(records) >= count:
            break
    records = records[:count]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(NAIVE_TOPIC, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        for record in records:
            await producer.send(
                NAIVE_TOPIC, value=json.dumps(record).encode(), key=record["account_id"].encode()
            )
        await producer.flush()
    finally:
        await producer.stop()
    out = logs / "naive.json"
    with (logs / "naive.log").open("wb") as log_file:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.bench.naive", bootstrap, NAIVE_TOPIC, str(len(records)),
             str(partitions), str(out)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=900,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"the naive Faust baseline failed ({done.returncode}); see {logs / 'naive.log'}")
    figures = json.loads(out.read_text("utf-8"))
    return figures["records"] / figures["seconds"]


async def _stack_phases(
    config: BenchConfig, workload: Workload, root: Path, status: StatusLine, naive: bool
) -> tuple[StackFigures, float | None]:
    root.mkdir(parents=True, exist_ok=True)
    figures = StackFigures(accounts=workload.accounts, records=workload.records)
    broker = EmbeddedBroker(root / "broker.log")
    bootstrap = broker.start()
    admin = "bench-" + secrets.token_urlsafe(24)
    gateway = Child(["gateway"], _env(bootstrap, root / "gateway-chdb", root, admin, config.partitions),
                    root / "gateway.log")  # fmt: skip
    worker = Child(["worker"], _env(bootstrap, root / "worker-chdb", root, admin, config.partitions),
                   root / "worker.log")  # fmt: skip
    naive_rps = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            gateway.start()
            await gateway.wait_ready(session)
            api = _Api(session, gateway.base, admin, retry_for_s=60.0)
            tokens = {bank: await api.bank_token(bank) for bank in workload.banks}
            await _load_reference(api, workload.reference)
            accepted, seconds = await _push_all(
                session, gateway.base, tokens, workload, status, GATEWAY_IN_FLIGHT
            )
            figures.gateway_rps = accepted / seconds
            gateway.stop()
            figures.peak_rss_mb["gateway"] = round(gateway.peak_rss_mb or 0.0, 1)

            worker.start()
            figures.pipeline_rps = await _follow_worker(
                session, worker, accepted, status, timeout_s=max(600.0, accepted / 200)
            )
            figures.state_held_mb = await _state_held_mb(session, worker)
            figures.state_bytes_per_record = await worker.metric(session, STATE_BYTES) / max(1, accepted)
            worker.stop()
            figures.peak_rss_mb["worker"] = round(worker.peak_rss_mb or 0.0, 1)

        status.update("raw ceiling: consuming and decoding the same messages", force=True)
        figures.raw_ceiling_rps = await _raw_ceiling(bootstrap, config.partitions, accepted)
        if naive:
            status.update(f"naive Faust: {config.naive_records:,} records one per message", force=True)
            naive_rps = await _naive_faust(bootstrap, config.partitions, workload, config.naive_records, root)
    finally:
        gateway.kill()
        worker.kill()
        broker.stop()
    return figures, naive_rps


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


async def _latency(
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
            await _load_reference(api, reference)
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
        "latency_p50_ms": round(_percentile(latencies, 0.50), 1) if latencies else None,
        "latency_p99_ms": round(_percentile(latencies, 0.99), 1) if latencies else None,
        "peak_rss_mb": {c.command[0]: round(c.peak_rss_mb or 0.0, 1) for c in stack.children},
        "state_bytes_per_record": round(state_bytes / max(1, sum(b.records for b in batches))),
    }


def _embedded(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((run for run in runs if run["shape"] == "embedded"), None)


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, min(len(values), int(-(-q * len(values) // 1))))
    return values[rank - 1]


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

    base, naive_rps = await _stack_phases(config, province, root / "province", status, naive=True)
    scaled, _ = await _stack_phases(config, large, root / "province-x10", status, naive=False)
    offered = config.offered_rps or max(100.0, (base.pipeline_rps * OFFERED_SHARE) // 100 * 100)
    runs = [
        await _latency(config, province, offered, root / f"latency-{shape}", status, shape)
        for shape in latency_shapes()
    ]
    latency = runs[0]  # the production shape when a ClickHouse server is installed
    embedded = _embedded(runs)

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
        "pipeline_over_raw": round(base.pipeline_rps / base.raw_ceiling_rps, 4)
        if base.raw_ceiling_rps
        else None,
        "pipeline_over_naive": round(base.pipeline_rps / naive_rps, 2) if naive_rps else None,
        "scale_10x": {
            "institutions": institutions,
            "accounts": scaled.accounts,
            "records": scaled.records,
            "raw_ceiling_rps": round(scaled.raw_ceiling_rps),
            "pipeline_rps": round(scaled.pipeline_rps),
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


__all__ = ["BenchConfig", "machine", "run_bench"]
