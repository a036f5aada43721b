"""`fundwatch eval`: the detectors measured on a labelled simulated province, through the real
pipeline.

1. The simulator writes the province's reference data, ``hours`` of custody-bank batches with
   injected violations and hard negatives, and the ground truth (``labels.jsonl``).
2. A Tansu broker and ``fundwatch run --no-simulator`` (chDB in a temporary data directory) start
   as child processes: the same gateway, Kafka topics, Faust agents and ClickHouse writes as in
   production.
3. The batches go through ``POST /v1/batches`` with each bank's own token, the reference data
   through ``PUT /v1/reference/...``.
4. When the workers have processed every accepted record and every institution message, the
   alerts topic is read from the start and folded into one alert per alert id.
5. models/evaluation.py pairs alerts with labels and scores precision, recall, F1 and delay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from models.evaluation import SeenAlert, TypologyScore, fold_alert_events, score
from models.thresholds import load_thresholds
from schemas.messages import ALERTS_TOPIC
from services.broker import EmbeddedBroker, die_with_parent, free_port
from services.children import wait_http_ready
from services.progress import StatusLine
from services.simulator import build_province, plan_violations, write_files
from services.simulator.push import REFERENCE_ORDER, PushError, _Api, parse_metric_total

log = logging.getLogger("fundwatch.eval")

TARGETS = {"misappropriation": 0.95, "fund_pool": 0.95, "excess_return": 0.95}
DEFAULT_TARGET = 0.9


@dataclass
class EvalResult:
    seed: int
    hours: float
    records: int
    accepted: int
    labels: int
    alerts: int
    elapsed_s: float
    thresholds_version: str
    scores: dict[str, TypologyScore]

    def to_builtins(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "hours": self.hours,
            "records": self.records,
            "accepted": self.accepted,
            "labels": self.labels,
            "alerts": self.alerts,
            "elapsed_s": round(self.elapsed_s, 1),
            "thresholds_version": self.thresholds_version,
            "typologies": {name: s.to_builtins() for name, s in self.scores.items()},
        }


def _stack_command(data_dir: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "services.cli", "run", "--no-simulator",
        "--data-dir", str(data_dir), "--http-port", str(port),
    ]  # fmt: skip


async def _metrics(session: aiohttp.ClientSession, base: str) -> dict[str, int]:
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    return {
        "processed": int(parse_metric_total(text)),
        "sent": int(parse_metric_total(text, "fundwatch_institution_messages_sent_total")),
        "handled": int(parse_metric_total(text, "fundwatch_institution_messages_handled_total")),
    }


async def _push_files(
    api: _Api, files: Path, banks: list[str], status: StatusLine, counts: dict[str, int]
) -> None:
    reference = {
        kind: json.loads((files / "reference" / f"{kind}.json").read_text("utf-8"))
        for kind in REFERENCE_ORDER
    }
    tokens = {bank: await api.bank_token(bank) for bank in banks}
    for kind in REFERENCE_ORDER:
        await api.upsert_reference(kind, reference[kind])

    async def send(bank: str) -> None:
        with (files / "batches" / f"{bank}.jsonl").open("rb") as lines:
            for line in lines:
                batch = msgspec.json.decode(line)
                answer = await api.push_batch(tokens[bank], batch)
                counts["pushed"] += len(batch["records"])
                counts["accepted"] += int(answer.get("accepted", 0))
                counts["rejected"] += len(answer.get("rejected") or ())

    async with asyncio.TaskGroup() as group:
        for bank in banks:
            group.create_task(send(bank))


async def _read_alerts(bootstrap: str) -> list[SeenAlert]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(ALERTS_TOPIC, p) for p in sorted(consumer.partitions_for_topic(ALERTS_TOPIC) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events: list[dict[str, Any]] = []

        async def behind() -> bool:
            for tp, end in ends.items():
                if await consumer.position(tp) < end:
                    return True
            return False

        while await behind():
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batches.values():
                events.extend(msgspec.json.decode(m.value)["data"] for m in messages)
        return fold_alert_events(events)
    finally:
        await consumer.stop()


async def _evaluate(
    work: Path, seed: int, hours: float, labels: list[dict[str, Any]], banks: list[str], status: StatusLine
) -> tuple[list[SeenAlert], dict[str, int]]:
    broker = EmbeddedBroker(work / "broker.log")
    bootstrap = broker.start()
    port = free_port()
    token = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "FUNDWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "FUNDWATCH_ADMIN_TOKEN": token,
        "FUNDWATCH_LOG_LEVEL": os.environ.get("FUNDWATCH_EVAL_STACK_LOG_LEVEL", "WARNING"),
    }
    env.pop("FUNDWATCH_CLICKHOUSE_URL", None)  # the run's own chDB under its data directory
    stack_log = (work / "stack.log").open("wb")
    stack = subprocess.Popen(
        _stack_command(work / "data", port), env=env, stdout=stack_log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent, start_new_session=True,
        preexec_fn=die_with_parent,  # an interrupted eval leaves no stack behind
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    counts = {"pushed": 0, "accepted": 0, "rejected": 0}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            status.update("starting the broker and fundwatch run", force=True)
            await wait_http_ready(session, base, stack, "fundwatch run", 180.0, interval_s=0.5)
            api = _Api(session, base, token, retry_for_s=120.0)
            pushing = asyncio.create_task(_push_files(api, work / "province", banks, status, counts))
            started = time.monotonic()
            while not pushing.done():
                await asyncio.sleep(1.0)
                seen = await _metrics(session, base)
                rate = counts["pushed"] / max(time.monotonic() - started, 1e-9)
                status.update(
                    f"pushed {counts['pushed']:,} accepted {counts['accepted']:,} processed {seen['processed']:,} "
                    f"({rate:,.0f} records/s)"
                )
            await pushing
            # every accepted record processed, then every institution message, then quiet
            stable_since, last = time.monotonic(), None
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                seen = await _metrics(session, base)
                status.update(
                    f"processing: {seen['processed']:,}/{counts['accepted']:,} records, institution messages "
                    f"{seen['handled']:,}/{seen['sent']:,}"
                )
                done = seen["processed"] >= counts["accepted"] and seen["handled"] >= seen["sent"]
                if (seen["processed"], seen["handled"]) != last:
                    last, stable_since = (seen["processed"], seen["handled"]), time.monotonic()
                elif done and time.monotonic() - stable_since >= 3.0:
                    break
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError("the pipeline did not finish processing within 30 minutes")
        status.update("reading the alerts topic", force=True)
        alerts = await _read_alerts(bootstrap)
        return alerts, counts
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGINT)
            try:
                stack.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
                stack.wait()
        stack_log.close()
        broker.stop()


def run_eval(
    seed: int,
    hours: float,
    institutions: int = 24,
    work_dir: Path | None = None,
    keep: bool = False,
    progress: bool = True,
    on_labels: Callable[[list[dict[str, Any]]], None] | None = None,
) -> EvalResult:
    """Simulate, push through the real pipeline, score. Blocking; minutes for days of data."""
    began = time.monotonic()
    work = Path(work_dir or tempfile.mkdtemp(prefix="fundwatch-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with StatusLine("eval", progress) as status:
            status.update(f"simulating {hours:g} h of a province (seed {seed})", force=True)
            province = build_province(seed, institutions)
            plan = plan_violations(province, seed, days=hours / 24)

            def written(records: int) -> None:
                status.update(f"simulating {hours:g} h of a province (seed {seed}): {records:,} records")

            files = write_files(
                province, work / "province", hours=hours, seed=seed, violations=plan, on_progress=written
            )
            labels = [
                json.loads(line)
                for line in (work / "province" / "labels.jsonl").read_text("utf-8").splitlines()
                if line
            ]
            if on_labels is not None:
                on_labels(labels)
            alerts, counts = asyncio.run(_evaluate(work, seed, hours, labels, sorted(files.records), status))
        if counts["rejected"]:
            raise PushError(f"the API rejected {counts['rejected']} simulated records; see {work}")
        return EvalResult(
            seed=seed,
            hours=hours,
            records=sum(files.records.values()),
            accepted=counts["accepted"],
            labels=len(labels),
            alerts=len(alerts),
            elapsed_s=time.monotonic() - began,
            thresholds_version=load_thresholds().version,
            scores=score(labels, alerts, data_start=plan.start),
        )
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _fmt(value: float | None, places: int = 3) -> str:
    return "—" if value is None else f"{value:.{places}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def table_rows(result: EvalResult) -> list[list[str]]:
    rows = []
    for name, s in result.scores.items():
        target = TARGETS.get(name, DEFAULT_TARGET)
        meets = s.precision is not None and s.recall is not None and min(s.precision, s.recall) >= target
        rows.append([
            name, str(s.labels), str(s.alerts), _fmt(s.precision), _fmt(s.recall), _fmt(s.f1),
            f"{s.hard_negatives_flagged}/{s.hard_negatives}", _duration(s.delay_median_s), _duration(s.delay_max_s),
            f"≥ {target:.2f}", "yes" if meets else "no",
        ])  # fmt: skip
    return rows


HEADERS = [
    "typology", "labels", "alerts", "precision", "recall", "F1", "hard negatives flagged",
    "delay median", "delay max", "target", "met",
]  # fmt: skip


def markdown_table(result: EvalResult) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    return "\n".join(lines) + "\n"


def print_result(result: EvalResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"fundwatch eval — seed {result.seed}, {result.hours:g} h, {result.records:,} records, "
        f"thresholds {result.thresholds_version}"
    )
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "typology" else "right")
    for row in table_rows(result):
        table.add_row(*row)
    # wide enough for every column when the output goes to a file or a pipe
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print(
        f"{result.labels:,} labels, {result.alerts:,} alerts, {result.accepted:,} records accepted, "
        f"{result.elapsed_s:.0f} s in all"
    )
