"""Python's cyclic garbage collector, set for a long-running FundWatch process.

Reference counting frees almost everything these processes drop; the cyclic collector is there
for the rest. With Python's own thresholds (700, 10, 10) its full collections walk every live
object each time enough new ones have survived, and a worker holds many (every account's and
institution's state, the reference data): measured in-process, a quarter of the detection steps'
CPU (docs/benchmarks.md). Two things cut that without giving up on cycles:

- ``gc.freeze()`` once start-up is done: the modules, classes and functions loaded by then live
  as long as the process, so no collection needs to walk them again.
- Higher thresholds (``FUNDWATCH_GC_THRESHOLDS``, default ``DEFAULT_THRESHOLDS``): young
  collections every 50,000 allocations instead of 700, and a full collection after 100 of the
  middle generation's instead of 10, so the large, long-lived state is walked about 140 times
  less often. Garbage in cycles waits longer for its collection; the memory it holds stays
  bounded, which the benchmarks check (peak RSS over a long run).
- What survives a full collection is frozen too (``FreezeSurvivors``), so the next one walks only
  what was made since. A worker's full collection walked every account's and institution's
  state, a pause in which no record moves: with a week of a province's state held (the
  detection steps alone, in one process), 235 ms for the one after the eighth day, against 53 ms
  with the survivors of the one before frozen (docs/benchmarks.md). Garbage in cycles among
  frozen objects would wait for ever, so every ``REEXAMINE_EVERY_S`` one full collection walks
  everything again (objects without cycles are freed by reference counting, frozen or not).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

log = logging.getLogger("fundwatch.collector")

# The time the process stood still in collections, by generation: a full collection over a
# worker's state is a pause the records wait through, and the rates the bench measures include it.
PAUSE_SECONDS = Counter(
    "fundwatch_gc_pause_seconds",
    "Time spent in the cyclic garbage collector, by generation (0 young, 2 full)",
    ["generation"],
)

Thresholds = tuple[int, int, int]
DEFAULT_THRESHOLDS: Thresholds = (50_000, 20, 100)
PYTHON_THRESHOLDS: Thresholds = (700, 10, 10)  # Python's own (3.11)


def parse_thresholds(text: str) -> Thresholds:
    """``"50000,20,100"``, or ``"python"`` for Python's own; raises ValueError naming the rule."""
    text = text.strip().lower()
    if text == "python":
        return PYTHON_THRESHOLDS
    parts = text.split(",")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(1 <= value <= 10_000_000 for value in values):
        raise ValueError(
            f"three whole numbers from 1 to 10000000 separated by commas (the young, middle and "
            f"old generations' thresholds, e.g. 50000,20,100), or python; got {text!r}"
        )
    return values  # type: ignore[return-value]


# How often a full collection walks the frozen objects too: cycles among them are garbage only
# found then.
REEXAMINE_EVERY_S = 600.0


def settle(thresholds: Thresholds) -> None:
    """Collect once, freeze what start-up made, and set the thresholds: for a process about to
    serve, once its modules and start-up data are loaded."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    watch_pauses()
    log.info(
        "garbage collector thresholds=%s frozen_objects=%d",
        ",".join(map(str, thresholds)),
        gc.get_freeze_count(),
    )


class PauseClock:
    """Adds each collection's duration to PAUSE_SECONDS (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.totals = [PAUSE_SECONDS.labels(str(generation)) for generation in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.totals[info["generation"]].inc(time.perf_counter() - self.started)


def watch_pauses() -> None:
    """Count the collector's pauses from now on, once per process."""
    if not any(type(callback) is PauseClock for callback in gc.callbacks):
        gc.callbacks.append(PauseClock())


def freeze_survivors() -> None:
    """From now on, what survives a full collection is frozen as well (FreezeSurvivors), once
    per process."""
    if not any(type(callback) is FreezeSurvivors for callback in gc.callbacks):
        gc.callbacks.append(FreezeSurvivors())


class FreezeSurvivors:
    """A ``gc.callbacks`` entry: freezes what survived each full collection, except that the
    first one to end ``every_s`` after the last such moment unfreezes everything instead, so the
    next full collection walks it all."""

    def __init__(
        self, every_s: float = REEXAMINE_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_s = every_s
        self.clock = clock
        self.reexamined_at = clock()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        if self.clock() - self.reexamined_at >= self.every_s:
            self.reexamined_at = self.clock()
            gc.unfreeze()
        else:
            gc.freeze()
