"""The backlog phases of `fundwatch bench`, for one province on one Tansu broker:

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

Each process owns its chDB directory (chDB allows one owner), so the gateway and the worker have
separate ones; the reference data reaches the worker through Kafka as in production. The helpers
that push batches and follow a worker serve the aged phase too (services/bench/aged.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.fields import amount_to_cents, epoch_seconds
from schemas.messages import RECORDS_TOPIC, decode_batch
from services import secret_box
from services.bench.naive import NAIVE_TOPIC
from services.bench.processes import Child, CpuWindow
from services.bench.workload import Workload
from services.broker import EmbeddedBroker, die_with_parent
from services.progress import StatusLine
from services.simulator.push import REFERENCE_ORDER, _Api

if TYPE_CHECKING:
    from services.bench.suite import BenchConfig

PROCESSED = "fundwatch_records_processed_total"
INSTITUTION_SENT = "fundwatch_institution_messages_sent_total"
INSTITUTION_HANDLED = "fundwatch_institution_messages_handled_total"
STATE_BYTES = "fundwatch_state_bytes_written_total"
STATE_HELD = "fundwatch_state_held_bytes"
SNAPSHOTS_WAITING = "fundwatch_snapshot_queue_states"
COLLECTOR_S = "fundwatch_gc_pause_seconds_total"  # services/collector.py, all generations
REPLAYED = "fundwatch_messages_replayed_total"
TAKE_DONE = "fundwatch_last_take_done_timestamp_seconds"  # streams/metrics.py: Unix seconds
# Requests each bank keeps in flight while the gateway's rate is measured. A batch's answer waits
# for the broker's acknowledgement and the ClickHouse write of its keys; with one request per
# bank the gateway sat idle a third of the time waiting for its five clients (py-spy), so the
# figure measured the clients' round trips rather than what one gateway process can take.
GATEWAY_IN_FLIGHT = 2


@dataclass
class StackFigures:
    accounts: int
    records: int
    gateway_rps: float = 0.0
    pipeline_rps: float = 0.0
    raw_ceiling_rps: float = 0.0
    state_bytes_per_record: float = 0.0  # account and institution state written (changelog, snapshots)
    state_held_mb: float = 0.0  # account and institution state the worker holds, encoded
    # CPU µs per record over the backlog's measured window: the worker's (all its threads, chDB's
    # included) and the broker's
    pipeline_cpu_us_per_record: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


def child_env(bootstrap: str, chdb_dir: Path, data_dir: Path, admin: str, partitions: int) -> dict[str, str]:
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


async def load_reference(api: _Api, reference: dict[str, list[dict]]) -> None:
    for kind in REFERENCE_ORDER:
        if reference.get(kind):
            await api.upsert_reference(kind, reference[kind])


async def push_all(
    session: aiohttp.ClientSession,
    base: str,
    tokens: dict[str, str],
    workload: Workload,
    status: StatusLine,
    in_flight: int,
    label: str = "gateway",
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
            status.update(f"{label}: {accepted:,} of {workload.records:,} records accepted")

    started = time.perf_counter()
    await asyncio.gather(
        *(
            bank_client(bank, bodies[lane::in_flight])
            for bank, bodies in by_bank.items()
            for lane in range(in_flight)
        )
    )
    return accepted, time.perf_counter() - started


async def follow_worker(
    session: aiohttp.ClientSession,
    worker: Child,
    total: int,
    status: StatusLine,
    timeout_s: float,
    label: str = "pipeline",
    stall_s: float | None = None,
    start_count: float = 0.0,
    cpu: CpuWindow | None = None,
) -> float:
    """The worker's sustained rate over the backlog: from the first processed record seen to the
    last, counting only what was processed in between. The first is a poll's moment; the last is
    when the worker says its last take was done, not the poll after it (polls 0.2 s apart are a
    tenth of a backlog that lasts 2 s). With ``stall_s``, a worker
    whose count stood still that long after it began is given up on. ``start_count`` is what
    the worker had processed before this backlog (a worker that was paused, not started). With
    ``cpu``, the processes' CPU time is taken when the first processed record is seen and when
    the last is (``cpu.used``)."""
    deadline = time.monotonic() + timeout_s
    first: tuple[float, float] | None = None  # (Unix seconds, processed) at the first look that saw progress
    polling_since = time.time()
    moved: tuple[float, float] = (time.monotonic(), start_count)  # when the count last changed, and to what
    while time.monotonic() < deadline:
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.process.returncode}; see {worker.log_path}")
        worker.sample_rss()
        try:
            counts = await worker.metrics(
                session, PROCESSED, INSTITUTION_SENT, INSTITUTION_HANDLED, COLLECTOR_S, TAKE_DONE
            )
            processed, sent, handled = (
                counts[PROCESSED],
                counts[INSTITUTION_SENT],
                counts[INSTITUTION_HANDLED],
            )
        except aiohttp.ClientError:
            await asyncio.sleep(0.2)
            continue
        now = time.time()
        if processed != moved[1]:
            moved = (time.monotonic(), processed)
        elif stall_s is not None and first is not None and time.monotonic() - moved[0] > stall_s:
            raise RuntimeError(
                f"the worker stopped at {int(processed):,} of {total:,} records for {stall_s:.0f} s;"
                f" see {worker.log_path}"
            )
        if first is None and processed > start_count:
            first = (now, processed)
            if cpu is not None:
                cpu.begin(processed, counts[COLLECTOR_S])
        status.update(
            f"{label}: {int(processed - start_count):,} of {int(total - start_count):,} records processed"
        )
        if processed >= total and handled >= sent:
            if cpu is not None:
                cpu.end(processed, counts[COLLECTOR_S])
            if first is None or first[1] >= processed:  # all of it between two looks
                first = (polling_since, start_count)
            done = counts[TAKE_DONE]
            span = (min(now, done) if done > first[0] else now) - first[0]
            return (processed - first[1]) / span if span > 0 else float("inf")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the worker did not process {total:,} records within {timeout_s:.0f} s")


async def state_held_mb(session: aiohttp.ClientSession, worker: Child, timeout_s: float = 60.0) -> float:
    """The state the worker holds once its snapshots have caught up (institution states are
    measured when snapshotted)."""
    deadline = time.monotonic() + timeout_s
    while await worker.metric(session, SNAPSHOTS_WAITING) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    return await worker.metric(session, STATE_HELD) / (1024 * 1024)


async def raw_ceiling(bootstrap: str, partitions: int, total: int) -> float:
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


async def naive_faust(bootstrap: str, partitions: int, workload: Workload, count: int, logs: Path) -> float:
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


async def stack_phases(
    config: BenchConfig, workload: Workload, root: Path, status: StatusLine, naive: bool
) -> tuple[StackFigures, float | None]:
    root.mkdir(parents=True, exist_ok=True)
    figures = StackFigures(accounts=workload.accounts, records=workload.records)
    broker = EmbeddedBroker(root / "broker.log")
    bootstrap = broker.start()
    admin = "bench-" + secrets.token_urlsafe(24)
    gateway = Child(["gateway"], child_env(bootstrap, root / "gateway-chdb", root, admin, config.partitions),
                    root / "gateway.log")  # fmt: skip
    worker = Child(["worker"], child_env(bootstrap, root / "worker-chdb", root, admin, config.partitions),
                   root / "worker.log")  # fmt: skip
    naive_rps = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            gateway.start()
            await gateway.wait_ready(session)
            api = _Api(session, gateway.base, admin, retry_for_s=60.0)
            tokens = {bank: await api.bank_token(bank) for bank in workload.banks}
            await load_reference(api, workload.reference)
            accepted, seconds = await push_all(
                session, gateway.base, tokens, workload, status, GATEWAY_IN_FLIGHT
            )
            figures.gateway_rps = accepted / seconds
            gateway.stop()
            figures.peak_rss_mb["gateway"] = round(gateway.peak_rss_mb or 0.0, 1)

            worker.start()
            cpu = CpuWindow({"worker": worker.pid, "broker": broker.pid})
            figures.pipeline_rps = await follow_worker(
                session, worker, accepted, status, timeout_s=max(600.0, accepted / 200), cpu=cpu
            )
            figures.pipeline_cpu_us_per_record = cpu.us_per_item()
            figures.state_held_mb = await state_held_mb(session, worker)
            figures.state_bytes_per_record = await worker.metric(session, STATE_BYTES) / max(1, accepted)
            worker.stop()
            figures.peak_rss_mb["worker"] = round(worker.peak_rss_mb or 0.0, 1)

        status.update("raw ceiling: consuming and decoding the same messages", force=True)
        figures.raw_ceiling_rps = await raw_ceiling(bootstrap, config.partitions, accepted)
        if naive:
            status.update(f"naive Faust: {config.naive_records:,} records one per message", force=True)
            naive_rps = await naive_faust(bootstrap, config.partitions, workload, config.naive_records, root)
    finally:
        gateway.kill()
        worker.kill()
        broker.stop()
    return figures, naive_rps
