"""The detectors' steps alone, on the bench's own records: CPU per record of the worker's account
and institution steps (services/bench/pure_steps), in the bench's process, with no broker, no
ClickHouse and no I/O, the records decoded before the clock starts.

Beside the worker's CPU per record over the same backlog, it tells how much of that the detection
itself costs and how much everything around it (Kafka, decoding, ClickHouse, the changelog): a
change to one shows in its own figure. Over the aged workload it steps the week of history first,
untimed, then times the measured day: what a week of state adds to the rules' own work, apart
from what it adds to commits and writes.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import msgspec

from services.bench.pure_steps import Message, messages_of, pipeline_factory, time_steps
from services.bench.workload import AgedWorkload, Workload
from services.collector import DEFAULT_THRESHOLDS
from services.simulator.pipeline import InProcessPipeline

# Messages stepped together, as a worker working through a backlog was seen taking them.
MESSAGES_PER_TAKE = 54


@dataclass(frozen=True)
class DetectionFigures:
    fresh_us_per_record: float
    aged_us_per_record: float | None = None
    messages_per_take: int = MESSAGES_PER_TAKE

    def as_json(self) -> dict[str, float | int | None]:
        return {
            "fresh": self.fresh_us_per_record,
            "aged": self.aged_us_per_record,
            "messages_per_take": self.messages_per_take,
        }


def workload_messages(workload: Workload) -> list[Message]:
    """The workload's batches split as the gateway splits them: one message per partition."""
    return messages_of([msgspec.json.decode(body) for _, body, _ in workload.batches])


def detection_figures(
    fresh: Workload, aged: AgedWorkload | None = None, take: int = MESSAGES_PER_TAKE
) -> DetectionFigures:
    """CPU µs per record of the detectors' steps over ``fresh`` from no state, and over ``aged``'s
    measured records after its history."""
    make = pipeline_factory(fresh.reference)
    with _worker_collector():
        fresh_us = _timed(make, [], workload_messages(fresh), take)
        aged_us = None
        if aged is not None:
            aged_us = _timed(make, workload_messages(aged.history), workload_messages(aged.measured), take)
    return DetectionFigures(fresh_us, aged_us, take)


def _timed(
    make: Callable[[], InProcessPipeline], before: list[Message], measured: list[Message], take: int
) -> float:
    """CPU µs per record of stepping ``measured``, on this thread, after ``before`` untimed."""
    times = time_steps(make, measured, repeat=1, take=take, before=before)
    return round(times.us_per_record(times.cpu_seconds), 1)


@contextmanager
def _worker_collector() -> Iterator[None]:
    """The collector's thresholds as a worker sets them (services/collector.py), then the bench's
    own again: the bench process keeps Python's, which would collect far more often."""
    before = gc.get_threshold()
    gc.collect()
    gc.set_threshold(*DEFAULT_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
