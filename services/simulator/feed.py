"""The custody banks' feed: records per bank over simulated time, and the batches that carry them.

Simulated time advances in whole one-minute ticks and draws from one seeded generator, so the
records depend only on the seed and the start, never on how a caller slices time: ``advance(3600)``
once and ``advance(60)`` sixty times give the same records.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, time
from typing import TYPE_CHECKING

from schemas.fields import BEIJING
from schemas.records import MAX_RECORDS_PER_BATCH
from services.simulator.activities import NORMAL_ACTIVITIES, NORMAL_SOURCES, Action, Activity, EventSource
from services.simulator.ledger import Label
from services.simulator.province import Province
from services.simulator.rhythm import PEAK_HOURS_PER_DAY, activity_factor, poisson
from services.simulator.world import World

if TYPE_CHECKING:
    from services.simulator.violations import Injector, ViolationPlan

TICK_S = 60
DEFAULT_INTENSITY = 6000.0  # records per simulated hour in a weekday's busiest hour
# Tries per random moment before it passes: an activity may find nothing to do (no money raised yet).
_ATTEMPTS = 6


class Feed:
    """Synthetic records of every monitored bank in ``province``, from ``start`` on.

    ``intensity`` is the rate of activity records per simulated hour at a weekday's peak; the day
    rhythm scales it down at night and at weekends and up at month end. Balance snapshots and the
    scheduled sweeps and payrolls come on top. ``extra_sources`` and ``activities`` are where
    injected behaviour plugs in; ``violations`` runs a ``ViolationPlan`` (services.simulator.violations)
    and makes ``labels`` its ground truth. Without it the records are exactly those of the normal feed.
    """

    def __init__(
        self,
        province: Province,
        seed: int = 7,
        start: datetime | None = None,
        *,
        intensity: float = DEFAULT_INTENSITY,
        run_id: str | None = None,
        activities: Sequence[tuple[Activity, float]] = NORMAL_ACTIVITIES,
        sources: Sequence[EventSource] = NORMAL_SOURCES,
        extra_sources: Iterable[EventSource] = (),
        violations: ViolationPlan | None = None,
    ) -> None:
        if start is None:
            start = datetime.combine(province.as_of, time(0), BEIJING)
        if start.tzinfo is None:
            raise ValueError("start must carry a time zone")
        if intensity <= 0:
            raise ValueError("intensity must be above 0")
        started_at = int(start.timestamp())
        self.province = province
        self.seed = seed
        self.intensity = intensity
        self.run_id = run_id or f"s{seed}-{start.astimezone(BEIJING):%Y%m%d%H%M}"
        # Batch ids start with this; a resumed feed makes the same records under other batch ids.
        self.batch_prefix = self.run_id
        # A string seed is hashed with SHA-512, so the stream is the same in every process.
        self._rng = random.Random(f"fundwatch-feed:{seed}")
        self.world = World(province, self._rng, self.run_id, started_at, intensity / DEFAULT_INTENSITY)
        self._activities = [activity for activity, _ in activities]
        self._activity_cum = _cumulative([weight for _, weight in activities])
        self._sources = list(sources) + list(extra_sources)
        # The injector's steps run as one more source, and every tick's records pass by it to be labelled.
        self.injector: Injector | None = None if violations is None else violations.injector(self.world)
        if self.injector is not None:
            self._sources.append(self.injector.source)
        self._clock = started_at  # start of the next tick to run
        self._horizon = float(started_at)
        self._batch_seq: dict[str, int] = {}

    @property
    def clock(self) -> datetime:
        """The simulated time up to which records have been made (Beijing time)."""
        return datetime.fromtimestamp(self._clock, BEIJING)

    @property
    def labels(self) -> list[Label]:
        if self.injector is not None:
            return self.injector.labels()
        return self.world.ledger.labels

    @property
    def records_made(self) -> int:
        return self.world.ledger.records_made

    def expected_records_per_day(self) -> float:
        """Activity records of an average simulated day, snapshots and schedules aside."""
        return self.intensity * PEAK_HOURS_PER_DAY

    def advance(self, seconds: float) -> dict[str, list[dict]]:
        """Run ``seconds`` more of simulated time; the new records per bank code, in time order.

        Banks without new records are left out. Time short of a whole tick carries over.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._horizon += seconds
        if self.injector is None:
            while self._clock + TICK_S <= self._horizon:
                self._tick()
            return self.world.ledger.drain()
        made: dict[str, list[dict]] = {}
        while self._clock + TICK_S <= self._horizon:
            self._tick()
            fresh = self.world.ledger.drain()
            self.injector.observe(fresh)
            for bank, records in fresh.items():
                made.setdefault(bank, []).extend(records)
        return made

    def batches(self, records_by_bank: dict[str, list[dict]], max_records: int = 2000) -> Iterator[dict]:
        """Batch envelopes for ``records_by_bank``, at most ``max_records`` records each.

        Batch ids continue across calls (``<run>-<bank>-<seq>``), so a re-sent batch is recognised.
        """
        size = max(1, min(max_records, MAX_RECORDS_PER_BATCH))
        for bank_code in sorted(records_by_bank):
            records = records_by_bank[bank_code]
            for offset in range(0, len(records), size):
                seq = self._batch_seq.get(bank_code, 0) + 1
                self._batch_seq[bank_code] = seq
                yield {
                    "batch_id": f"{self.batch_prefix}-{bank_code}-{seq:08d}",
                    "bank_code": bank_code,
                    "records": records[offset : offset + size],
                }

    def _tick(self) -> None:
        start, end = self._clock, self._clock + TICK_S
        world, ledger, rng = self.world, self.world.ledger, self._rng
        due: list[tuple[int, int, int, Action | None]] = []
        for source in self._sources:
            for at, action in source(world, start, end):
                due.append((at, 0, len(due), action))
        # Random moments; scheduled actions go first within a second.
        moments = poisson(rng, self.intensity * activity_factor(start) * TICK_S / 3600)
        for index, at in enumerate(sorted(start + rng.randrange(TICK_S) for _ in range(moments))):
            due.append((at, 1, index, None))
        due.sort(key=lambda item: item[:3])

        made = 0
        for at, _, index, action in due:
            world.now = at
            if action is not None:
                for event in action(world, at):
                    ledger.book(event)
            elif made <= index:
                # A movement between two monitored accounts yields two records; skipping the
                # moments already covered keeps the count near the drawn one.
                made += self._random_activity(at)
        self._clock = end

    def _random_activity(self, at: int) -> int:
        for _ in range(_ATTEMPTS):
            activity = self._rng.choices(self._activities, cum_weights=self._activity_cum)[0]
            events = activity(self.world, at)
            if events:
                return sum(self.world.ledger.book(event) for event in events)
        return 0


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        if weight < 0:
            raise ValueError("activity weights must not be negative")
        total += weight
        out.append(total)
    return out
