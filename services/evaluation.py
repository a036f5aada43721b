"""`fundwatch eval`: the detectors measured on a labelled simulated province, on each variant of
what the province looks like (services/simulator/variants.py: optional fields left out, banks
pushing in real time, in day-end files, late, bank by bank, a day re-sent).

1. The simulator writes the province's reference data, ``hours`` of custody-bank batches with
   injected violations and hard negatives, and the ground truth (``labels.jsonl``), once: every
   variant is the same province and the same truth.
2. Each variant takes fields out of the batches and the reference data and orders the batches.
3. The batches go through the detectors, by one of two engines:

   - ``pipeline``: a Tansu broker and ``fundwatch run --no-simulator`` (chDB in a temporary data
     directory) as child processes, the same gateway, Kafka topics, Faust agents and ClickHouse
     writes as in production; batches through ``POST /v1/batches`` with each bank's own token,
     the reference data through ``PUT /v1/reference/...``; when the workers have processed
     everything, the alerts topic is read from the start;
   - ``direct``: the worker's steps in-process (services/simulator/pipeline.py), several times
     faster, for the variants in one sitting.

4. models/evaluation.py pairs alerts with labels and scores precision, recall, F1 and delay.
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

from models.detectors import DetectContext, StaticReferences
from models.evaluation import SeenAlert, TypologyScore, fold_alert_events, score
from models.stepping import ignore_late, observe_late
from models.thresholds import Thresholds, load_thresholds
from schemas.messages import ALERTS_TOPIC
from services.broker import EmbeddedBroker, die_with_parent, free_port
from services.children import wait_http_ready
from services.progress import StatusLine
from services.simulator import build_province, plan_violations, write_files
from services.simulator.pipeline import InProcessPipeline
from services.simulator.push import REFERENCE_ORDER, PushError, _Api, parse_metric_total
from services.simulator.variants import (
    VARIANTS,
    ProvinceVariant,
    account_roles,
    push_order,
    strip_batch,
    strip_reference,
    undecidable_labels,
)

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
    variant: str = "baseline"
    engine: str = "pipeline"
    late_records: int = 0  # records the accounts' and institutions' clocks found late

    def to_builtins(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "engine": self.engine,
            "seed": self.seed,
            "hours": self.hours,
            "records": self.records,
            "accepted": self.accepted,
            "labels": self.labels,
            "alerts": self.alerts,
            "elapsed_s": round(self.elapsed_s, 1),
            "thresholds_version": self.thresholds_version,
            "late_records": self.late_records,
            "typologies": {name: s.to_builtins() for name, s in self.scores.items()},
        }

    @property
    def hard_negatives_flagged(self) -> int:
        return sum(s.hard_negatives_flagged for s in self.scores.values())

    def meets(self) -> bool:
        """Every typology at its target, no hard negative flagged."""
        for name, s in self.scores.items():
            target = TARGETS.get(name, DEFAULT_TARGET)
            if s.precision is None or s.recall is None or min(s.precision, s.recall) < target:
                if s.labels or s.alerts:
                    return False
        return self.hard_negatives_flagged == 0


def _stack_command(data_dir: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "services.cli", "run", "--no-simulator",
        "--data-dir", str(data_dir), "--http-port", str(port),
    ]  # fmt: skip


async def _metrics(session: aiohttp.ClientSession, base: str) -> dict[str, int]:
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    return {
        "late": int(parse_metric_total(text, "fundwatch_late_records_total")),
        "processed": int(parse_metric_total(text)),
        "sent": int(parse_metric_total(text, "fundwatch_institution_messages_sent_total")),
        "handled": int(parse_metric_total(text, "fundwatch_institution_messages_handled_total")),
    }


async def _push_files(
    api: _Api,
    reference: dict[str, list[dict]],
    batches: dict[str, list[dict]],
    order: list[dict] | None,
    counts: dict[str, int],
) -> None:
    """The reference data, then the batches: each bank's stream side by side (``order`` None: real
    time), or one batch after another in ``order``."""
    tokens = {bank: await api.bank_token(bank) for bank in batches}
    for kind in REFERENCE_ORDER:
        await api.upsert_reference(kind, reference[kind])

    async def push(batch: dict) -> None:
        answer = await api.push_batch(tokens[batch["bank_code"]], batch)
        counts["pushed"] += len(batch["records"])
        counts["accepted"] += int(answer.get("accepted", 0))
        counts["rejected"] += len(answer.get("rejected") or ())

    if order is not None:
        for batch in order:
            await push(batch)
        return

    async def send(bank: str) -> None:
        for batch in batches[bank]:
            await push(batch)

    async with asyncio.TaskGroup() as group:
        for bank in sorted(batches):
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
    work: Path,
    reference: dict[str, list[dict]],
    batches: dict[str, list[dict]],
    order: list[dict] | None,
    status: StatusLine,
    thresholds_file: Path | None = None,
) -> tuple[list[SeenAlert], dict[str, int]]:
    work.mkdir(parents=True, exist_ok=True)
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
    if thresholds_file is not None:
        # absolute: the stack runs from the repository, not from where eval was started
        env["FUNDWATCH_THRESHOLDS_FILE"] = str(thresholds_file.resolve())
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
            pushing = asyncio.create_task(_push_files(api, reference, batches, order, counts))
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
        counts["late"] = seen["late"]
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


@dataclass
class Province:
    """A simulated province as written once for every variant."""

    seed: int
    hours: float
    start: int
    reference: dict[str, list[dict]]
    batches: dict[str, list[dict]]  # per bank, in time order
    labels: list[dict[str, Any]]

    @property
    def records(self) -> int:
        return sum(len(b["records"]) for batches in self.batches.values() for b in batches)


def simulate(
    seed: int,
    hours: float,
    institutions: int,
    out: Path,
    status: StatusLine,
    intensity: float | None = None,
    patterns: int = 0,
) -> Province:
    """The province of ``seed`` with its violations and hard negatives written under ``out``;
    ``patterns``: that many of each AMLSim-style pattern and look-alike too (0: none, the feed
    as without the option)."""
    status.update(f"simulating {hours:g} h of a province (seed {seed})", force=True)
    province = build_province(seed, institutions)
    plan = plan_violations(province, seed, days=hours / 24, patterns=patterns)

    def written(records: int) -> None:
        status.update(f"simulating {hours:g} h of a province (seed {seed}): {records:,} records")

    extra = {} if intensity is None else {"intensity": intensity}
    files = write_files(province, out, hours=hours, seed=seed, violations=plan, on_progress=written, **extra)
    reference = {
        kind: json.loads((out / "reference" / f"{kind}.json").read_text("utf-8")) for kind in REFERENCE_ORDER
    }
    batches = {
        bank: [
            msgspec.json.decode(line)
            for line in (out / "batches" / f"{bank}.jsonl").read_bytes().splitlines()
        ]
        for bank in sorted(files.records)
    }
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text("utf-8").splitlines() if line]
    return Province(seed, hours, plan.start, reference, batches, labels)


def _variant_input(province: Province, variant: ProvinceVariant) -> tuple[dict, dict, list[dict]]:
    """The reference data, the batches per bank and the push order of a variant."""
    roles = account_roles(province.reference["accounts"])
    batches = {
        bank: [strip_batch(batch, roles, variant.fields) for batch in items]
        for bank, items in province.batches.items()
    }
    return strip_reference(province.reference, variant.fields), batches, push_order(batches, variant.order)


def _direct(
    reference: dict[str, list[dict]],
    order: list[dict],
    status: StatusLine,
    label: str,
    thresholds: Thresholds | None = None,
) -> tuple[list[SeenAlert], int]:
    """The worker's steps in-process: product reviews first (as the reference upserts send them),
    then every batch in order. ``thresholds`` default to the configured ones (load_thresholds)."""
    ctx = DetectContext(
        StaticReferences(
            reference["accounts"],
            reference["institutions"],
            reference["related-parties"],
            reference["products"],
        ),
        thresholds or load_thresholds(),
    )
    pipe = InProcessPipeline(ctx)
    late = [0]

    def count(bank: str, scope: str, n: int) -> None:
        late[0] += n

    observe_late(count)
    try:
        pipe.review(i["institution_id"] for i in reference["institutions"])
        total = sum(len(b["records"]) for b in order)
        for batch in order:
            pipe.push(batch)
            status.update(f"{label}: {pipe.records:,}/{total:,} records through the detectors")
    finally:
        ignore_late(count)
    return fold_alert_events(pipe.events), late[0]


def run_variant(
    province: Province,
    variant: ProvinceVariant,
    engine: str,
    work: Path,
    status: StatusLine,
    thresholds_file: Path | None = None,
) -> EvalResult:
    began = time.monotonic()
    reference, batches, order = _variant_input(province, variant)
    label = f"{variant.name} ({engine})"
    thresholds = load_thresholds(path=thresholds_file)
    if engine == "direct":
        alerts, late = _direct(reference, order, status, label, thresholds)
        counts = {"accepted": province.records, "rejected": 0, "late": late}
    elif engine == "pipeline":
        status.update(f"{label}: starting the broker and fundwatch run", force=True)
        realtime = None if variant.order == "realtime" else order
        alerts, counts = asyncio.run(
            _evaluate(work / variant.name, reference, batches, realtime, status, thresholds_file)
        )
        if counts["rejected"]:
            raise PushError(f"the API rejected {counts['rejected']} simulated records; see {work}")
    else:
        raise ValueError(f"unknown engine {engine!r}: direct or pipeline")
    return EvalResult(
        seed=province.seed,
        hours=province.hours,
        records=province.records,
        accepted=counts["accepted"],
        labels=len(province.labels),
        alerts=len(alerts),
        elapsed_s=time.monotonic() - began,
        thresholds_version=thresholds.version,
        scores=score(
            province.labels,
            alerts,
            data_start=province.start,
            undecidable=undecidable_labels(province.labels, variant.fields),
        ),
        variant=variant.name,
        engine=engine,
        late_records=counts.get("late", 0),
    )


def run_eval(
    seed: int,
    hours: float,
    institutions: int = 24,
    work_dir: Path | None = None,
    keep: bool = False,
    progress: bool = True,
    on_labels: Callable[[list[dict[str, Any]]], None] | None = None,
    variants: list[ProvinceVariant] | None = None,
    engine: str = "pipeline",
    on_result: Callable[[EvalResult], None] | None = None,
    intensity: float | None = None,
    thresholds_file: Path | None = None,
) -> list[EvalResult]:
    """Simulate once, then score every variant (the baseline alone by default) with ``engine``.
    Blocking; minutes per variant for days of data. ``on_result`` sees each variant's result as
    it is done; ``intensity`` (records per peak hour) makes a smaller province for quick runs;
    ``thresholds_file`` replaces the configured thresholds (FUNDWATCH_THRESHOLDS_FILE)."""
    work = Path(work_dir or tempfile.mkdtemp(prefix="fundwatch-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        with StatusLine("eval", progress) as status:
            province = simulate(seed, hours, institutions, work / "province", status, intensity)
            if on_labels is not None:
                on_labels(province.labels)
            for variant in variants or [VARIANTS["baseline"]]:
                result = run_variant(province, variant, engine, work, status, thresholds_file)
                results.append(result)
                if on_result is not None:
                    on_result(result)
        return results
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
        met = "yes" if meets else ("—" if not (s.labels or s.alerts) else "no")
        labels = f"{s.labels} (+{s.undecidable} not decidable)" if s.undecidable else str(s.labels)
        rows.append([
            name, labels, str(s.alerts), _fmt(s.precision), _fmt(s.recall), _fmt(s.f1),
            f"{s.hard_negatives_flagged}/{s.hard_negatives}", _duration(s.delay_median_s), _duration(s.delay_max_s),
            f"≥ {target:.2f}", met,
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
        title=f"fundwatch eval — variant {result.variant} ({result.engine}), seed {result.seed}, "
        f"{result.hours:g} h, {result.records:,} records, thresholds {result.thresholds_version}"
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
        f"{result.elapsed_s:.0f} s for this variant; {result.late_records:,} records came late (counted, "
        f"judged); hard negatives flagged: {result.hard_negatives_flagged}; "
        f"every typology at its target: {'yes' if result.meets() else 'no'}"
    )


def print_summary(results: list[EvalResult]) -> None:
    """One line per variant: the lowest precision and recall of any typology, and the time."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fundwatch eval — every variant")
    for header in ("variant", "lowest precision", "lowest recall", "hard negatives flagged", "time", "met"):
        table.add_column(header, justify="left" if header == "variant" else "right")
    for r in results:
        precisions = [s.precision for s in r.scores.values() if s.precision is not None]
        recalls = [s.recall for s in r.scores.values() if s.recall is not None]
        table.add_row(
            r.variant, _fmt(min(precisions, default=None)), _fmt(min(recalls, default=None)),
            str(r.hard_negatives_flagged), f"{r.elapsed_s:.0f} s", "yes" if r.meets() else "no",
        )  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def markdown_variants(results: list[EvalResult]) -> str:
    """A section per variant: what it changes, then its table."""
    parts = []
    for r in results:
        variant = VARIANTS.get(r.variant)
        about = variant.description if variant else ""
        parts.append(f"#### {r.variant}\n\n{about}; {r.elapsed_s:.0f} s ({r.engine}).\n\n{markdown_table(r)}")
    return "\n".join(parts)
