"""The benchmark's figures as a table (terminal and Markdown) and as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from services.bench.processes import COLLECTOR


def _n(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}" if value < 1 else f"{value:.2f}"


_SHAPES = {
    "production": "processes + ClickHouse server",
    "embedded": "fundwatch run",
}


def _cpu(per_process: dict[str, float] | None) -> str:
    """The worker's and the broker's CPU µs per record, or a dash when not measured; the part of
    the worker's spent in its garbage collector, when measured."""
    if not per_process:
        return "—"
    shown = " / ".join(_n(per_process.get(name)) for name in ("worker", "broker"))
    collector = per_process.get(COLLECTOR)
    return shown if collector is None else f"{shown} (worker's collector {_n(collector)})"


def _other_shapes(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The latency of the stacks other than the headline's, one row each."""
    out = []
    for shape, run in (result.get("latency_by_shape") or {}).items():
        if shape != result.get("latency_shape"):
            out.append((
                f"latency p50 / p99 ms, {_SHAPES.get(shape, shape)}",
                f"{_n(run.get('latency_p50_ms'))} / {_n(run.get('latency_p99_ms'))}"
                f" ({_n(run.get('probes_delivered'))} of {_n(run.get('probes'))} delivered)",
                "",
            ))  # fmt: skip
    return out


def _detection(result: dict[str, Any]) -> str:
    """The detectors' steps alone, CPU µs per record: fresh, and after the week when measured."""
    steps = result.get("detection_cpu_us_per_record") or {}
    if steps.get("fresh") is None:
        return "—"
    aged = steps.get("aged")
    return _n(steps["fresh"]) if aged is None else f"{_n(steps['fresh'])} / {_n(aged)}"


def _around_detection(result: dict[str, Any]) -> str:
    """The worker's CPU µs per record over the backlog less its detectors' steps alone: what
    Kafka, decoding, ClickHouse and the changelog cost it, about."""
    worker = (result.get("pipeline_cpu_us_per_record") or {}).get("worker")
    steps = (result.get("detection_cpu_us_per_record") or {}).get("fresh")
    return "—" if worker is None or steps is None else _n(round(worker - steps, 1))


def _aged_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The backlog rate with a week of state held, beside the fresh one (the province only)."""
    aged = result.get("aged") or {}
    history = "—"
    if aged:
        history = (
            f"{_n(aged.get('history_days'))} days, {_n(aged.get('history_records'))} records"
            f" at {_n(aged.get('history_rps'))} records/s"
        )
    return [
        ("aged_pipeline_rps", _n(result.get("aged_pipeline_rps")), ""),
        ("aged / fresh pipeline", _ratio(result.get("aged_over_fresh")), ""),
        ("CPU µs per record, aged backlog: worker / broker", _cpu(result.get("aged_cpu_us_per_record")), ""),
        ("state held before the aged backlog (MiB)", _n(result.get("aged_state_held_mb")), ""),
        ("history processed before it", history, ""),
        ("state written per record, aged backlog (bytes)", _n(aged.get("state_bytes_per_record")), ""),
    ]


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, province, 10x accounts)."""
    big = result.get("scale_10x") or {}
    rss, big_rss = result.get("peak_rss_mb") or {}, big.get("peak_rss_mb") or {}
    return [
        ("accounts", _n(result.get("accounts")), _n(big.get("accounts"))),
        ("records", _n(result.get("records")), _n(big.get("records"))),
        ("raw_ceiling_rps", _n(result.get("raw_ceiling_rps")), _n(big.get("raw_ceiling_rps"))),
        ("pipeline_rps", _n(result.get("pipeline_rps")), _n(big.get("pipeline_rps"))),
        *_aged_rows(result),
        (
            "CPU µs per record over the backlog: worker / broker",
            _cpu(result.get("pipeline_cpu_us_per_record")),
            _cpu(big.get("pipeline_cpu_us_per_record")),
        ),
        (
            "CPU µs per record, the detectors' steps alone (in-process): fresh / aged",
            _detection(result),
            _detection(big),
        ),
        ("worker CPU µs per record less those steps", _around_detection(result), _around_detection(big)),
        ("naive_faust_rps", _n(result.get("naive_faust_rps")), ""),
        ("gateway_rps", _n(result.get("gateway_rps")), _n(big.get("gateway_rps"))),
        ("pipeline / raw ceiling", _ratio(result.get("pipeline_over_raw")), ""),
        ("pipeline / naive Faust", _ratio(result.get("pipeline_over_naive")), ""),
        ("latency measured on", _SHAPES.get(result.get("latency_shape"), "—"), ""),
        ("offered_rps (achieved)", f"{_n(result.get('offered_rps'))} ({_n(result.get('achieved_rps'))})", ""),
        ("latency_p50_ms", _n(result.get("latency_p50_ms")), ""),
        ("latency_p99_ms", _n(result.get("latency_p99_ms")), ""),
        (
            "probes delivered",
            f"{_n(result.get('latency_probes_delivered'))} of {_n(result.get('latency_probes'))}",
            "",
        ),
        *_other_shapes(result),
        ("peak RSS gateway (MiB)", _n(rss.get("gateway")), _n(big_rss.get("gateway"))),
        ("peak RSS worker (MiB)", _n(rss.get("worker")), _n(big_rss.get("worker"))),
        ("peak RSS run (MiB)", _n(rss.get("run")), ""),
        ("worker RSS per added account (KiB)", _n(result.get("worker_rss_per_account_kb")), ""),
        ("state held by the worker (MiB)", _n(result.get("state_held_mb")), _n(big.get("state_held_mb"))),
        (
            "state held per account (KiB)",
            _n(result.get("state_per_account_kb")),
            _n(big.get("state_per_account_kb")),
        ),
        (
            "state written per record, backlog (bytes)",
            _n((result.get("state_bytes_per_record") or {}).get("pipeline")),
            _n((big.get("state_bytes_per_record") or {}).get("pipeline")),
        ),
        (
            "state written per record, at offered_rps (bytes)",
            _n((result.get("state_bytes_per_record") or {}).get("latency")),
            "",
        ),
    ]


def markdown_table(result: dict[str, Any]) -> str:
    lines = ["| figure | province | 10× accounts |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(result)]
    return "\n".join(lines) + "\n"


def print_result(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fundwatch bench" + (" --quick" if result.get("quick") else ""))
    for column in ("figure", "province", "10× accounts"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for row in rows(result):
        table.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    m = result.get("machine") or {}
    console.print(
        f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, Python {m.get('python')}"
    )


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
