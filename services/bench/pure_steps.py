"""The worker's pure detection steps alone, in-process: CPU per record of the account and
institution steps (services/simulator/pipeline.InProcessPipeline) over a simulated province, with
no broker, no ClickHouse and no model loaded, the records decoded before the clock starts
(docs/benchmarks.md, "Per-record CPU of the pure steps (in-process)").

    python -m services.bench.pure_steps [--seed 20261125] [--hours 96] [--variant baseline]
        [--repeat 3] [--gc 50000,20,100|python|off] [--take 1] [--profile out.prof] [--digest]
        [--sizes]

Each repetition steps a fresh pipeline through the same messages; the median is reported, with
the process's resident memory after each tenth of the messages of the first run and its peak.
``--gc`` sets the cyclic garbage collector as a worker does (services/collector.py; default the
worker's default), or turns it off (a bound, not a setting). ``--profile`` runs one more
repetition under cProfile and prints its top entries. ``--digest`` steps one more pipeline and
prints a SHA-256 of every alert revision in order and one of the final account and institution
states: a change meant to make the steps cheaper must leave both as they were. ``--sizes`` steps
one more and prints the encoded size of the final states, per kind and per detector: what a
worker's changelog carries each time such a state changes. ``--take N`` steps the messages N at a
time, as a worker takes them together (InProcessPipeline.push_take: each account and institution
once over its messages); a worker working through a backlog was seen taking about 54 messages at
a time, a live one a few. The digests are of the same figures whatever the take, but not of the
same revisions: an alert changes once per take.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pstats
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from models.detectors import DetectContext, StaticReferences
from models.detectors.frozen import plain
from models.thresholds import load_thresholds
from schemas.messages import partition_for
from services.collector import DEFAULT_THRESHOLDS, parse_thresholds, settle
from services.simulator.pipeline import PARTITIONS, InProcessPipeline, decode_records

# one records message as the records agent takes it: (bank, message id, decoded records)
Message = tuple[str, str, list[Any]]


@dataclass
class StepTimes:
    records: int
    cpu_seconds: list[float] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)  # after each tenth of the first run

    def us_per_record(self, seconds: list[float]) -> float:
        return statistics.median(seconds) / self.records * 1e6


def messages_of(order: list[dict[str, Any]], partitions: int = PARTITIONS) -> list[Message]:
    """The batches of a push order split as the gateway splits them: one message per partition."""
    messages = []
    for batch in order:
        bank = batch["bank_code"]
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for record in decode_records(batch["records"]):
            by_partition[partition_for(record.account_id, partitions)].append(record)
        for partition, records in sorted(by_partition.items()):
            messages.append((bank, f"{bank}/{batch['batch_id']}/{partition}", records))
    return messages


def feed(
    pipe: InProcessPipeline,
    messages: list[Message],
    take: int = 1,
    every_tenth: Callable[[], None] | None = None,
) -> None:
    """Step ``pipe`` through ``messages``, one at a time or ``take`` at a time; ``every_tenth``
    is called after each tenth of them."""
    tenth = max(1, len(messages) // 10)
    done = 0
    for start in range(0, len(messages), take):
        chunk = messages[start : start + take]
        pipe.push_take(chunk)
        if every_tenth is not None and (done + len(chunk)) // tenth > done // tenth:
            every_tenth()
        done += len(chunk)


def time_steps(
    make_pipeline: Callable[[], InProcessPipeline],
    messages: list[Message],
    repeat: int = 3,
    take: int = 1,
    before: list[Message] | None = None,
) -> StepTimes:
    """CPU (this thread's) and wall time of ``repeat`` fresh pipelines stepped through
    ``messages``, each stepped through ``before`` first, untimed."""
    times = StepTimes(records=sum(len(records) for _, _, records in messages))
    for run in range(repeat):
        pipe = make_pipeline()
        feed(pipe, before or [], take)
        wall, cpu = time.perf_counter(), time.thread_time()
        feed(pipe, messages, take, (lambda: times.rss_mb.append(rss_mb())) if run == 0 else None)
        times.cpu_seconds.append(time.thread_time() - cpu)
        times.wall_seconds.append(time.perf_counter() - wall)
    return times


def rss_mb() -> float:
    """This process's resident memory now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def set_collector(spec: str) -> None:
    """``off``; ``python``, left as Python starts; or thresholds as a worker takes them (and
    settled as a worker settles them)."""
    if spec == "off":
        gc.disable()
    elif spec != "python":
        settle(parse_thresholds(spec))


def pipeline_factory(reference: dict[str, list[dict[str, Any]]]) -> Callable[[], InProcessPipeline]:
    """New pipelines over ``reference`` with the configured thresholds and no model, the product
    reviews done (as the evaluation's direct engine starts)."""

    def make() -> InProcessPipeline:
        ctx = DetectContext(
            StaticReferences(
                reference["accounts"],
                reference["institutions"],
                reference["related-parties"],
                reference["products"],
            ),
            load_thresholds(),
        )
        pipe = InProcessPipeline(ctx)
        pipe.review(i["institution_id"] for i in reference["institutions"])
        return pipe

    return make


def main() -> None:
    from services import evaluation
    from services.progress import StatusLine
    from services.simulator.variants import VARIANTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--hours", type=float, default=96)
    parser.add_argument("--institutions", type=int, default=24)
    parser.add_argument("--variant", default="baseline", choices=sorted(VARIANTS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gc", default=",".join(map(str, DEFAULT_THRESHOLDS)))
    parser.add_argument(
        "--take", type=int, default=1, help="messages stepped together, as a worker takes them (default 1)"
    )
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--digest", action="store_true", help="print digests of the alerts and states")
    parser.add_argument("--sizes", action="store_true", help="print the encoded size of the final states")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out, StatusLine("bench", False) as status:
        province = evaluation.simulate(args.seed, args.hours, args.institutions, Path(out), status)
    reference, _, order = evaluation._variant_input(province, VARIANTS[args.variant])
    messages = messages_of(order)
    make = pipeline_factory(reference)
    set_collector(args.gc)
    if args.take < 1:
        parser.error(f"--take must be at least 1, got {args.take}")
    times = time_steps(make, messages, args.repeat, args.take)
    print(
        f"{times.records:,} records, {len(messages):,} messages ({args.take} a take), {args.repeat} runs: "
        f"CPU {times.us_per_record(times.cpu_seconds):.1f} µs/record (median), "
        f"wall {times.us_per_record(times.wall_seconds):.1f}; "
        f"CPU per run {', '.join(f'{s:.2f}' for s in times.cpu_seconds)} s; gc {args.gc}"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"RSS MiB by tenths of the first run: {', '.join(f'{m:.0f}' for m in times.rss_mb)}; peak {peak:.0f}"
    )
    if args.profile:
        pipe, profile = make(), cProfile.Profile()
        profile.enable()
        feed(pipe, messages, args.take)
        profile.disable()
        profile.dump_stats(args.profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    if args.digest:
        alerts, states = digests(make(), messages, args.take)
        print(f"digest of alert revisions {alerts}; of final states {states}")
    if args.sizes:
        pipe = make()
        feed(pipe, messages, args.take)
        for line in size_lines(pipe):
            print(line)


def digests(pipe: InProcessPipeline, messages: list[Message], take: int = 1) -> tuple[str, str]:
    """SHA-256 of every alert revision in order, and of the final account and institution states
    (keys sorted), after stepping ``pipe`` through ``messages`` (``take`` at a time)."""
    feed(pipe, messages, take)
    encode = msgspec.json.Encoder(order="sorted").encode
    alerts = hashlib.sha256(encode(pipe.events)).hexdigest()[:16]
    # frozen parts (models/detectors/frozen.py) read as the plain JSON they stand for
    states = hashlib.sha256(encode(plain({"accounts": pipe.accounts, "institutions": pipe.institutions})))
    return alerts, states.hexdigest()[:16]


def size_lines(pipe: InProcessPipeline, largest: int = 3) -> list[str]:
    """The final states' encoded sizes (JSON, as the changelog carries them): per kind, the total,
    the largest states, and the total per detector, largest first."""
    encode = msgspec.json.Encoder().encode
    lines = []
    for kind, states in (("accounts", pipe.accounts), ("institutions", pipe.institutions)):
        sizes = {key: len(encode(state)) for key, state in states.items()}
        per_detector: dict[str, int] = defaultdict(int)
        for state in states.values():
            for name, detector_state in (state.get("detectors") or {}).items():
                per_detector[name] += len(encode(detector_state))
        total = sum(sizes.values())
        top = sorted(sizes.items(), key=lambda item: -item[1])[:largest]
        lines.append(
            f"{kind}: {len(states):,} states, {total / 1e6:.2f} MB encoded, mean {total / max(1, len(states)) / 1e3:.1f} kB;"
            f" largest {', '.join(f'{key} {size / 1e3:,.0f} kB' for key, size in top)}"
        )
        lines += [
            f"  {name}: {size / 1e6:.2f} MB"
            for name, size in sorted(per_detector.items(), key=lambda i: -i[1])
        ]
    return lines


if __name__ == "__main__":
    main()
